#!/usr/bin/env bash
# Serving benchmark: starts the service on loopback with the GPT-J-shaped 250M bench model in int8 and drives it with
# `paraphrase bench serve` (1 client, then N concurrent). Extra arguments go to `bench serve` (e.g. --clients 16 --json,
# or --fine-tune-data ../shared/data/paws-wiki-final/dev.tsv to measure again while a fine-tune job trains).
set -euo pipefail
cd "$(dirname "$0")/.."

model=${BENCH_MODEL:-${TMPDIR:-/tmp}/paraphrase-bench-250m}
port=${BENCH_PORT:-5123}
url="http://127.0.0.1:$port"

dotnet build -c Release -v quiet src/ParaphraseService.Api >/dev/null
dotnet build -c Release -v quiet src/ParaphraseService.Cli >/dev/null
cli="dotnet src/ParaphraseService.Cli/bin/Release/net10.0/paraphrase.dll"
[ -d "$model" ] || $cli make-checkpoint --preset bench-250m --dtype float16 --out "$model"

export PARAPHRASE_ADMIN_KEY=${PARAPHRASE_ADMIN_KEY:-bench-admin-key-$RANDOM$RANDOM}
jobs=$(mktemp -d)
Model__Source="$model" Model__Quantization=int8 Scheduler__MaxBatchRows=16 Scheduler__MaxQueuedRequests=256 \
  Admin__ApiKey="$PARAPHRASE_ADMIN_KEY" FineTunes__Directory="$jobs" Adapters__Directory="$jobs/adapters" \
  dotnet src/ParaphraseService.Api/bin/Release/net10.0/ParaphraseService.Api.dll --urls "$url" > "${TMPDIR:-/tmp}/bench-serve-api.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$jobs"' EXIT

# Wait for the model to load (polling readiness; the server log is in $TMPDIR/bench-serve-api.log).
until curl -fsS "$url/health/ready" >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || { echo "the service exited; see ${TMPDIR:-/tmp}/bench-serve-api.log" >&2; exit 1; }
  sleep 1
done
$cli bench serve --url "$url" "$@"
