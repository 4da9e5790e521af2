#!/usr/bin/env bash
# One-shot start of the Airflow stack (service airflow-init), as root so it can hand the shared volumes to the
# airflow user: migrate the metadata database, fix the UI login, and make the log folder writable.
# Without Docker the same steps are `make airflow-init` (mk/airflow.mk).
set -euo pipefail

airflow_uid=${AIRFLOW_UID:-50000}
passwords_file=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}
admin_user=${AIRFLOW_ADMIN_USER:?}
admin_password=${AIRFLOW_ADMIN_PASSWORD:?}

mkdir -p "$(dirname "$passwords_file")" "${AIRFLOW_HOME:-/opt/airflow}/logs"
# The simple auth manager reads user -> password from this JSON file (and only generates a random password
# for users missing from it); rewriting it each start makes .env the one place the login is set.
# The values travel in the environment, not argv, so the password never shows in a process listing.
PASSWORDS_FILE=$passwords_file ADMIN_USER=$admin_user ADMIN_PASSWORD=$admin_password python - <<'PY'
import json, os
with open(os.environ["PASSWORDS_FILE"], "w") as out:
    json.dump({os.environ["ADMIN_USER"]: os.environ["ADMIN_PASSWORD"]}, out)
PY
chmod 600 "$passwords_file"

airflow db migrate
# Last, so whatever the migration wrote under logs/ belongs to the airflow user as well.
chown -R "${airflow_uid}:0" "$(dirname "$passwords_file")" "${AIRFLOW_HOME:-/opt/airflow}/logs"
echo "Airflow metadata migrated; UI login ${admin_user} (password from .env)"
