#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data directory (docker-entrypoint-initdb.d):
# one role and one database for Airflow's metadata, one for the predictions. Each role owns only its database.
# The same statements work on any PostgreSQL without Docker: set the variables and run this script with psql
# on PATH and PGHOST/PGUSER pointing at a superuser.
set -euo pipefail

create_owned_database() {
  local role=$1 password=$2 database=$3
  # psql variables (:"name" quotes an identifier, :'name' a literal), so no value is pasted into SQL text.
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v role="$role" -v password="$password" -v database="$database" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
SQL
  echo "database ${database} owned by ${role} is ready"
}

create_owned_database "${AIRFLOW_DB_USER:-airflow}" "${AIRFLOW_DB_PASSWORD:?}" "${AIRFLOW_DB_NAME:-airflow}"
create_owned_database "${PREDICTIONS_DB_USER:-scoring}" "${PREDICTIONS_DB_PASSWORD:?}" "${PREDICTIONS_DB_NAME:-scoring}"
