#!/usr/bin/env bash
# Cluster benchmark on this machine: a PostgreSQL server of its own (Debian's postgresql, as `nobody` when run as root)
# and service processes on loopback with the built-in demo model (4 layers, random weights). While a trainer node trains
# a fine-tune, a round-robin client sends BENCH_REQUESTS paraphrase requests (BENCH_CLIENTS at once) to:
#   both      one node serving and training (today's single process, in cluster mode)
#   1-serve   one serving replica, the training on a separate trainer node
#   2-serve   two serving replicas, the same trainer
# and prints requests/s, p50 and p99 (curl's time_total) for each, after an idle baseline (one replica, nothing
# training); then the time from publishing an adapter on one replica to the first request served with it on another
# (BENCH_PUBLISHES times). Every node gets two warm-up requests first. All processes share this machine's cores: a
# separate trainer takes CPU from the replicas as the in-process one does, where on real hardware each node has its
# own. BENCH_PIN=1 pins the trainer to the last core and every other node to the rest (taskset), the nearest this
# machine comes to a trainer on other hardware. BENCH_REPEAT repeats the whole measurement.
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${BENCH_REQUESTS:-120}
clients=${BENCH_CLIENTS:-8}
publishes=${BENCH_PUBLISHES:-5}
repeat=${BENCH_REPEAT:-1}
pin=${BENCH_PIN:-0}
last=$(( $(nproc) - 1 ))
serve_cpus="0-$(( last > 0 ? last - 1 : 0 ))"
key=bench-admin-key-0123456789abcdef

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "no PostgreSQL server binaries: run scripts/install-postgresql.sh" >&2; exit 1; }
dotnet build -c Release -v quiet src/ParaphraseService.Api >/dev/null
api=src/ParaphraseService.Api/bin/Release/net10.0/ParaphraseService.Api.dll

work=$(mktemp -d /tmp/bench-cluster-XXXXXX)
chmod 755 "$work"
pids=()
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  as_pg "$bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/pg"
[ "$(id -u)" -eq 0 ] && chown nobody:nogroup "$work/pg"
pgport=$((20000 + RANDOM % 20000))
as_pg "$bin/initdb" -D "$work/pg/data" -U postgres --auth=trust --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w start -o "-p $pgport -k $work/pg -c listen_addresses=127.0.0.1" >/dev/null

port=$((40000 + RANDOM % 10000))
# start_node NAME ROLES DATABASE: sets $url once the node is ready (not in a subshell: it records the pid).
start_node() {
  local name=$1 roles=$2 db=$3 p=$port cpus=()
  port=$((port + 1))
  if [ "$pin" = 1 ] && [ "$roles" != both ]; then
    if [ "$roles" = train ]; then cpus=(taskset -c "$last"); else cpus=(taskset -c "$serve_cpus"); fi
  fi
  mkdir -p "$work/$name"
  ASPNETCORE_URLS="http://127.0.0.1:$p" Model__Source=demo Admin__ApiKey=$key Node__Id="$name" Node__Roles="$roles" \
    Storage__PostgreSql="Host=127.0.0.1;Port=$pgport;Username=postgres;Database=$db" Storage__LeaseSeconds=15 \
    Adapters__Directory="$work/$name/adapters" FineTunes__Directory="$work/$name/fine-tunes" \
    "${cpus[@]}" dotnet "$api" > "$work/$name.log" 2>&1 &
  pids+=($!)
  until curl -fsS "http://127.0.0.1:$p/health/ready" >/dev/null 2>&1; do
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$name exited; its log:" >&2; tail -20 "$work/$name.log" >&2; exit 1; }
    sleep 0.2
  done
  url="http://127.0.0.1:$p"
  [ "$roles" = train ] && return
  for i in 1 2; do
    curl -fsS -o /dev/null "$url/paraphrase" -H "content-type: application/json" -d '{"text":"Warm up.","candidates":1,"maxNewTokens":4}'
  done
}
stop_nodes() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; pids=(); }

# 400 reversed-word pairs: a job long enough to train through a whole measurement.
words=(red blue green cat dog bird sun moon tree river)
for i in $(seq 1 400); do
  a=${words[RANDOM%10]} b=${words[RANDOM%10]} c=${words[RANDOM%10]}
  printf '{"source":"%s %s %s %d","target":"%d %s %s %s"}\n' "$a" "$b" "$c" "$i" "$i" "$c" "$b" "$a"
done > "$work/pairs.jsonl"

