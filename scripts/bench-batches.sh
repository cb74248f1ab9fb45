#!/usr/bin/env bash
# Batches benchmark: starts the service on loopback with the built-in demo model (default settings: 8 batch rows, half
# of them at most for batch lines) and drives it with `paraphrase bench batches`: interactive POST /paraphrase latency
# alone, then while a batch of the same requests runs. Extra arguments go to `bench batches` (e.g. --clients 4 --json).
set -euo pipefail
cd "$(dirname "$0")/.."

port=${BENCH_PORT:-5124}
url="http://127.0.0.1:$port"

dotnet build -c Release -v quiet src/ParaphraseService.Api >/dev/null
dotnet build -c Release -v quiet src/ParaphraseService.Cli >/dev/null
cli="dotnet src/ParaphraseService.Cli/bin/Release/net10.0/paraphrase.dll"

data=$(mktemp -d)
FineTunes__Directory="$data" Adapters__Directory="$data/adapters" \
  dotnet src/ParaphraseService.Api/bin/Release/net10.0/ParaphraseService.Api.dll --urls "$url" > "${TMPDIR:-/tmp}/bench-batches-api.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT

# Wait for the model to load (polling readiness; the server log is in $TMPDIR/bench-batches-api.log).
until curl -fsS "$url/health/ready" >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || { echo "the service exited; see ${TMPDIR:-/tmp}/bench-batches-api.log" >&2; exit 1; }
  sleep 1
done
$cli bench batches --url "$url" "$@"
