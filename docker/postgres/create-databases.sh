#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data directory (docker-entrypoint-initdb.d):
# one role and one database for Airflow's metadata, one for the predictions. Each role owns only its database.
# Then Grafana's login, which may only read the predictions database: Grafana runs whatever SQL a panel holds.
# The same statements work on any PostgreSQL without Docker: set the variables and run this script with psql
# on PATH and PGHOST/PGUSER pointing at a superuser. Every step is idempotent, so on a data directory
# initialised before Grafana was added, run it by hand:
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/create-databases.sh
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

create_reader() {
  local reader=$1 password=$2 database=$3 owner=$4
  # SELECT only, on what the owner's migrations create in the public schema: the tables already there
  # (a rerun on a migrated database) and, through default privileges, every table Alembic creates later.
  # The role owns nothing and gets no CREATE on the schema (PostgreSQL 15+ gives PUBLIC none), so it cannot
  # write, alter or drop; its sessions start read-only as a second fence.
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "$database" \
    -v reader="$reader" -v password="$password" -v database="$database" -v owner="$owner" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'reader', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') \gexec
ALTER ROLE :"reader" SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"database" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
SQL
  echo "role ${reader} may read database ${database}"
}

# Every password first, so a missing one stops the script before it has created anything.
: "${AIRFLOW_DB_PASSWORD:?}" "${PREDICTIONS_DB_PASSWORD:?}" "${GRAFANA_DB_PASSWORD:?}"
create_owned_database "${AIRFLOW_DB_USER:-airflow}" "$AIRFLOW_DB_PASSWORD" "${AIRFLOW_DB_NAME:-airflow}"
create_owned_database "${PREDICTIONS_DB_USER:-scoring}" "$PREDICTIONS_DB_PASSWORD" "${PREDICTIONS_DB_NAME:-scoring}"
create_reader "${GRAFANA_DB_USER:-grafana_reader}" "$GRAFANA_DB_PASSWORD" \
  "${PREDICTIONS_DB_NAME:-scoring}" "${PREDICTIONS_DB_USER:-scoring}"
