#!/usr/bin/env bash
# The main job on embedded defaults: demo data and model, then the hourly DAG run by Airflow's own
# scheduler for several hours (a backfill, as a user would start one), then what landed in the
# predictions database. Called by `make demo` with the Airflow environment of mk/airflow.mk already
# exported (LocalExecutor, SQLite metadata), after its airflow-init target migrated both databases.
#
# The runs are real ones: run type backfill, each scoring the hour of its own logical date, with
# start and end times of when they ran. `airflow dags test` would instead stamp them with their
# 2026 logical date as start, user dag_test and the previous hour's data interval.
set -euo pipefail
BIN=${BIN:-.venv/bin}
DAY=${DEMO_DAY:-2026-01-01}
HOURS=${DEMO_HOURS:-6}
TIMEOUT=${DEMO_TIMEOUT:-900}          # seconds for all runs to finish
PARSE_TIMEOUT=${DEMO_PARSE_TIMEOUT:-180}
# Two runs at a time share the task slots; all six at once would each show several minutes of
# waiting for a slot as its duration, where a run alone takes seconds.
MAX_ACTIVE_RUNS=${DEMO_MAX_ACTIVE_RUNS:-2}
DAG_ID=score_rides_hourly
LOGS="$AIRFLOW_HOME/demo-logs"
mkdir -p "$LOGS"

