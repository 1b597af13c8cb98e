#!/usr/bin/env bash
# Loopback load benchmark of vobiz-webhooks against a bare handler, the naive handler and
# Vobiz's Express and Flask samples. See bench/README.md.
#
#   bash bench/run.sh                      # 5 interleaved repetitions, 10 s each, all servers
#   REPS=7 DURATION=15 bash bench/run.sh
#   SERVERS="bare crate" REPS=1 WAIT_QUIET=0 bash bench/run.sh   # a quick look
#   PROFILE=1 bash bench/run.sh            # instead: where each server's CPU goes (perf)
#
# Environment (defaults): REPS=5 DURATION=10 WARMUP=3 CONNECTIONS=32 GEN_CPU=0 SERVER_CPU=1
#   SERVERS="bare naive crate crate-redis express flask layer typed"  WAIT_QUIET=1
#   (also: crate-cluster, the example on a local 3-master Redis Cluster the script starts) (wait for 1-min load < 0.6,
#   checked every 30 s, at most 40 min)  VOBIZ_REDIS_URL=redis://127.0.0.1:6379
#   PROFILE=1: run each server once under `perf record -e cpu-clock` (same load, DURATION s) and
#   write profile.md: its CPU per request split by crate (default SERVERS "bare naive layer typed crate")
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench

REPS=${REPS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-32}
GEN_CPU=${GEN_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
PROFILE=${PROFILE:-0}
if [ "$PROFILE" = 1 ]; then
  SERVERS=${SERVERS:-"bare naive layer typed crate"}
else
  SERVERS=${SERVERS:-"bare naive crate crate-redis express flask layer typed"}
fi
WAIT_QUIET=${WAIT_QUIET:-1}
QUIET_LOAD=${QUIET_LOAD:-0.6}
QUIET_MAX_SECS=${QUIET_MAX_SECS:-2400}
REDIS_URL=${VOBIZ_REDIS_URL:-redis://127.0.0.1:6379}
SECRET="bench-secret-$RANDOM$RANDOM"
CLK_TCK=$(getconf CLK_TCK)
OUT=$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT" "$BENCH/.bin"
RESULTS=$OUT/runs.jsonl

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Setup: everything this script needs, installed by itself (the machine is fresh each session).
setup() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing node and npm"
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! -d "$BENCH/express/node_modules/express" ]; then
    log "npm ci in bench/express"
    (cd "$BENCH/express" && npm ci --no-audit --no-fund --silent)
  fi
  if [ ! -x "$BENCH/.venv/bin/gunicorn" ]; then
    log "python venv with flask and gunicorn in bench/.venv"
    if ! python3 -m venv "$BENCH/.venv" 2>/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$BENCH/.venv"
    fi
    "$BENCH/.venv/bin/pip" install -q flask gunicorn
  fi
  if ! redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
    log "no Redis at $REDIS_URL: skipping crate-redis"
    SERVERS=${SERVERS//crate-redis/}
  fi
  log "building the example server (in-process store, then --features redis)"
  cargo build -q --release --example server
  cp target/release/examples/server "$BENCH/.bin/server-memory"
  cargo build -q --release --features redis --example server
  cp target/release/examples/server "$BENCH/.bin/server-redis"
  log "building bench/servers (bare, naive, loadgen)"
  cargo build -q --release --manifest-path "$BENCH/servers/Cargo.toml"
}

# ---------------------------------------------------------------------------------------------
wait_quiet() {
  [ "$WAIT_QUIET" = 1 ] || return 0
  local waited=0 load
  while :; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v q="$QUIET_LOAD" 'BEGIN { exit !(l < q) }'; then
      log "machine quiet (1-min load $load)"
      return 0
    fi
    if [ "$waited" -ge "$QUIET_MAX_SECS" ]; then
      log "gave up waiting for a quiet machine after ${waited}s (1-min load $load): figures taken under load"
      echo "under-load" >"$OUT/UNDER_LOAD"
      return 0
    fi
    log "1-min load $load >= $QUIET_LOAD, waiting 30 s (${waited}s so far)"
    sleep 30
    waited=$((waited + 30))
  done
}

SERVER_PID=
REDIS_PREFIX=
# Below the ephemeral range (32768+): a port there can be taken by one of the generator's own
# connections (gunicorn closes every one) and the next server could not bind it.
port_of() {
  case $1 in
    bare) echo 18101 ;; naive) echo 18102 ;; crate) echo 18103 ;; crate-redis) echo 18104 ;;
    express) echo 18105 ;; flask) echo 18106 ;; layer) echo 18107 ;; typed) echo 18108 ;;
    crate-cluster) echo 18109 ;;
  esac
}

