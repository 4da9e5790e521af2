# Airflow on this machine: standalone (API server, scheduler, dag-processor, triggerer), LocalExecutor,
# SQLite metadata under var/airflow, this project's dags/ and plugins/. Override any variable on the
# command line, e.g. `make airflow SCORING_DB_URI=postgresql://postgres@127.0.0.1/test`.
# VAR_DIR holds everything the targets write (metadata, demo data and model, staging, predictions).
VAR_DIR ?= $(CURDIR)/var
AIRFLOW_HOME_DIR ?= $(VAR_DIR)/airflow
AIRFLOW_PORT ?= 8080
# The scheduler's and triggerer's log servers; the API server reads task logs through them.
AIRFLOW_LOG_SERVER_PORT ?= 8793
AIRFLOW_TRIGGER_LOG_SERVER_PORT ?= 8794
AIRFLOW_USER ?= admin
AIRFLOW_PASSWORD ?= admin
# The predictions database, handed to the DAGs as the Airflow connection scoring_db.
SCORING_DB_URI ?= sqlite:///$(VAR_DIR)/scoring.db
# LocalExecutor runs each task in a worker process of its own, [core] parallelism of them at most.
# Airflow's default (32) would have 32 tasks fight over a laptop's cores; two per core keeps the
# machine responsive while sensors and I/O wait. Override, e.g. `make airflow AIRFLOW_PARALLELISM=8`.
NPROC := $(shell nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
AIRFLOW_PARALLELISM ?= $(shell echo $$(( 2 * $(NPROC) )))

# PATH: `airflow standalone` starts its components as `airflow ...` subprocesses by name, so the venv's
# bin must be on PATH even from a fresh shell with nothing activated.
AIRFLOW_ENV = \
	PATH=$(abspath $(BIN)):$$PATH \
	AIRFLOW_HOME=$(AIRFLOW_HOME_DIR) \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins \
	AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__EXECUTOR=LocalExecutor \
	AIRFLOW__CORE__PARALLELISM=$(AIRFLOW_PARALLELISM) \
	AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=$(AIRFLOW_PARALLELISM) \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=$(AIRFLOW_USER):admin \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$(AIRFLOW_HOME_DIR)/passwords.json \
	AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$(AIRFLOW_HOME_DIR)/airflow.db \
	AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
	AIRFLOW__API__BASE_URL=http://localhost:$(AIRFLOW_PORT) \
	AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$(AIRFLOW_LOG_SERVER_PORT) \
	AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=$(AIRFLOW_TRIGGER_LOG_SERVER_PORT) \
	AIRFLOW_CONN_SCORING_DB=$(SCORING_DB_URI) \
	SCORING_INPUT_ROOT=$(VAR_DIR)/data/input \
	SCORING_MODEL_URI=$(VAR_DIR)/models/ride_duration/1 \
	SCORING_MODEL_ROOTS=$(VAR_DIR)/models \
	SCORING_STAGING_ROOT=$(VAR_DIR)/staging

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
	@test -f $(VAR_DIR)/models/ride_duration/1/model.json || \
		$(BIN)/scoring demo --input $(VAR_DIR)/data/input --model $(VAR_DIR)/models/ride_duration/1
	@echo "Airflow UI: http://localhost:$(AIRFLOW_PORT)  (login $(AIRFLOW_USER) / $$(sed 's/.*: "\(.*\)".*/\1/' $(AIRFLOW_HOME_DIR)/passwords.json))"
	@echo "LocalExecutor: at most $(AIRFLOW_PARALLELISM) tasks at once ($(NPROC) cores; AIRFLOW_PARALLELISM=N to change)."
	@echo "DAGs: score_rides_hourly, score_rides_daily, monitor_traffic (paused until you switch them on). Ctrl-C stops everything."
	$(AIRFLOW_ENV) $(BIN)/airflow standalone
