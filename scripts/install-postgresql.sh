#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for the cluster tests (tests/ParaphraseService.Cluster.Tests start their
# own server with initdb and pg_ctl in a temporary folder, as an unprivileged user; nothing else uses it). No system
# cluster is created or started: createcluster.conf says so before the package is installed.
# Idempotent: where /usr/lib/postgresql/<version>/bin/initdb exists it does nothing.
set -euo pipefail

found() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

if found; then
  echo "postgresql: $(ls -d /usr/lib/postgresql/*/bin | head -1) already installed."
  exit 0
fi

. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != "debian" ]; then
  echo "postgresql: no /usr/lib/postgresql/<version>/bin/initdb, and only Debian is handled automatically;" >&2
  echo "postgresql: install the PostgreSQL server (${PRETTY_NAME:-this system}) so that initdb and pg_ctl are there." >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "postgresql: run as root (it installs Debian's postgresql package)." >&2
  exit 1
fi

echo "postgresql: installing Debian's postgresql (server binaries only; no cluster is created or started)."
mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
  echo "create_main_cluster = false" >> /etc/postgresql-common/createcluster.conf
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null

if found; then
  echo "postgresql: done; $(ls -d /usr/lib/postgresql/*/bin | head -1)"
else
  echo "postgresql: installed, but no /usr/lib/postgresql/<version>/bin/initdb." >&2
  exit 1
fi
