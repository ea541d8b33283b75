#!/usr/bin/env bash
# Install (or remove) the JCS Viewer desktop entry and icons for the current user, under ~/.local/share.
#   packaging/install_desktop_entry.sh [EXECUTABLE]    # default: dist/jcs-viewer/jcs-viewer, else jcs-viewer on PATH
#   packaging/install_desktop_entry.sh --uninstall
# Honours $XDG_DATA_HOME (default ~/.local/share).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor"
SIZES="16 22 24 32 48 64 128 256 512"

refresh_caches() {  # optional tools: menus pick the entry up without them, just later
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$APPS" 2>/dev/null || true
    command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$ICONS" 2>/dev/null || true
}

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$APPS/jcs-viewer.desktop" "$ICONS/scalable/apps/jcs-viewer.svg"
    for s in $SIZES; do rm -f "$ICONS/${s}x${s}/apps/jcs-viewer.png"; done
    refresh_caches
    echo "Removed the JCS Viewer desktop entry and icons from $DATA"
    exit 0
fi

EXE="${1:-}"
if [ -z "$EXE" ]; then
    if [ -x "$REPO/dist/jcs-viewer/jcs-viewer" ]; then EXE="$REPO/dist/jcs-viewer/jcs-viewer"
    else EXE="$(command -v jcs-viewer || true)"; fi
fi
if [ -z "$EXE" ] || [ ! -x "$EXE" ]; then
    echo "install_desktop_entry: no jcs-viewer executable found (build it with packaging/build.sh or pass its path)." >&2
    exit 2
fi
EXE="$(cd "$(dirname "$EXE")" && pwd)/$(basename "$EXE")"
case "$EXE" in *'"'*|*'`'*|*'$'*|*'\'*)
    echo "install_desktop_entry: the path $EXE has characters a desktop entry cannot quote." >&2; exit 2;; esac

install_atomic() {  # src dest: copy beside the destination, then rename
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2.tmp.$$"
    mv -f "$2.tmp.$$" "$2"
}

for s in $SIZES; do install_atomic "$REPO/resources/icons/jcs-viewer-$s.png" "$ICONS/${s}x${s}/apps/jcs-viewer.png"; done
install_atomic "$REPO/resources/icons/jcs-viewer.svg" "$ICONS/scalable/apps/jcs-viewer.svg"

# Exec and TryExec name the executable by absolute path, quoted as the desktop entry spec requires.
TMP="$(mktemp "$HERE/.desktop.XXXXXX")"
trap 'rm -f "$TMP"' EXIT
sed -e "s|^Exec=jcs-viewer |Exec=\"$EXE\" |" -e "s|^TryExec=jcs-viewer\$|TryExec=$EXE|" \
    "$HERE/jcs-viewer.desktop" > "$TMP"
install_atomic "$TMP" "$APPS/jcs-viewer.desktop"
chmod 0644 "$APPS/jcs-viewer.desktop"
refresh_caches
echo "Installed $APPS/jcs-viewer.desktop (runs $EXE) and icons under $ICONS"
