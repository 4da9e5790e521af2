#!/usr/bin/env bash
# One-shot (service seed), as root on the shared volume: demo rides and the demo bundle, the predictions
# tables, the LocalStack bucket/streams/queue with the bundle published to S3, and a staging folder the
# Airflow workers own. Idempotent: data already there is kept. Without Docker: `make demo` does the first
# two steps, and docker/init/localstack_resources.py the third against any AWS endpoint.
set -euo pipefail

model=${SCORING_MODEL_URI:?}
if [[ -f "$model/model.json" ]]; then
  echo "demo bundle and rides already in place ($model)"
else
  scoring demo --day "${DEMO_DAY:?}" --rows-per-hour "${DEMO_ROWS_PER_HOUR:?}" --input "${SCORING_INPUT_ROOT:?}" --model "$model"
fi

scoring db upgrade --database "${SCORING_DATABASE_URL:?}"

BUNDLE_DIR=$model python "$(dirname "$0")/localstack_resources.py"

mkdir -p "${SCORING_STAGING_ROOT:?}"
chown -R "${AIRFLOW_UID:-50000}:0" "$SCORING_STAGING_ROOT"
echo "seed done"