# train URL ADAPTER: submits a long job and waits until it has taken a step.
train() {
  local id
  id=$(curl -fsS -H "X-Api-Key: $key" -F "dataset=@$work/pairs.jsonl" \
    -F "options={\"adapter\":\"$2\",\"rank\":8,\"batchSize\":4,\"epochs\":100,\"bleuSamples\":0,\"evalFraction\":0,\"maxSequenceLength\":64}" \
    "$1/admin/fine-tunes" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  until curl -fsS -H "X-Api-Key: $key" "$1/admin/fine-tunes/$id" | grep -q '"step":[1-9]'; do sleep 0.2; done
  echo "$id"
}

# load URL...: round-robin requests; prints "rps p50 p99 errors".
load() {
  local urls=("$@") start end
  start=$(date +%s.%N)
  seq 0 $((requests - 1)) | URLS="${urls[*]}" xargs -P "$clients" -I{} bash -c '
    read -r -a u <<< "$URLS"; url=${u[$(( {} % ${#u[@]} ))]}
    curl -s -o /dev/null -w "%{http_code} %{time_total}\n" -H "content-type: application/json" \
      -d "{\"text\":\"The meeting was moved to Friday because of the storm.\",\"candidates\":1,\"maxNewTokens\":16,\"seed\":{}}" "$url/paraphrase"' \
    > "$work/times"
  end=$(date +%s.%N)
  local errors ok
  errors=$(awk '$1 != 200' "$work/times" | wc -l)
  awk '$1 == 200 { print $2 }' "$work/times" | sort -n > "$work/ok"
  ok=$(wc -l < "$work/ok")
  awk -v n="$requests" -v s="$start" -v e="$end" -v k="$ok" -v errors="$errors" '
    { t[NR] = $1 }
    END { printf "%.2f req/s  p50 %.0f ms  p99 %.0f ms  errors %d\n", n / (e - s), 1000 * t[int(k * 0.5 + 0.5)], 1000 * t[int(k * 0.99 + 0.5)], errors }' "$work/ok"
}

for run in $(seq 1 "$repeat"); do
  echo "== run $run: $requests requests, $clients at once, while a fine-tune trains ($(nproc) cores shared by every process$([ "$pin" = 1 ] && echo "; trainer pinned to core $last, other nodes to $serve_cpus"))"
  psql_db() { as_pg psql -h "$work/pg" -p "$pgport" -U postgres -qc "CREATE DATABASE $1" >/dev/null; }

  psql_db r${run}i
  start_node idle serve r${run}i; idle=$url
  echo "idle     (1 replica, no training):    $(load "$idle")"
  stop_nodes

  psql_db r${run}a
  start_node both both r${run}a; both=$url
  job=$(train "$both" a)
  echo "both     (1 node serves and trains):  $(load "$both")"
  stop_nodes

  psql_db r${run}b
  start_node serve1 serve r${run}b; serve1=$url
  start_node trainer train r${run}b
  job=$(train "$serve1" b)
  echo "1-serve  (+ 1 trainer node):          $(load "$serve1")"
  start_node serve2 serve r${run}b; serve2=$url
  echo "2-serve  (+ 1 trainer node):          $(load "$serve1" "$serve2")"
  curl -fsS -X POST -H "X-Api-Key: $key" "$serve1/admin/fine-tunes/$job/cancel" >/dev/null

  # Publish on serve1, first use on serve2: an adapter made by a one-step job, registered again under new names.
  curl -fsS -H "X-Api-Key: $key" -F "dataset=@$work/pairs.jsonl" \
    -F 'options={"adapter":"quick","rank":8,"maxSteps":1,"bleuSamples":0,"evalFraction":0,"maxSequenceLength":64}' \
    "$serve1/admin/fine-tunes" >/dev/null
  until curl -fsS "$serve1/adapters/quick" >/dev/null 2>&1; do sleep 0.2; done
  curl -fsS "$serve1/paraphrase" -H "content-type: application/json" -d '{"text":"warm up","adapter":"quick","candidates":1,"maxNewTokens":2}' >/dev/null
  source_folder=$(ls -d "$work/serve1/adapters/quick@"* | head -1)
  for i in $(seq 1 "$publishes"); do
    curl -fsS -H "X-Api-Key: $key" -H "content-type: application/json" -d "{\"name\":\"pub-$i\",\"path\":\"$source_folder\"}" "$serve1/admin/adapters" >/dev/null
    published=$(date +%s%N)
    while true; do
      sent=$(date +%s%N)
      code=$(curl -s -o /dev/null -w "%{http_code}" "$serve2/paraphrase" -H "content-type: application/json" \
        -d "{\"text\":\"red cat sun\",\"adapter\":\"pub-$i\",\"candidates\":1,\"maxNewTokens\":4}")
      [ "$code" = 200 ] && break
    done
    done_at=$(date +%s%N)
    echo "publish on serve1 -> first use on serve2: request sent after $(( (sent - published) / 1000000 )) ms, answered after $(( (done_at - published) / 1000000 )) ms"
  done
  stop_nodes
done
