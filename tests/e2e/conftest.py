"""Fixtures that boot a real Airflow stack (one per test module) against the machine's PostgreSQL and Redis."""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from scoring.batch.store.engines import make_engine, upgrade
from scoring.settings import normalize_database_url
from tests.e2e.airflow_stack import (
    DAG_ID,
    AirflowStack,
    CeleryWorker,
    ScoringPaths,
    forget_queue,
    running_stack,
    wait_for_dag,
)

REDIS_URL = os.environ.get("SCORING_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    """Attach the components' log tails to a failed test's report: the cause is usually in there."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, AirflowStack):
                report.sections.append(("Airflow component logs", value.log_tails()))
    return report


@pytest.fixture(scope="module")
def scoring_schema_url(postgres_url: str) -> Iterator[str]:
    """A predictions database (fresh schema) living as long as the module's Airflow stack."""
    # pg_schema_url is per test; the stack's environment is fixed at boot, so it needs one per module.
    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalize_database_url(postgres_url))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    # Migrated as a deploy does (`scoring db upgrade`): the DAG runs only check the revision.
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="module")
def scoring_paths(
    tmp_path_factory: pytest.TempPathFactory, demo_bundle_dir: Path, scoring_schema_url: str
) -> ScoringPaths:
    """Where the module's DAG runs read rides, find the demo bundle, stage shards and publish."""
    root = tmp_path_factory.mktemp("scoring")
    return ScoringPaths(root / "input", demo_bundle_dir, root / "staging", scoring_schema_url)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory, postgres_url: str, scoring_paths: ScoringPaths) -> Iterator[AirflowStack]:
    """API server, scheduler and dag-processor on LocalExecutor, with the scoring DAG unpaused."""
    home = tmp_path_factory.mktemp("airflow_local")
    with running_stack(home, postgres_url, scoring_paths, "LocalExecutor") as stack:
        wait_for_dag(stack, DAG_ID)
        stack.api.unpause(DAG_ID)
        yield stack


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis as Celery broker; in CI (CI=true) its absence fails the run instead of skipping."""
    address = urlsplit(REDIS_URL)
    try:
        socket.create_connection((address.hostname, address.port or 6379), timeout=3).close()
    except OSError:
        message = f"Redis is not reachable at {address.netloc}; the Celery e2e test needs it as broker"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory, postgres_url: str, redis_url: str, scoring_paths: ScoringPaths):
    """The same stack on CeleryExecutor plus one `airflow celery worker` on a queue nobody else serves."""
    home = tmp_path_factory.mktemp("airflow_celery")
    worker = CeleryWorker(queue=f"e2e_{secrets.token_hex(4)}", hostname=f"celery-worker-{secrets.token_hex(4)}")
    broker = {
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        # Every task goes to the private queue: other workers on this Redis never take ours, nor we theirs.
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": worker.queue,
    }
    try:
        with running_stack(home, postgres_url, scoring_paths, "CeleryExecutor", extra_env=broker) as stack:
            stack.start_worker(worker)
            wait_for_dag(stack, DAG_ID)
            stack.api.unpause(DAG_ID)
            yield stack
    finally:
        forget_queue(redis_url, worker.queue)
