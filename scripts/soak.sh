#!/usr/bin/env bash
# Soak test (not in CI): starts the service on loopback with the demo model and a small queue, keeps it saturated with
# `paraphrase bench soak` (default 10 minutes, 32 clients: paraphrase and completions, streamed and not, some
# disconnecting mid-stream) and prints status counts (only 200 and 429 expected), p50/p99 latency and resident memory
# growth after the warm-up (target: under 5%). Exit code 1 when any other status or a transport error was seen.
# Extra arguments go to `bench soak` (e.g. --minutes 2 --clients 16 --json).
set -euo pipefail
cd "$(dirname "$0")/.."

port=${SOAK_PORT:-5124}
url="http://127.0.0.1:$port"
dotnet build -c Release -v quiet src/ParaphraseService.Api >/dev/null
dotnet build -c Release -v quiet src/ParaphraseService.Cli >/dev/null
state=$(mktemp -d)
Model__Source=${SOAK_MODEL:-demo} Scheduler__MaxQueuedRequests=${SOAK_QUEUE:-4} Scheduler__MaxBatchRows=8 \
  Adapters__Directory="$state/adapters" FineTunes__Directory="$state/fine-tunes" Serilog__MinimumLevel__Default=Warning \
  dotnet src/ParaphraseService.Api/bin/Release/net10.0/ParaphraseService.Api.dll --urls "$url" > "${TMPDIR:-/tmp}/soak-api.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$state"' EXIT
until curl -fsS "$url/health/ready" >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || { echo "the service exited; see ${TMPDIR:-/tmp}/soak-api.log" >&2; exit 1; }
  sleep 1
done
dotnet src/ParaphraseService.Cli/bin/Release/net10.0/paraphrase.dll bench soak --url "$url" "$@"
