# Airflow on this machine: standalone (API server, scheduler, dag-processor, triggerer), LocalExecutor,
# SQLite metadata under var/airflow, this project's dags/ and plugins/. Override any variable on the
# command line, e.g. `make airflow SCORING_DB_URI=postgresql://postgres@127.0.0.1/test`.
AIRFLOW_HOME_DIR ?= $(CURDIR)/var/airflow
AIRFLOW_PORT ?= 8080
AIRFLOW_USER ?= admin
AIRFLOW_PASSWORD ?= admin
# The predictions database, handed to the DAGs as the Airflow connection scoring_db.
SCORING_DB_URI ?= sqlite:///$(CURDIR)/var/scoring.db

# PATH: `airflow standalone` starts its components as `airflow ...` subprocesses by name, so the venv's
# bin must be on PATH even from a fresh shell with nothing activated.
AIRFLOW_ENV = \
	PATH=$(abspath $(BIN)):$$PATH \
	AIRFLOW_HOME=$(AIRFLOW_HOME_DIR) \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins \
	AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=$(AIRFLOW_USER):admin \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$(AIRFLOW_HOME_DIR)/passwords.json \
	AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$(AIRFLOW_HOME_DIR)/airflow.db \
	AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
	AIRFLOW__API__BASE_URL=http://localhost:$(AIRFLOW_PORT) \
	AIRFLOW_CONN_SCORING_DB=$(SCORING_DB_URI) \
	SCORING_INPUT_ROOT=$(CURDIR)/var/data/input \
	SCORING_MODEL_URI=$(CURDIR)/var/models/ride_duration/1 \
	SCORING_MODEL_ROOTS=$(CURDIR)/var/models \
	SCORING_STAGING_ROOT=$(CURDIR)/var/staging

.PHONY: airflow airflow-init

# Before any component starts: Airflow's metadata migrated, the login fixed (admin/admin by default),
# and the predictions database migrated. Runs only check its revision, so this is where it migrates
# (`make demo` and `make airflow` both come through here).
airflow-init: install
	@mkdir -p $(AIRFLOW_HOME_DIR)
	@test -f $(AIRFLOW_HOME_DIR)/passwords.json || \
		printf '{"%s": "%s"}\n' '$(AIRFLOW_USER)' '$(AIRFLOW_PASSWORD)' > $(AIRFLOW_HOME_DIR)/passwords.json
	@$(AIRFLOW_ENV) $(BIN)/airflow db migrate > $(AIRFLOW_HOME_DIR)/db-migrate.log 2>&1 || \
		{ tail -20 $(AIRFLOW_HOME_DIR)/db-migrate.log; exit 1; }
	@$(BIN)/scoring db upgrade --database '$(SCORING_DB_URI)'

airflow: airflow-init
	@test -f var/models/ride_duration/1/model.json || $(BIN)/scoring demo --input var/data/input --model var/models/ride_duration/1
	@echo "Airflow UI: http://localhost:$(AIRFLOW_PORT)  (login $(AIRFLOW_USER) / $$(sed 's/.*: "\(.*\)".*/\1/' $(AIRFLOW_HOME_DIR)/passwords.json))"
	@echo "DAGs: score_rides_hourly, score_rides_daily (paused until you switch them on). Ctrl-C stops everything."
	$(AIRFLOW_ENV) $(BIN)/airflow standalone
