#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script). Idempotent set-up first, each step saying
# what it does: TorchSharp's libstdc++ (Debian 12), a C compiler (the AVX512-VNNI int8 sums), kubectl for rendering deploy/ (the deployment tests read the
# rendered manifests), Debian's chromium (the status page's browser test), Debian's PostgreSQL server binaries (the
# cluster tests start their own server). Installing needs root; where a tool is already there, nothing is installed.
# Extra arguments go to `dotnet test` (e.g. --filter ...).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-prerequisites.sh
bash scripts/install-c-compiler.sh
bash scripts/install-deploy-tools.sh
bash scripts/check-deploy.sh
bash scripts/install-browser.sh
bash scripts/install-postgresql.sh

dotnet test ParaphraseService.sln "$@"
