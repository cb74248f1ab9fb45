#!/usr/bin/env bash
# Installs Debian's chromium for the status page's browser test (Playwright for .NET drives it through
# ExecutablePath; Playwright's own browser download is never used). Debian 12 and 13 both ship it; on a Debian 12
# machine that install-prerequisites.sh pinned trixie low on, chromium and its libraries still come from bookworm.
# Idempotent: where /usr/bin/chromium runs it does nothing.
set -euo pipefail

if [ -x /usr/bin/chromium ] && /usr/bin/chromium --version >/dev/null 2>&1; then
  echo "browser: $(/usr/bin/chromium --version 2>/dev/null) already installed."
  exit 0
fi

. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != "debian" ]; then
  echo "browser: no /usr/bin/chromium, and only Debian is handled automatically; install Chromium (${PRETTY_NAME:-this system})" >&2
  echo "browser: so that /usr/bin/chromium starts it." >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "browser: run as root (it installs Debian's chromium package)." >&2
  exit 1
fi

echo "browser: installing Debian's chromium."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null

if /usr/bin/chromium --version >/dev/null 2>&1; then
  echo "browser: done; $(/usr/bin/chromium --version 2>/dev/null)"
else
  echo "browser: chromium installed but /usr/bin/chromium does not start." >&2
  exit 1
fi