airflow() { "$BIN/airflow" "$@" 2>>"$LOGS/cli.log"; }
# The CLI prints warnings on stdout before its JSON; the JSON is the last line.
json_of() { airflow "$@" -o json | tail -n 1; }
free_port() { "$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

"$BIN/scoring" demo --day "$DAY" --input "$SCORING_INPUT_ROOT" --model "$SCORING_MODEL_URI"

# Components of our own, beside any `make airflow` that might be running: their own ports, and no
# scheduled runs (use_job_schedule) so that unpausing for the backfill does not also start the
# current hour, whose data the demo never has.
API_PORT=$(free_port)
export AIRFLOW__API__PORT=$API_PORT AIRFLOW__API__BASE_URL=http://localhost:$API_PORT
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$(free_port)
export AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False

pids=()
start() { # name, args...: one component in a session (process group) of its own, its log in $LOGS
  local name=$1; shift
  setsid "$BIN/airflow" "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  pids+=($!)
}

descendants() { # every process below the given pids (task processes may leave their group)
  local pid child
  for pid in "$@"; do
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do echo "$child"; descendants "$child"; done
  done
}

alive() { local pid; for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }

stopped=""
stop_components() {
  local all pid waited=0 try
  # Once, and not to be cut short: a second Ctrl-C must not leave components running or the DAG unpaused.
  [[ -z $stopped ]] || return 0
  stopped=1
  trap '' INT TERM
  if ((${#pids[@]})); then
    all=("${pids[@]}" $(descendants "${pids[@]}"))
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    while ((waited < 30)) && alive "${all[@]}"; do sleep 1; waited=$((waited + 1)); done
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
  fi
  # Paused again whatever happened, once nothing else writes to the SQLite metadata (no "database is
  # locked"): a later `make airflow` must not start scheduling the current hour.
  for try in 1 2 3; do
    airflow dags pause "$DAG_ID" >/dev/null && return 0
    sleep 2
  done
  echo "could not pause $DAG_ID; pause it in the UI" >&2
}
trap stop_components EXIT
trap 'exit 130' INT TERM

echo "starting Airflow's dag-processor, scheduler and execution API (LocalExecutor, at most ${AIRFLOW__CORE__PARALLELISM:-32} tasks at once; logs in $LOGS)"
# The backfill is created before the scheduler starts: on SQLite its long transaction (clearing the
# runs a previous demo left) would otherwise race the scheduler's writes into "database is locked".
start dag-processor dag-processor

# close|count: the DAG's unfinished backfills, counted, or closed: one left open by an interrupted demo
# has lost its components, so its unfinished runs and tasks are failed (and the new backfill reruns them).
backfills() {
  "$BIN/python" - "$1" "$DAG_ID" 2>>"$LOGS/cli.log" <<'EOF'
import sys
from datetime import datetime, timezone
from sqlalchemy import func, select, update
from airflow.models.backfill import Backfill, BackfillDagRun
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState, State, TaskInstanceState
action, dag_id = sys.argv[1:]
unfinished_runs = (DagRunState.QUEUED, DagRunState.RUNNING)
unfinished_tasks = [state for state in State.unfinished if state is not None]
unfinished = (Backfill.dag_id == dag_id, Backfill.completed_at.is_(None))
with create_session() as session:
    if action == "count":
        print(session.scalar(select(func.count()).where(*unfinished)))
    for backfill in session.scalars(select(Backfill).where(*unfinished)) if action == "close" else ():
        print(f"closing backfill {backfill.id} of {dag_id}, left open by an interrupted demo")
        backfill.is_paused = True
        ids = select(BackfillDagRun.dag_run_id).where(BackfillDagRun.backfill_id == backfill.id)
        runs = select(DagRun.run_id).where(DagRun.id.in_(ids), DagRun.state.in_(unfinished_runs))
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id.in_(runs), TaskInstance.state.in_(unfinished_tasks))
            .values(state=TaskInstanceState.FAILED)
        )
        session.execute(
            update(DagRun).where(DagRun.id.in_(ids), DagRun.state.in_(unfinished_runs)).values(state=DagRunState.FAILED)
        )
        backfill.completed_at = datetime.now(timezone.utc)
EOF
}

check_alive() {
  local pid
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && continue
    echo "an Airflow component exited early; the end of each log:" >&2
    tail -n 20 "$LOGS"/{api-server,scheduler,dag-processor}.log >&2
    exit 1
  done
}

deadline=$((SECONDS + PARSE_TIMEOUT))
until json_of dags details "$DAG_ID" | grep -q "\"dag_id\": \"$DAG_ID\""; do
  check_alive
  ((SECONDS < deadline)) || { echo "$DAG_ID not parsed after ${PARSE_TIMEOUT}s; see $LOGS/dag-processor.log" >&2; exit 1; }
  sleep 3
done

# Only one backfill per DAG may be open.
backfills close
last_hour=$(printf '%02d' $((HOURS - 1)))
echo "airflow backfill create --dag-id $DAG_ID --from-date ${DAY}T00:00:00 --to-date ${DAY}T${last_hour}:00:00 --reprocess-behavior completed --max-active-runs $MAX_ACTIVE_RUNS"
airflow backfill create --dag-id "$DAG_ID" --from-date "${DAY}T00:00:00" --to-date "${DAY}T${last_hour}:00:00" \
  --reprocess-behavior completed --max-active-runs "$MAX_ACTIVE_RUNS" >"$LOGS/backfill-create.log" ||
  { echo "airflow backfill create failed:" >&2; tail -n 5 "$LOGS/cli.log" >&2; exit 1; }

start api-server api-server --apps execution --host 127.0.0.1 --port "$API_PORT" --workers 1
start scheduler scheduler
# A backfill's tasks are only queued while the DAG is unpaused; the EXIT trap pauses it again.
airflow dags unpause "$DAG_ID" >/dev/null

# Print each hour's outcome in order, as soon as it and every earlier hour are finished.
deadline=$((SECONDS + TIMEOUT))
next=0
failed=0
while ((next < HOURS)); do
  check_alive
  ((SECONDS < deadline)) || { echo "the runs did not finish within ${TIMEOUT}s; see $LOGS/scheduler.log" >&2; exit 1; }
  sleep 5
  # One "state run_id" line per hour of the demo, from the runs' logical dates.
  mapfile -t runs < <(json_of dags list-runs "$DAG_ID" | "$BIN/python" -c '
import json, sys
from datetime import datetime, timedelta
day, hours = datetime.fromisoformat(sys.argv[1]), int(sys.argv[2])
runs = {datetime.fromisoformat(r["logical_date"]).replace(tzinfo=None): r for r in json.loads(sys.stdin.read() or "[]")}
for hour in range(hours):
    run = runs.get(day + timedelta(hours=hour), {"state": "none", "run_id": "-"})
    print(run["state"], run["run_id"])
' "$DAY" "$HOURS")
  while ((next < HOURS)) && [[ ${runs[next]:-} == success\ * || ${runs[next]:-} == failed\ * ]]; do
    hour=$(printf '%02d' "$next")
    if [[ ${runs[next]:-} == success\ * ]]; then
      echo "  hour $hour: success"
    else
      echo "  hour $hour: FAILED; its task logs: $AIRFLOW_HOME/logs/dag_id=$DAG_ID/run_id=${runs[next]#* }/"
      failed=1
    fi
    next=$((next + 1))
  done
done
((failed == 0)) || exit 1
# The scheduler closes the backfill on its next check (every 30 s); stopping it before would leave it open.
deadline=$((SECONDS + 90))
until [[ $(backfills count) == 0 ]]; do
  check_alive
  ((SECONDS < deadline)) || { echo "the scheduler did not close the backfill; see $LOGS/scheduler.log" >&2; exit 1; }
  sleep 5
done

stop_components
trap - EXIT

echo
echo "predictions database ($AIRFLOW_CONN_SCORING_DB), job score_rides_hourly:"
"$BIN/scoring" report --job score_rides_hourly --database "$AIRFLOW_CONN_SCORING_DB"
