#!/usr/bin/env bash
# Runs the web service on the built-in demo model at http://127.0.0.1:5000 (Swagger UI at /swagger, the status page
# at /). Idempotent set-up first: on Debian 12, TorchSharp needs a newer libstdc++, which
# scripts/install-prerequisites.sh installs (as root) when it is missing; anywhere it is present nothing happens. A C
# compiler builds the AVX512-VNNI int8 sums (scripts/install-c-compiler.sh installs gcc where it can; without one the
# service still runs, on the managed sums).
# Settings come from the environment as usual (e.g. Model__Source=EleutherAI/gpt-j-6b@float16, Admin__ApiKey=...);
# extra arguments go to the service (e.g. --urls http://0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-prerequisites.sh
bash scripts/install-c-compiler.sh

args=("$@")
if [[ " ${args[*]-} " != *" --urls "* ]]; then
  args+=(--urls "${PARAPHRASE_URLS:-http://127.0.0.1:5000}")
fi
echo "serve: building and starting the service (model: ${Model__Source:-demo}); Ctrl+C stops it."
exec dotnet run -c Release --project src/ParaphraseService.Api -- "${args[@]}"