start_server() {
  local name=$1 rep=$2 port
  port=$(port_of "$name")
  local pin=(taskset -c "$SERVER_CPU")
  local err=$OUT/$name.stderr.log
  case $name in
    bare)
      BENCH_ADDR=127.0.0.1:$port "${pin[@]}" "$BENCH/servers/target/release/bare" >/dev/null 2>>"$err" &
      ;;
    naive)
      VOBIZ_WEBHOOK_SECRET=$SECRET BENCH_ADDR=127.0.0.1:$port \
        "${pin[@]}" "$BENCH/servers/target/release/naive" >/dev/null 2>>"$err" &
      ;;
    layer)
      VOBIZ_WEBHOOK_SECRET=$SECRET BENCH_ADDR=127.0.0.1:$port \
        "${pin[@]}" "$BENCH/servers/target/release/layer" >/dev/null 2>>"$err" &
      ;;
    typed)
      VOBIZ_WEBHOOK_SECRET=$SECRET BENCH_ADDR=127.0.0.1:$port \
        "${pin[@]}" "$BENCH/servers/target/release/typed" >/dev/null 2>>"$err" &
      ;;
    crate)
      VOBIZ_WEBHOOK_SECRET=$SECRET VOBIZ_ADDR=127.0.0.1:$port \
        "${pin[@]}" "$BENCH/.bin/server-memory" >/dev/null 2>>"$err" &
      ;;
    crate-redis)
      REDIS_PREFIX="vobiz-bench:$$:$rep:"
      VOBIZ_WEBHOOK_SECRET=$SECRET VOBIZ_ADDR=127.0.0.1:$port VOBIZ_REDIS_URL=$REDIS_URL \
        VOBIZ_REDIS_PREFIX=$REDIS_PREFIX "${pin[@]}" "$BENCH/.bin/server-redis" >/dev/null 2>>"$err" &
      ;;
    crate-cluster)
      # One node's URL: the server recognises the cluster from it. The cluster is dropped at
      # the end, so its keys need no cleanup.
      VOBIZ_WEBHOOK_SECRET=$SECRET VOBIZ_ADDR=127.0.0.1:$port \
        VOBIZ_REDIS_URL=redis://127.0.0.1:${CLUSTER_PORTS%% *} VOBIZ_REDIS_PREFIX="vobiz-bench:$$:$rep:" \
        "${pin[@]}" "$BENCH/.bin/server-redis" >/dev/null 2>>"$err" &
      ;;
    express)
      VOBIZ_WEBHOOK_SECRET=$SECRET PORT=$port NODE_ENV=production \
        "${pin[@]}" node "$BENCH/express/server.js" >/dev/null 2>>"$err" &
      ;;
    flask)
      VOBIZ_WEBHOOK_SECRET=$SECRET "${pin[@]}" "$BENCH/.venv/bin/gunicorn" -w 2 \
        -b "127.0.0.1:$port" --chdir "$BENCH/flask" --log-level warning app:app >/dev/null 2>>"$err" &
      ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      sleep 0.3  # gunicorn: let both workers boot
      return 0
    fi
    sleep 0.1
  done
  log "$name did not listen on $port (see $err)"
  return 1
}

server_pids() {
  # The server and its children (gunicorn's workers).
  echo "$SERVER_PID $(pgrep -P "$SERVER_PID" | tr '\n' ' ')"
}

