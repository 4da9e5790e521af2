#!/usr/bin/env bash
# Load test of the online service against the ceiling of its own web stack (and MLflow), in one run.
#
#   bench/online.sh                          # or: make bench-online; the shipped server (Granian)
#   SERVER=gunicorn bench/online.sh          # the same matrix under gunicorn's gevent worker
#   SERVER=gunicorn-gthread bench/online.sh  # ... or its threaded worker
#   BENCH_SECONDS=10 BENCH_CONCURRENCY="1 8 32" BENCH_PROBES=0 PYTHON=/path/to/venv/bin/python bench/online.sh
#   BENCH_PREDICTION_LOG_URL=postgresql://postgres@127.0.0.1:5432/test bench/online.sh   # + the prediction log's cost
#
# Three servers are started in turn, each by `python -m webservice.serve` with the same server, workers,
# threads and settings: the project (the demo bundle), the ceiling (bench/ceiling_app.py: parses the body as
# /predict does, answers a constant, no model), and, when mlflow is installed, `mlflow models serve` of the
# same model wrapped in a pyfunc (its own server: uvicorn, same worker count). Each gets the same wrk matrix:
# single-record and 100-record requests at each concurrency. Printed: req/s, records/s, p50/p99, the server's
# CPU per request, project/ceiling and project/MLflow. Then the slow-client probe of issue 10 against the
# project: 40 clients dripping headers, then 40 dripping bodies, while 10 ordinary requests are sent.
# wrk runs on the same machine and takes CPU from the servers: absolute numbers are a floor, ratios hold better.
# Needs wrk:  apt-get install -y wrk   (Debian/Ubuntu)   or   brew install wrk   (macOS).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
DURATION=${BENCH_SECONDS:-5}
CONCURRENCY=${BENCH_CONCURRENCY:-"1 32"}
PROBES=${BENCH_PROBES:-10}
SLOW_CLIENTS=${BENCH_SLOW_CLIENTS:-40}
export WEB_SERVER=${SERVER:-${WEB_SERVER:-granian}}
export WEB_WORKERS=${WEB_WORKERS:-$(nproc)}
if [[ -z ${WEB_THREADS:-} ]]; then
  export WEB_THREADS=$([[ $WEB_SERVER == granian ]] && echo 64 || echo 8) # the launcher's defaults
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if ! command -v wrk >/dev/null; then
  echo "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu) or brew install wrk (macOS)" >&2
  exit 2
fi

work=$(mktemp -d)
server_pid=""
stop_server() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

"$PYTHON" -W ignore bench/online_setup.py "$work" >"$work/setup.log" 2>&1 || { cat "$work/setup.log" >&2; exit 1; }
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"

# start_server NAME READY_PATH COMMAND...: start it in the background (its own log), wait until READY_PATH answers.
start_server() {
  local name=$1 ready=$2
  shift 2
  PORT=$port WEB_HOST=127.0.0.1 WEB_ACCESS_LOG=${WEB_ACCESS_LOG:-on} "$@" >"$work/$name.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 300); do
    curl -fsS "$url$ready" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/$name.log" >&2; return 1; }
    sleep 0.2
  done
  echo "$name never became ready" >&2
  cat "$work/$name.log" >&2
  return 1
}

# server_cpu_ticks: CPU time (clock ticks) the server's processes have used so far (the launcher or master and
# its workers). The machine is shared, so wall-clock req/s moves with the neighbours' load; CPU per request does not.
server_cpu_ticks() {
  local pid total=0 children
  children=$(pgrep -P "$server_pid" || true)
  for pid in "$server_pid" $children $(for c in $children; do pgrep -P "$c" || true; done); do
    [[ -r /proc/$pid/stat ]] || continue
    # After "pid (comm) ", utime and stime are the 12th and 13th fields.
    total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

# load URL BODY CONNECTIONS SECONDS: one wrk run; prints "req_s p50_ms p99_ms failed cpu_ms_per_request".
load() {
  local threads=$(($3 < 2 ? $3 : 2)) before after
  before=$(server_cpu_ticks)
  wrk -t"$threads" -c"$3" -d"$4s" --timeout 5s -s bench/wrk_post.lua "$1" -- "$2" >"$work/wrk.out"
  after=$(server_cpu_ticks)
  awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "%.0f %.2f %.2f %d %.3f\n", v["requests"] / (v["duration_us"] / 1e6), v["p50_us"] / 1e3,
        v["p99_us"] / 1e3, v["failed"], ticks * 1000 / hz / (v["requests"] > 0 ? v["requests"] : 1)
    }' "$work/wrk.out"
}

# measure NAME PATH BODY_PREFIX: the matrix against the running server; results in $work/NAME.<body>.<conc>.
measure() {
  local name=$1 path=$2 prefix=$3 body connections
  load "$url$path" "$work/${prefix}single.json" 8 2 >/dev/null # warm-up: each worker's first requests
  for body in single batch100; do
    for connections in $CONCURRENCY; do
      load "$url$path" "$work/$prefix$body.json" "$connections" "$DURATION" >"$work/$name.$body.$connections"
    done
  done
}

echo "server: $WEB_SERVER, $WEB_WORKERS workers x $WEB_THREADS threads on $(nproc) cores; wrk ${DURATION}s per run, same machine"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

