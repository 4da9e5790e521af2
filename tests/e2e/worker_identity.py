"""The hostname that task processes started by the e2e Celery worker report to Airflow.

Only the worker's environment points AIRFLOW__CORE__HOSTNAME_CALLABLE here (with this folder on its
PYTHONPATH), so a task instance carrying this hostname can only have run under that worker.
"""

import os


def hostname() -> str:
    """The marker the e2e fixture chose for its worker."""
    return os.environ["E2E_WORKER_HOSTNAME"]
