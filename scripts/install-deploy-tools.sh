#!/usr/bin/env bash
# Makes `kubectl kustomize` available, for rendering and checking deploy/ (scripts/check-deploy.sh and the deployment
# tests). Debian 12's kubernetes-client is kubectl 1.20 (kustomize v2, too old for these manifests), so on Debian 12
# it installs only the kubectl package from Debian 13 (trixie) under the same low pin that install-prerequisites.sh
# uses; its one dependency (libc6 >= 2.34) stays Debian 12's. Debian 13 gets its own kubectl.
# Idempotent: where a kubectl with kustomize v5 is on PATH it does nothing.
set -euo pipefail

usable() {
  command -v kubectl >/dev/null 2>&1 && kubectl version --client 2>/dev/null | grep -q '^Kustomize Version: v5'
}

if usable; then
  echo "deploy tools: $(kubectl version --client | tr '\n' ' ')already installed."
  exit 0
fi

. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != "debian" ] || { [ "${VERSION_ID:-}" != "12" ] && [ "${VERSION_ID:-}" != "13" ]; }; then
  echo "deploy tools: no kubectl with kustomize v5 on PATH, and only Debian 12 and 13 are handled automatically;" >&2
  echo "deploy tools: install kubectl 1.27 or newer (${PRETTY_NAME:-this system})." >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deploy tools: run as root (it installs Debian's kubectl package)." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ "${VERSION_ID}" = "12" ]; then
  if ! grep -qs 'trixie' /etc/apt/sources.list.d/trixie.sources; then
    cat > /etc/apt/sources.list.d/trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  if [ ! -f /etc/apt/preferences.d/trixie-low ]; then
    cat > /etc/apt/preferences.d/trixie-low <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
  fi
  echo "deploy tools: Debian 12 detected; installing kubectl from Debian 13 (trixie), pinned low."
  apt-get update -qq
  # kubectl/trixie takes only this package from trixie; its dependencies come from bookworm.
  apt-get install -y -qq --no-install-recommends kubectl/trixie >/dev/null
else
  echo "deploy tools: installing Debian's kubectl."
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends kubectl >/dev/null
fi

if usable; then
  echo "deploy tools: done; $(kubectl version --client | tr '\n' ' ')"
else
  echo "deploy tools: kubectl installed but 'kubectl kustomize' (v5) is still not usable." >&2
  exit 1
fi
