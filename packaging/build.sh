#!/usr/bin/env bash
# Build the one-folder desktop bundle: dist/jcs-viewer/jcs-viewer (run from anywhere).
#   packaging/build.sh            # uses .venv/bin/python, installs PyInstaller into it if missing
#   PYTHON=/path/python DIST=/tmp/dist packaging/build.sh
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
DIST="${DIST:-$REPO/dist}"
WORK="${WORK:-$REPO/build/pyinstaller}"

if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    echo "Installing PyInstaller into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
    "$PYTHON" -m pip install -q "pyinstaller>=6.10"
fi
# Icons are committed; re-render them only when the SVG master is newer than the PNGs.
if [ "$REPO/resources/icons/jcs-viewer.svg" -nt "$REPO/resources/icons/jcs-viewer-256.png" ]; then
    QT_QPA_PLATFORM=offscreen "$PYTHON" "$REPO/packaging/make_icons.py" >/dev/null
fi
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$WORK" "$REPO/packaging/jcs-viewer.spec"
# Drop the symbol tables of torch's and VTK's libraries and of libpython (~85 + 85 + 17 MB): the bundle
# tests exercise them (analyze runs torch, the 3-D screenshot renders with VTK). Not PyInstaller's
# strip=True: it would also touch the auditwheel-patched libraries in *.libs/, which stripping can break.
if command -v strip >/dev/null; then
    INTERNAL="$DIST/jcs-viewer/_internal"
    find "$INTERNAL/torch/lib" "$INTERNAL/vtkmodules" -name '*.so*' -type f -exec strip --strip-unneeded {} +
    find "$INTERNAL" -maxdepth 1 -name 'libpython3*.so*' -type f -exec strip --strip-unneeded {} +
fi
echo "Built $DIST/jcs-viewer ($(du -sh "$DIST/jcs-viewer" | cut -f1)); run $DIST/jcs-viewer/jcs-viewer --version"
