#!/usr/bin/env bash
# Install the desktop entry and icon for the current user, pointing at a built bundle.
#   packaging/linux/install-desktop-entry.sh [path/to/dist/prismq-desktop]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bundle=$(cd "${1:-$here/../../dist/prismq-desktop}" && pwd)
apps=${XDG_DATA_HOME:-$HOME/.local/share}/applications
icons=${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps
mkdir -p "$apps" "$icons"
cp "$here/../../prismq_desktop/resources/prismq.png" "$icons/prismq-desktop.png"
sed -e "s|@EXEC@|$bundle/prismq-desktop|" -e "s|@ICON@|prismq-desktop|" "$here/prismq-desktop.desktop" \
  > "$apps/prismq-desktop.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database "$apps" || true
echo "installed $apps/prismq-desktop.desktop"
