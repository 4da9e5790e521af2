# Two commands matter: `make demo` and `make test`. Both build .venv from pyproject.toml first, pinned by
# constraints.txt (the resolved set of every extra; `make lock` refreshes it), as Airflow advises.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= batch,airflow,web,dev,mlflow,monitor,stream
LOCK := constraints.txt
LOCK_VENV := build/lock-venv

.PHONY: install demo test test-fast lint format bench clean lock

install: $(STAMP)

# The venv is made once; re-running `venv` over one made by another interpreter would break it.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[$(EXTRAS)]'
	touch $(STAMP)

# Resolve every extra afresh (newest releases that fit pyproject.toml) and pin the result.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet '.[batch,airflow,web,dev,mlflow,monitor,stream]'
	$(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | grep -v '^ride-scoring' > $(LOCK)
	rm -rf $(LOCK_VENV)
	@echo "$(LOCK): $$(wc -l < $(LOCK)) pinned packages; commit it"
	$(MAKE) lambda-lock

demo: airflow-init
	@$(AIRFLOW_ENV) BIN=$(BIN) scripts/demo.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PYTHONPATH=plugins $(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install lint
	$(BIN)/pytest

# The unit tests only: seconds, no services.
test-fast: install lint
	$(BIN)/pytest tests/unit

bench: install
	$(BIN)/python bench/predict.py

clean:
	rm -rf $(VENV) $(VAR_DIR)
include $(wildcard mk/*.mk)
