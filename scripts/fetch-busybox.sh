#!/usr/bin/env bash
# Prints the path of a static busybox 1.37 (Debian trixie's busybox-static), fetched once into
# the cache. Upstream busybox hashes with SHA-NI since 1.36, so this is what the default copy
# helper (busybox:stable) runs; Debian bookworm's 1.35, the tests' helper, hashes at a quarter
# of that speed. benchmarks/copy_bench.py measures with it. The package comes from the Debian
# archive this machine's apt already uses, its trixie suite, through a private list directory
# that leaves the system's apt state untouched.
set -euo pipefail
CACHE="${HOMELAB_CACHE:-$HOME/.cache/homelab}/busybox-trixie"
BIN="$CACHE/busybox"
if [[ ! -x $BIN ]]; then
  uri=$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1)
  [[ -n $uri ]] || { echo "no Debian archive configured for apt" >&2; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$CACHE"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" >"$work/trixie.list"
  apt=(-q -o Dir::Etc::sourcelist="$work/trixie.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$work/lists"
       -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update >&2
  (cd "$work" && apt-get "${apt[@]}" download busybox-static >&2)
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/root"
  install -m 0755 "$work/root/usr/bin/busybox" "$BIN"
fi
echo "$BIN"
