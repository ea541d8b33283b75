"""User settings shared by the GUI and the headless commands (no Qt).

The GUI persists them with ``QSettings(settings_path(), QSettings.IniFormat)``; the
core reads the same plain INI file with :mod:`configparser`, so ``jcs-viewer analyze``
honours the device and thresholds a reader chose in the app. Keys live in the
``[General]`` section, which is where QSettings writes top-level keys.
"""

from __future__ import annotations

import configparser
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from jcs_viewer.atomic import atomic_write_text

SECTION = "General"


def config_dir() -> Path:
    """``$JCS_VIEWER_CONFIG`` or ``$XDG_CONFIG_HOME/jcs-viewer`` (``~/.config/jcs-viewer``)."""
    override = os.environ.get("JCS_VIEWER_CONFIG")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "jcs-viewer"


def data_dir() -> Path:
    """The user's data folder: sessions, logs, extra weights.

    ``$JCS_VIEWER_DATA`` overrides ``$XDG_DATA_HOME/jcs-viewer``
    (``~/.local/share/jcs-viewer``).
    """
    override = os.environ.get("JCS_VIEWER_DATA")
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "jcs-viewer"


def settings_path() -> Path:
    return config_dir() / "settings.ini"


@dataclass
class Settings:
    """Reader preferences. ``None`` means "use the built-in rule"."""

    device: str = "auto"  # auto | cpu | cuda
    slice_threshold: int | None = None  # positive slices needed for a positive study
    slice_cutoff: float = 0.5  # slice score counted as positive
    slice_score: str = "joint"  # joint (classifier + lesion evidence) | classifier (the paper's flow)
    segment_all_slices: bool = False
    auto_analyze: bool = True
    autosave_dir: str = ""  # empty: the user's data folder
    default_layout: str = "axial"  # axial | 1x3
    reviewer_name: str = ""
    undo_depth: int = 100

    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        """Read the INI file; unknown keys are ignored and bad values fall back to defaults."""
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path or settings_path(), encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            return cls()
        section = parser[SECTION] if parser.has_section(SECTION) else {}
        values = {}
        for f in fields(cls):
            raw = section.get(f.name)
            if raw is None:
                continue
            try:
                values[f.name] = _parse(raw, f.type)
            except ValueError:
                continue
        return cls(**values)

    def save(self, path: Path | None = None) -> Path:
        """Write atomically in the format QSettings' IniFormat reads."""
        path = Path(path or settings_path())
        parser = configparser.ConfigParser(interpolation=None)
        parser[SECTION] = {k: _format(v) for k, v in asdict(self).items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        text = io.StringIO()
        parser.write(text)
        return atomic_write_text(path, text.getvalue())


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if any(ch in text for ch in '",;\\') or text != text.strip():
        # QSettings' INI quoting, so the GUI reads back exactly what the core wrote.
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _unquote(raw: str) -> str:
    """Undo QSettings' INI quoting: ``"a, \\"b\\""`` -> ``a, "b"``."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        out, chars = [], iter(raw[1:-1])
        for ch in chars:
            out.append(next(chars, "") if ch == "\\" else ch)
        return "".join(out)
    return raw


def _parse(raw: str, annotation: str):
    raw = _unquote(raw)
    if "None" in annotation and raw in ("", "@Invalid()"):
        return None
    if annotation.startswith("bool"):
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ValueError(raw)
    if annotation.startswith("int"):
        return int(raw)
    if annotation.startswith("float"):
        return float(raw)
    return raw
