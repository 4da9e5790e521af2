#!/usr/bin/env bash
# Load test of the online service: real gunicorn (webservice/gunicorn.conf.py) driven by wrk over localhost.
#
#   bench/online.sh                      # or: make bench-online
#   BENCH_SECONDS=10 PYTHON=/path/to/venv/bin/python bench/online.sh
#
# Prints req/s, p50 and p99 at concurrency 1, 8 and 32 for single-record requests, and records/s for
# 100-record requests. wrk runs on the same machine and takes CPU from the server: the numbers are a floor.
# "server cpu" is the CPU time gunicorn spent per request (Linux /proc), which neighbours' load does not skew.
# Needs wrk:  apt-get install -y wrk   (Debian/Ubuntu)   or   brew install wrk   (macOS).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
DURATION=${BENCH_SECONDS:-5}
CONCURRENCY=${BENCH_CONCURRENCY:-"1 8 32"}
# Reference measured on this 2-core machine with `mlflow models serve` of the same kind of model.
REFERENCE_REQ_S=${REFERENCE_REQ_S:-250}
REFERENCE_RECORDS_S=${REFERENCE_RECORDS_S:-19000}

if ! command -v wrk >/dev/null; then
  echo "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu) or brew install wrk (macOS)" >&2
  exit 2
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$PYTHON" bench/online_setup.py "$work"
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"

# The access log stays on, as in production, but goes to a file rather than the terminal.
GUNICORN_BIND="127.0.0.1:$port" GUNICORN_ACCESS_LOG="$work/access.log" SCORING_MODEL_URI="$work/bundle" \
  "$PYTHON" -m gunicorn -c webservice/gunicorn.conf.py webservice.wsgi:app >"$work/gunicorn.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -fsS "$url/ready" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/gunicorn.log" >&2; exit 1; }
  sleep 0.2
done
curl -fsS "$url/ready" >/dev/null || { echo "server never became ready" >&2; cat "$work/gunicorn.log" >&2; exit 1; }

# server_cpu_ticks: CPU time (clock ticks) gunicorn's master and workers have used so far. The machine
# is shared, so wall-clock req/s moves with the neighbours' load; CPU per request does not.
server_cpu_ticks() {
  local pid total=0
  for pid in "$server_pid" $(pgrep -P "$server_pid"); do
    # After "pid (comm) ", utime and stime are the 12th and 13th fields.
    total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

# load BODY CONNECTIONS SECONDS: one wrk run; prints "req_s p50_ms p99_ms failed cpu_ms_per_request".
load() {
  local threads=$(($2 < 2 ? $2 : 2)) before after
  before=$(server_cpu_ticks)
  wrk -t"$threads" -c"$2" -d"$3s" -s bench/wrk_post.lua "$url/predict" -- "$1" >"$work/wrk.out"
  after=$(server_cpu_ticks)
  awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "%.0f %.2f %.2f %d %.2f\n", v["requests"] / (v["duration_us"] / 1e6), v["p50_us"] / 1e3,
        v["p99_us"] / 1e3, v["failed"], ticks * 1000 / hz / v["requests"]
    }' "$work/wrk.out"
}

load "$work/single.json" 8 2 >/dev/null # warm-up: first requests of each worker are not measured
workers=$(grep -c "Booting worker" "$work/gunicorn.log" || true)
worker_class=$(grep -o "Using worker: .*" "$work/gunicorn.log" | head -1)
echo "gunicorn: $workers workers (${worker_class#Using worker: }) on $(nproc) cores; wrk ${DURATION}s per run, same machine"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

printf '\n%-26s %5s %9s %10s %8s %8s %7s %12s\n' "payload" "conc" "req/s" "records/s" "p50 ms" "p99 ms" "failed" \
  "server cpu"
best_single=0
best_records=0
for body in single batch100; do
  per_request=$([[ $body == single ]] && echo 1 || echo 100)
  for connections in $CONCURRENCY; do
    read -r req_s p50 p99 failed cpu_ms < <(load "$work/$body.json" "$connections" "$DURATION")
    records_s=$((req_s * per_request))
    printf '%-26s %5d %9d %10d %8s %8s %7d %7s ms/req\n' "$body ($per_request rec/request)" "$connections" "$req_s" \
      "$records_s" "$p50" "$p99" "$failed" "$cpu_ms"
    if [[ $body == single ]]; then
      ((req_s > best_single)) && best_single=$req_s
    else
      ((records_s > best_records)) && best_records=$records_s
    fi
  done
done

echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v s="$best_single" -v r="$best_records" -v rs="$REFERENCE_REQ_S" -v rr="$REFERENCE_RECORDS_S" 'BEGIN {
  printf "best single-record: %d req/s = %.1fx the mlflow reference (%d req/s); target >= 3x\n", s, s / rs, rs
  printf "best 100-record:    %d records/s = %.1fx the mlflow reference (%d records/s); target >= 3x\n", r, r / rr, rr
}'