drop_redis_prefix() {
  [ -n "$REDIS_PREFIX" ] || return 0
  redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" |
    xargs -r -n 1000 redis-cli -u "$REDIS_URL" del >/dev/null || log "could not delete ${REDIS_PREFIX}*"
  REDIS_PREFIX=
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  drop_redis_prefix
}
# A local Redis Cluster (3 masters, 3 replicas) for crate-cluster, started once per run.
CLUSTER_PORTS="18201 18202 18203 18204 18205 18206"
CLUSTER_DIR=
cluster_up() {
  CLUSTER_DIR=$OUT/cluster
  mkdir -p "$CLUSTER_DIR"
  local port nodes=()
  for port in $CLUSTER_PORTS; do
    redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
      --cluster-config-file "$CLUSTER_DIR/nodes-$port.conf" --dir "$CLUSTER_DIR" \
      --dbfilename "dump-$port.rdb" --save "" --appendonly no --daemonize yes \
      --pidfile "$CLUSTER_DIR/$port.pid" --logfile "$CLUSTER_DIR/$port.log"
    nodes+=("127.0.0.1:$port")
  done
  for port in $CLUSTER_PORTS; do
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
  for _ in $(seq 100); do
    redis-cli -p "${CLUSTER_PORTS%% *}" cluster info | grep -q 'cluster_state:ok' && return 0
    sleep 0.2
  done
  log "the local cluster did not reach cluster_state:ok"
  return 1
}
cluster_down() {
  [ -n "$CLUSTER_DIR" ] || return 0
  local port
  for port in $CLUSTER_PORTS; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
  CLUSTER_DIR=
}
trap 'stop_server; cluster_down' EXIT

run_one() {
  local name=$1 rep=$2 port pids load0 load1 line
  port=$(port_of "$name")
  start_server "$name" "$rep"
  pids=$(server_pids)
  load0=$(cut -d' ' -f1 /proc/loadavg)
  line=$(taskset -c "$GEN_CPU" "$BENCH/servers/target/release/loadgen" \
    --addr "127.0.0.1:$port" --secret "$SECRET" --connections "$CONNECTIONS" \
    --warmup "$WARMUP" --duration "$DURATION" --pids "$pids" --label "$name" --clk-tck "$CLK_TCK")
  load1=$(cut -d' ' -f1 /proc/loadavg)
  stop_server
  echo "${line%\}},\"rep\":$rep,\"load_before\":$load0,\"load_after\":$load1}" | tee -a "$RESULTS" >&2
}

# One run of $1 under perf: the generator's JSON line, the samples in $OUT/$1.perf.
profile_one() {
  local name=$1 port pids line
  port=$(port_of "$name")
  start_server "$name" 1
  pids=$(server_pids)
  perf record -q -e cpu-clock -F 2999 -p "${pids// /,}" -o "$OUT/$name.perf" \
    -- sleep $((WARMUP + DURATION)) >/dev/null 2>&1 &
  local perf_pid=$!
  line=$(taskset -c "$GEN_CPU" "$BENCH/servers/target/release/loadgen" \
    --addr "127.0.0.1:$port" --secret "$SECRET" --connections "$CONNECTIONS" \
    --warmup "$WARMUP" --duration "$DURATION" --pids "$pids" --label "$name" --clk-tck "$CLK_TCK")
  wait "$perf_pid" || true
  stop_server
  echo "$line" | tee -a "$OUT/profile.jsonl" >&2
  perf report -i "$OUT/$name.perf" --no-children --sort dso,sym -g none --stdio 2>/dev/null |
    grep '%' >"$OUT/$name.flat" || true
}

# ---------------------------------------------------------------------------------------------
setup
wait_quiet
if [ "$PROFILE" = 1 ]; then
  if ! command -v perf >/dev/null; then
    log "installing perf (linux-perf)"
    apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null
  fi
  read -r -a LIST <<<"$SERVERS"
  for name in "${LIST[@]}"; do profile_one "$name"; done
  "$BENCH/.venv/bin/python" "$BENCH/profile.py" "$OUT" "${LIST[@]}" | tee "$OUT/profile.md"
  log "profile in $OUT/profile.md"
  exit 0
