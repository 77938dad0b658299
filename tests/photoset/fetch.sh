#!/usr/bin/env bash
# Fetches the photographic source material of the real-photograph sets (see NOTICE.md) from
# Debian's archive and unpacks it under DIR (default: $HOME/.cache/edge-ad/photo-sources).
# Packages are downloaded, not installed: nothing lands in the system.
#   bash tests/photoset/fetch.sh [DIR]
set -euo pipefail
dir="${1:-$HOME/.cache/edge-ad/photo-sources}"
packages=(krita-data mate-backgrounds mypaint-data-extras)
mkdir -p "$dir"
cd "$dir"
missing=()
for p in "${packages[@]}"; do
  [ -f "$p.done" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! apt-get download "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get download "${missing[@]}" >/dev/null
  fi
  for p in "${missing[@]}"; do
    deb=$(ls -t "${p}"_*.deb | head -1)
    dpkg-deb -x "$deb" "$p"
    echo "$deb" > "$p.done"
    rm -f "$deb"
  done
fi
echo "$dir"
