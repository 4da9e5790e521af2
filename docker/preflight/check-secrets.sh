#!/bin/sh
# Refuses to let the stack start on the placeholders of .env.example (docker-compose.yml, service preflight):
# exits 1, naming every secret that still holds one. Empty secrets never get this far: compose itself
# refuses to interpolate them (${VAR:?...}).
# The Fernet key placeholder is base64 of "change-me-..."; its text starts with Y2hhbmdlLW1l.
status=0
for name in POSTGRES_PASSWORD AIRFLOW_DB_PASSWORD PREDICTIONS_DB_PASSWORD AIRFLOW_ADMIN_PASSWORD \
  AIRFLOW_FERNET_KEY AIRFLOW_JWT_SECRET GRAFANA_DB_PASSWORD GRAFANA_ADMIN_PASSWORD; do
  eval "value=\${$name:-}"
  case "$value" in
    "" | change-me* | Y2hhbmdlLW1l*)
      echo "preflight: $name is unset or still the .env.example placeholder; set your own in .env" >&2
      status=1
      ;;
  esac
done
[ "$status" -eq 0 ] && echo "preflight: secrets are set"
exit "$status"