start_server project /ready env SCORING_MODEL_URI="$work/bundle" "$PYTHON" -m webservice.serve
measure project /predict ""
probe_lines=()
if ((PROBES > 0)); then
  for kind in headers bodies; do
    probe_lines+=("$("$PYTHON" bench/slow_clients.py "$url" "$work/single.json" --kind "$kind" \
      --clients "$SLOW_CLIENTS" --probes "$PROBES")")
  done
fi
stop_server

if [[ -n ${BENCH_PREDICTION_LOG_URL:-} ]]; then
  # The same project with every scored record queued for prediction_log (issue 14: at most 5% of throughput).
  "$PYTHON" -c 'import sys; from scoring.batch.store.engines import make_engine, upgrade; upgrade(make_engine(sys.argv[1]))' \
    "$BENCH_PREDICTION_LOG_URL"
  logged_rows() {
    "$PYTHON" -c 'import sys, sqlalchemy as sa; from scoring.batch.store.engines import make_engine
with make_engine(sys.argv[1]).connect() as c: print(c.execute(sa.text("SELECT count(*) FROM prediction_log")).scalar())' \
      "$BENCH_PREDICTION_LOG_URL"
  }
  rows_before=$(logged_rows)
  start_server logged /ready env SCORING_MODEL_URI="$work/bundle" SCORING_PREDICTION_LOG_URL="$BENCH_PREDICTION_LOG_URL" \
    "$PYTHON" -m webservice.serve
  measure logged /predict ""
  curl -fsS "$url/metrics" | grep '^scoring_prediction_log_dropped_total' >"$work/logged.dropped" || true
  stop_server # each worker writes what it still queues as it exits
  echo $(($(logged_rows) - rows_before)) >"$work/logged.written"
fi

start_server ceiling /ready "$PYTHON" -m webservice.serve bench.ceiling_app:app
measure ceiling /predict ""
stop_server

have_mlflow=no
if [[ -d $work/mlflow_model ]]; then
  # MLflow's own server (uvicorn, the same number of workers), found on PATH beside this Python.
  if PATH="$(dirname "$PYTHON"):$PATH" start_server mlflow /ping "$PYTHON" -m mlflow models serve \
    -m "$work/mlflow_model" --env-manager local -h 127.0.0.1 -p "$port" -w "$WEB_WORKERS"; then
    measure mlflow /invocations mlflow_
    have_mlflow=yes
    # `mlflow models serve` execs uvicorn through a shell; stop the uvicorn it left behind, by its pid.
    for child in $(pgrep -P "$server_pid" || true); do kill -TERM "$child" 2>/dev/null || true; done
  else
    echo "mlflow models serve did not start (see above); project/MLflow not measured" >&2
  fi
  stop_server
fi

echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n%-14s %4s | %8s %9s %7s %7s %8s | %8s %7s %6s | %8s %6s\n' "payload" "conc" "req/s" "records/s" "p50 ms" \
  "p99 ms" "cpu ms" "ceiling" "p99 ms" "ratio" "mlflow" "ratio"
for body in single batch100; do
  per_request=$([[ $body == single ]] && echo 1 || echo 100)
  for connections in $CONCURRENCY; do
    read -r req_s p50 p99 failed cpu_ms <"$work/project.$body.$connections"
    read -r c_req_s _ c_p99 _ _ <"$work/ceiling.$body.$connections"
    m_req_s=0
    [[ $have_mlflow == yes ]] && read -r m_req_s _ _ _ _ <"$work/mlflow.$body.$connections"
    awk -v b="$body" -v n="$per_request" -v c="$connections" -v r="$req_s" -v p50="$p50" -v p99="$p99" \
      -v f="$failed" -v cpu="$cpu_ms" -v cr="$c_req_s" -v cp99="$c_p99" -v mr="$m_req_s" 'BEGIN {
      mlflow = mr > 0 ? sprintf("%8d %5.1fx", mr, r / mr) : sprintf("%8s %6s", "-", "-")
      printf "%-14s %4d | %8d %9d %7.2f %7.2f %8.3f | %8d %7.2f %5.2fx | %s%s\n", b, c, r, r * n, p50, p99, cpu,
        cr, cp99, (cr > 0 ? r / cr : 0), mlflow, (f > 0 ? sprintf("  (%d failed)", f) : "")
    }'
  done
done
echo "ratio: project req/s / ceiling req/s (the same server and settings, no model), and / MLflow's req/s"
if [[ -n ${BENCH_PREDICTION_LOG_URL:-} ]]; then
  for body in single batch100; do
    for connections in $CONCURRENCY; do
      read -r req_s _ _ _ _ <"$work/project.$body.$connections"
      read -r l_req_s _ l_p99 l_failed _ <"$work/logged.$body.$connections"
      awk -v b="$body" -v c="$connections" -v r="$req_s" -v l="$l_req_s" -v p="$l_p99" -v f="$l_failed" 'BEGIN {
        printf "with the prediction log: %-9s c=%-3d %8d req/s (p99 %.2f ms) = %.1f%% of %d without%s\n", b, c, l, p,
          100 * l / r, r, (f > 0 ? sprintf(" (%d failed)", f) : "") }'
    done
  done
  echo "prediction log records written: $(cat "$work/logged.written"), dropped: $(awk '{s += $2} END {print s + 0}' "$work/logged.dropped")"
fi
for line in "${probe_lines[@]}"; do echo "slow clients vs the project: $line"; done
