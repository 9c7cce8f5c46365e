#!/usr/bin/env bash
# Fetches Debian's cloud kernel (linux-image-cloud-amd64 -> the versioned linux-image-*-cloud-amd64 package) with
# apt-get download into a cache outside git, unpacks it with dpkg -x and prints the vmlinuz path on stdout.
# The kernel is never committed. Cache: $HV_KERNEL_CACHE, else ~/.cache/hypervisor/linux.
# Exit status 0 with the path printed, non-zero (with the reason on stderr) if the kernel cannot be fetched.
set -euo pipefail
cache="${HV_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hypervisor/linux}"
mkdir -p "$cache"
cd "$cache"

# The metapackage depends on exactly one versioned image package; resolve it from the apt cache.
meta=linux-image-cloud-amd64
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq > /dev/null 2>&1 || true
  pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
if [ -z "$pkg" ]; then
  echo "fetch-linux-kernel: apt-cache knows no $meta (run apt-get update?)" >&2
  exit 1
fi
version=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
dir="$cache/$pkg-$version"
vmlinuz=$(ls "$dir"/boot/vmlinuz-* 2>/dev/null | head -1 || true)
if [ -n "$vmlinuz" ] && [ -s "$vmlinuz" ]; then
  echo "$vmlinuz"
  exit 0
fi

rm -f "$cache"/"$pkg"_*.deb
if ! apt-get download "$pkg=$version" > "$cache/download.log" 2>&1; then
  echo "fetch-linux-kernel: apt-get download $pkg=$version failed:" >&2
  tail -5 "$cache/download.log" >&2
  exit 1
fi
deb=$(ls "$cache"/"$pkg"_*.deb | head -1)
rm -rf "$dir.tmp"
dpkg -x "$deb" "$dir.tmp"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
rm -f "$deb"
vmlinuz=$(ls "$dir"/boot/vmlinuz-* | head -1)
echo "$vmlinuz"