fi
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(lscpu | grep 'Model name' | sed 's/.*: *//')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "load at start: $(cat /proc/loadavg)"
  echo "reps=$REPS duration=${DURATION}s warmup=${WARMUP}s connections=$CONNECTIONS generator=cpu$GEN_CPU server=cpu$SERVER_CPU"
} >"$OUT/machine.txt"
read -r -a LIST <<<"$SERVERS"
case " $SERVERS " in *" crate-cluster "*) cluster_up ;; esac
for rep in $(seq 1 "$REPS"); do
  # Interleaved, and the order rotated each repetition so no server always runs first.
  n=${#LIST[@]}
  for i in $(seq 0 $((n - 1))); do
    run_one "${LIST[$(((i + rep - 1) % n))]}" "$rep"
  done
done
echo "load at end: $(cat /proc/loadavg)" >>"$OUT/machine.txt"

"$BENCH/.venv/bin/python" - "$OUT" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
runs = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl"))]
order = ["bare", "naive", "crate", "crate-redis", "crate-cluster", "express", "flask", "layer", "typed"]
names = {
    "bare": "(a) bare axum, `Bytes` → 200",
    "naive": "(b) naive axum handler",
    "crate": "(c) example server, `MemoryStore`",
    "crate-redis": "(d) example server, `RedisStore`",
    "crate-cluster": "(d') example server, `RedisStore` on a local 3-master Redis Cluster",
    "express": "(e) Express (Node)",
    "flask": "(f) Flask + gunicorn -w 2",
    "layer": "(g) (a) + `VobizWebhookLayer`, `MemoryStore`",
    "typed": "(h) (g) with a `VobizEvent` handler reading the text or status",
}
by = {}
for r in runs:
    by.setdefault(r["label"], []).append(r)
med = lambda xs: statistics.median(xs)
lines = []
machine = open(os.path.join(out, "machine.txt")).read().strip()
lines.append("```\n" + machine + "\n```\n")
if os.path.exists(os.path.join(out, "UNDER_LOAD")):
    lines.append("**Taken under load: the machine never got quiet.**\n")
lines.append("| server | req/s | p50 | p99 | server CPU µs/req | server CPU | generator CPU | unexpected statuses |")
lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
for k in order:
    if k not in by:
        continue
    rs = by[k]
    lines.append("| %s | %s | %d µs | %d µs | %.1f | %.0f %% | %.0f %% | %d |" % (
        names[k], f"{med([r['rps'] for r in rs]):,.0f}", med([r["p50_us"] for r in rs]),
        med([r["p99_us"] for r in rs]), med([r["server_cpu_us_per_req"] for r in rs]),
        med([r["server_cpu_pct"] for r in rs]), med([r["gen_cpu_pct"] for r in rs]),
        sum(r["unexpected"] for r in rs) if k != "bare" else 0))
lines.append("\nMedians of %d interleaved repetitions. (a) answers 200 to the bad signatures too "
             "(it checks nothing); every other server answered every request as expected when "
             "the last column is 0." % max(len(v) for v in by.values()))

def ratio(a, b, field, target, op):
    per_rep = []
    reps = {r["rep"]: r for r in by.get(a, [])}
    for r in by.get(b, []):
        if r["rep"] in reps and r[field] > 0:
            per_rep.append(reps[r["rep"]][field] / r[field])
    if not per_rep:
        return None
    m = med(per_rep)
    ok = target is not None and (m >= target if op == ">=" else m <= target)
    return m, min(per_rep), max(per_rep), ok

checks = [
    ("(c)/(a) req/s", "crate", "bare", "rps", 0.80, ">="),
    ("(c)/(b) server CPU per request", "crate", "naive", "server_cpu_us_per_req", 0.70, "<="),
    ("(c)/(e) req/s", "crate", "express", "rps", 10.0, ">="),
    ("(c)/(f) req/s", "crate", "flask", "rps", 20.0, ">="),
    ("(d)/(c) req/s", "crate-redis", "crate", "rps", 0.5, ">="),
    ("(d')/(d) req/s: a Redis Cluster against one Redis", "crate-cluster", "crate-redis", "rps", None, ">="),
    ("(g)/(a) req/s: the layer alone", "layer", "bare", "rps", 0.80, ">="),
    ("(g)/(b) server CPU per request: the layer alone", "layer", "naive", "server_cpu_us_per_req", None, "<="),
    ("(h)/(b) server CPU per request: typed against naive", "typed", "naive", "server_cpu_us_per_req", 0.70, "<="),
]
lines.append("\n| ratio (median of per-repetition ratios) | value | range | target | met |")
lines.append("|---|---:|---:|---:|---|")
for label, a, b, field, target, op in checks:
    r = ratio(a, b, field, target, op)
    if r is None:
        continue
    m, lo, hi, ok = r
    if target is None:  # informational: no target in the issue
        lines.append("| %s | %.2f× | %.2f–%.2f | – | – |" % (label, m, lo, hi))
        continue
    lines.append("| %s | %.2f× | %.2f–%.2f | %s %.2f× | %s |" % (label, m, lo, hi, op.replace(">=", "≥").replace("<=", "≤"), target, "yes" if ok else "**no**"))
text = "\n".join(lines) + "\n"
open(os.path.join(out, "summary.md"), "w").write(text)
print(text)
PY
log "results in $OUT (runs.jsonl, summary.md)"
