"""User settings shared by the GUI and the headless commands (no Qt).

One typed :class:`Settings` value, one INI file (:func:`settings_path`) and one reader/writer
(:mod:`configparser`) for everyone: the viewer gets a :class:`SettingsStore` injected and reads and
writes fields by name (no raw key strings in widgets), and ``jcs-viewer analyze`` reads the same file,
so it honours the device and thresholds a reader chose in the app. Keys live in the ``[General]``
section (where Qt's INI format keeps top-level keys, so older files written by QSettings still load).
"""

from __future__ import annotations

import configparser
import dataclasses
import io
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from jcs_viewer.atomic import atomic_write_text

SECTION = "General"
#: the choices of the settings the pipeline reads (``jcs_viewer.pipeline.options`` holds the same: this module
#: imports no layer of the app)
DEVICES = ("auto", "cpu", "cuda")
SLICE_SCORES = ("joint", "classifier")


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
    session_restore: str = "ask"  # ask | always | never: a study's autosaved session when it is reopened
    recent_studies: tuple[str, ...] = ()  # most recent first
    export_dir: str = ""  # where the last report or segmentation went (the export dialogs start there)
    mouse_scheme: str = "reading-room"  # reading-room (left W/L, middle pan, right zoom) | pan-first
    pacs_ae_title: str = "JCSVIEWER"  # our calling AE title: the hospital's PACS must know it
    pacs_servers: tuple[str, ...] = ()  # AET@HOST:PORT or http(s)://HOST/dicom-web, the default first

    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        """Read the INI file; unknown keys are ignored and bad values fall back to defaults
        (:func:`load_checked` also says which)."""
        return load_checked(path)[0]

    def checked(self) -> tuple["Settings", list[str]]:
        """These settings with the values the pipeline cannot use (an unknown device, a cut-off outside 0..1, a
        negative threshold) replaced by the defaults, and a note for each."""
        defaults, fixed, notes = Settings(), {}, []
        if self.device not in DEVICES:
            notes.append(f"device {self.device!r} is not one of {', '.join(DEVICES)}; using {defaults.device}")
            fixed["device"] = defaults.device
        if not 0.0 <= self.slice_cutoff <= 1.0:  # NaN too
            notes.append(f"slice_cutoff {self.slice_cutoff} is not between 0 and 1; using {defaults.slice_cutoff}")
            fixed["slice_cutoff"] = defaults.slice_cutoff
        if self.slice_score not in SLICE_SCORES:
            notes.append(f"slice_score {self.slice_score!r} is not one of {', '.join(SLICE_SCORES)}; "
                         f"using {defaults.slice_score}")
            fixed["slice_score"] = defaults.slice_score
        if self.slice_threshold is not None and self.slice_threshold < 0:
            notes.append(f"slice_threshold {self.slice_threshold} is negative; using the automatic threshold")
            fixed["slice_threshold"] = None
        return dataclasses.replace(self, **fixed), notes

    def save(self, path: Path | None = None) -> Path:
        """Write atomically in the format QSettings' IniFormat reads."""
        path = Path(path or settings_path())
        parser = configparser.ConfigParser(interpolation=None)
        parser[SECTION] = {k: _format(v) for k, v in asdict(self).items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        text = io.StringIO()
        parser.write(text)
        return atomic_write_text(path, text.getvalue())


def load_checked(path: Path | None = None) -> tuple[Settings, list[str]]:
    """The settings file's values, and one note (without the file's name) for each it could not give.

    A file that cannot be read as a whole (not a regular file, not text, no ``[General]`` section) gives the
    defaults; a key whose value does not parse, or that the pipeline cannot use (:meth:`Settings.checked`),
    gives its default. A key written twice counts once, the last (as Qt reads it).
    """
    path = Path(path or settings_path())
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        if path.exists() and not path.is_file():  # a FIFO would block the read for ever; a folder is no file
            raise OSError("it is not a regular file")
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        reason = " ".join(str(exc).split())[:160]
        return Settings(), [f"the file cannot be read ({reason}); the defaults are used"]
    section = parser[SECTION] if parser.has_section(SECTION) else {}
    values, notes = {}, []
    for f in fields(Settings):
        raw = section.get(f.name)
        if raw is None:
            continue
        try:
            values[f.name] = _parse(raw, f.type)
        except (ValueError, RecursionError):  # RecursionError: a list nested thousands deep
            shown = raw if len(raw) <= 40 else raw[:37] + "..."
            notes.append(f"{f.name} {shown!r} cannot be read; using the default")
    settings, more = Settings(**values).checked()
    return settings, notes + more


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        value = json.dumps(list(value))
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
    if annotation.startswith("tuple"):
        items = json.loads(raw) if raw else []
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ValueError(raw)
        return tuple(items)
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


class SettingsStore:
    """The reader's settings file as one typed value, injected into the viewer.

    ``store.values`` is the current :class:`Settings`; :meth:`update` replaces fields by name, writes the
    file atomically and tells the listeners. Tests and benchmarks pass a store on a file of their own.

    Args:
        path: the INI file (default: :func:`settings_path`).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else settings_path()
        # What the file could not give when it was read (the first save writes the defaults in their place).
        self.values, self.notes = load_checked(self.path)
        self._listeners: list[Callable[[Settings], None]] = []

    def update(self, **changes) -> Settings:
        """Set fields (unknown names raise ``TypeError``), save and notify; returns the new value.

        Raises:
            OSError: the file could not be written (one sentence naming it).
        """
        new = dataclasses.replace(self.values, **changes)
        if new != self.values:
            try:
                new.save(self.path)
            except OSError as exc:
                raise OSError(f"Could not save settings to {self.path} "
                              f"({exc.strerror or 'the file or its folder is not writable'}).") from None
            self.values = new
            for listener in list(self._listeners):
                listener(new)
        return self.values

    def replace(self, settings: Settings) -> Settings:
        """Store a whole :class:`Settings` (the Settings dialog's OK)."""
        return self.update(**asdict(settings))

    def reload(self) -> Settings:
        """Read the file again (another process may have written it)."""
        return self.reload_checked()[0]

    def reload_checked(self) -> tuple[Settings, list[str]]:
        """:meth:`reload`, and a note for each value the file could not give (:func:`load_checked`)."""
        self.values, self.notes = load_checked(self.path)
        return self.values, self.notes

    def on_change(self, listener: Callable[[Settings], None]) -> Callable[[], None]:
        """Call ``listener(settings)`` after each change; returns the function that disconnects it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None
