#!/usr/bin/env bash
# Makes this machine able to load TorchSharp (LibTorch 2.10 needs GLIBCXX_3.4.32).
# Debian 12's libstdc++ stops at 3.4.30, so on Debian 12 it installs libstdc++6 from
# Debian 13 (trixie), with what it needs from there (libc6 >= 2.38, gcc-14-base; apt's -t also
# moves a few base packages, so /etc/os-release then reads Debian 13). A low-priority pin
# keeps later installs and upgrades on bookworm.
# Idempotent: where the symbol is already there it does nothing.
set -euo pipefail

needed=GLIBCXX_3.4.32

has_symbol() {
  local lib
  for lib in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib/aarch64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6; do
    [ -r "$lib" ] && grep -qa "$needed" "$lib" && return 0
  done
  return 1
}

if has_symbol; then
  echo "prerequisites: libstdc++ already provides $needed; nothing to do."
  exit 0
fi

. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != "debian" ] || [ "${VERSION_ID:-}" != "12" ]; then
  echo "prerequisites: this system (${PRETTY_NAME:-unknown}) lacks $needed in libstdc++." >&2
  echo "prerequisites: only Debian 12 is handled automatically; install libstdc++ from GCC 13 or newer" >&2
  echo "prerequisites: (Ubuntu 24.04 and Debian 13 have it already)." >&2
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "prerequisites: run as root (it adds a Debian 13 apt source and installs libstdc++6)." >&2
  exit 1
fi

echo "prerequisites: Debian 12 detected; installing libstdc++6 from Debian 13 (trixie), pinned low."
cat > /etc/apt/sources.list.d/trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
cat > /etc/apt/preferences.d/trixie-low <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t trixie libstdc++6 >/dev/null

if has_symbol; then
  echo "prerequisites: done; libstdc++ now provides $needed."
else
  echo "prerequisites: libstdc++6 from trixie installed but $needed is still missing." >&2
  exit 1
fi
