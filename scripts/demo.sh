#!/usr/bin/env bash
# The main job on embedded defaults: demo data and model, then the hourly DAG run through Airflow for
# several hours, then what landed in the predictions database. Called by `make demo` with the
# Airflow environment of mk/airflow.mk already exported, after its airflow-init target migrated the
# predictions database (`scoring db upgrade`): runs only check its revision and never migrate.
set -euo pipefail
BIN=${BIN:-.venv/bin}
DAY=${DEMO_DAY:-2026-01-01}
HOURS=${DEMO_HOURS:-6}
LOGS="$AIRFLOW_HOME/demo-logs"
mkdir -p "$LOGS"

"$BIN/scoring" demo --day "$DAY" --input "$SCORING_INPUT_ROOT" --model "$SCORING_MODEL_URI"

echo "running score_rides_hourly through Airflow for $HOURS hours of $DAY (logs in $LOGS)"
for ((hour = 0; hour < HOURS; hour++)); do
  # The run with logical date HH:00 scores HH:00-HH+1:00, as the scheduler's run for that hour does.
  logical_date=$(printf '%sT%02d:00:00+00:00' "$DAY" "$hour")
  log="$LOGS/score_rides_hourly_$(printf '%02d' "$hour").log"
  if "$BIN/airflow" dags test score_rides_hourly "$logical_date" > "$log" 2>&1; then
    echo "  hour $(printf '%02d' "$hour"): success"
  else
    echo "  hour $(printf '%02d' "$hour"): FAILED, last lines of $log:"; tail -25 "$log"; exit 1
  fi
done

echo
echo "predictions database ($AIRFLOW_CONN_SCORING_DB), job score_rides_hourly:"
"$BIN/scoring" report --job score_rides_hourly --database "$AIRFLOW_CONN_SCORING_DB"
