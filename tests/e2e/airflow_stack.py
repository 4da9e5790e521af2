"""A real Airflow stack run as subprocesses, and the REST API v2 client that drives it as a user would.

One place for everything the e2e tests share: the environment every component reads, booting
and stopping the processes, the token-authenticated client, the wait helpers, and the queries on
the predictions database. The tests only say what happens and what must be true afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from scoring.batch.store.engines import make_engine
from scoring.settings import normalize_database_url
from tests.support.gunicorn import free_port

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "score_rides_hourly"  # the DAG every e2e test drives
# The same interpreter as pytest, so the components run the code under test and nothing else.
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
USER, PASSWORD = "admin", "admin"
TERMINAL_STATES = {"success", "failed"}
T = TypeVar("T")


# --- waiting --------------------------------------------------------------------------------


class StackTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited (and the last connection error, if any)."""


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 1.0) -> T:
    """Call `check` until it returns something other than None; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (requests.ConnectionError, requests.Timeout) as exc:
            # A component still starting refuses connections: that is "not yet", not a failure.
            last_error, result = exc, None
        if result is not None:
            return result
        time.sleep(interval)
    raise StackTimeout(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f" ({last_error})" if last_error else "")
    )


# --- the REST API v2 client -----------------------------------------------------------------


@dataclass
class AirflowApi:
    """The public REST API v2 with a bearer token from /auth/token, as the UI and scripts use it."""

    base_url: str
    session: requests.Session = field(default_factory=requests.Session)
    # Called on every poll: a dead scheduler should fail a wait at once, not after its full timeout.
    check_alive: Callable[[], None] = lambda: None

    def login(self) -> bool | None:
        """Fetch a token; None while the API server is not answering yet (for wait_until)."""
        response = self.session.post(f"{self.base_url}/auth/token", json={"username": USER, "password": PASSWORD})
        if response.status_code != 201:
            return None
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return True

    def call(self, method: str, path: str, **kwargs) -> Any:
        """One request to /api/v2; any status but 200 fails with the server's own explanation."""
        response = self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=30, **kwargs)
        assert response.status_code == 200, f"{method} {path} -> {response.status_code}: {response.text[:2000]}"
        return response.json()

    def dag_is_parsed(self, dag_id: str) -> bool | None:
        """True once the dag-processor has serialised the DAG, i.e. the UI lists it."""
        response = self.session.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=30)
        return True if response.status_code == 200 else None

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, logical_date: str, conf: dict | None = None) -> dict:
        """What the UI's Trigger button sends: a logical date and the form's params as conf."""
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def runs(self, dag_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def clear(self, dag_id: str, run_id: str) -> None:
        """The UI's "Clear" on a finished run: every task instance runs again, under the same run_id."""
        self.call("POST", f"/dags/{dag_id}/dagRuns/{run_id}/clear", json={"dry_run": False})

    def backfill(self, dag_id: str, from_date: str, to_date: str, conf: dict | None = None) -> dict:
        """A backfill over logical dates [from_date, to_date]; completed runs in the range run again.

        `conf` is what the Backfill form's params send: the same conf for every run it makes.
        """
        body = {
            "dag_id": dag_id,
            "from_date": from_date,
            "to_date": to_date,
            "reprocess_behavior": "completed",
            "max_active_runs": 2,
        }
        if conf is not None:
            # Only when given: an empty conf would also replace the conf of the runs it reprocesses
            body["dag_run_conf"] = conf
        return self.call("POST", "/backfills", json=body)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return self.call("GET", path, params={"limit": 100})["task_instances"]

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float, after: str | None = None) -> dict:
        """The run once it is finished (and, after a clear, once it ended later than `after`)."""

        def finished() -> dict | None:
            self.check_alive()
            run = self.run(dag_id, run_id)
            return run if run["state"] in TERMINAL_STATES and _ended_after(run, after) else None

        run = wait_until(finished, timeout=timeout, what=f"DAG run {dag_id}/{run_id} to finish", interval=2)
        assert run["state"] == "success", self.failure_summary(dag_id, run_id)
        return run

    def wait_for_backfill(self, backfill_id: int, *, timeout: float) -> dict:
        def completed() -> dict | None:
            self.check_alive()
            backfill = self.call("GET", f"/backfills/{backfill_id}")
            return backfill if backfill["completed_at"] else None

        return wait_until(completed, timeout=timeout, what=f"backfill {backfill_id} to complete", interval=2)

    def failure_summary(self, dag_id: str, run_id: str) -> str:
        """Which task instances did not succeed, to say at once where a failed run broke."""
        tis = self.task_instances(dag_id, run_id)
        broken = [f"{t['task_id']}[{t['map_index']}]={t['state']}" for t in tis if t["state"] != "success"]
        return f"run {run_id} did not succeed; tasks not successful: {broken}"


def _ended_after(run: dict, after: str | None) -> bool:
    # A cleared run keeps its run_id; only a later end date tells its new attempt has finished.
    return after is None or (run["end_date"] is not None and _utc(run["end_date"]) > _utc(after))


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the stack ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringPaths:
    """Where the DAGs read and write: input partitions, model bundle, staging, predictions database."""

    input_root: Path
    model_uri: Path
    staging_root: Path
    database_url: str


def airflow_env(
    home: Path, port: int, metadata_url: str, scoring: ScoringPaths, executor: str, extra: dict[str, str]
) -> dict[str, str]:
    """The one environment all components share; nothing is inherited from the caller's Airflow settings."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SCORING_"))}
    return {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": executor,
        # Few task slots: the machine has two cores and a run has at most a handful of shards.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        # Workers reach the execution API through this URL, so it must name our port.
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        # New DAG files show up within seconds instead of the default minutes.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # The log server port defaults to 8793 for everyone; a free one avoids clashing with other stacks.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW_CONN_SCORING_DB": scoring.database_url,
        "SCORING_INPUT_ROOT": str(scoring.input_root),
        "SCORING_MODEL_URI": str(scoring.model_uri),
        "SCORING_STAGING_ROOT": str(scoring.staging_root),
        **extra,
    }


@dataclass(frozen=True)
class CeleryWorker:
    """What identifies the stack's Celery worker: the queue only it serves, the hostname only it reports."""

    queue: str
    hostname: str

    def env(self, stack_env: dict[str, str]) -> dict[str, str]:
        """The stack's environment plus the hostname marker, seen by this worker's task processes alone."""
        here = str(Path(__file__).parent)
        return {
            **stack_env,
            "PYTHONPATH": os.pathsep.join([stack_env["PYTHONPATH"], here]),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_identity.hostname",
            "E2E_WORKER_HOSTNAME": self.hostname,
        }

    def args(self) -> list[str]:
        # No mingle/gossip: no peers to sync with; no log server: the API server reads the same local disk.
        return [
            *("celery", "worker", "--concurrency", "2", "--queues", self.queue),
            *("--without-mingle", "--without-gossip", "--skip-serve-logs"),
        ]


@dataclass
class AirflowStack:
    """Running Airflow components, their logs, and the API client to drive them."""

    home: Path
    env: dict[str, str]
    api: AirflowApi
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    worker: CeleryWorker | None = None

    def start_worker(self, worker: CeleryWorker) -> None:
        """Start `airflow celery worker` as one more component of this stack."""
        self.worker = worker
        self.start("celery-worker", *worker.args(), env=worker.env(self.env))

    def log_path(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Start one component in its own process group, its output in <home>/<name>.log."""
        with self.log_path(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [AIRFLOW, *args],
                env=env or self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop(self) -> None:
        """Terminate every process started here and all their descendants, then kill what is left."""
        # Task processes put themselves in their own process groups, so they are found by ancestry.
        family = [p for popen in self.processes.values() for p in _process_tree(popen.pid)]
        for popen in self.processes.values():
            _signal_group(popen.pid, signal.SIGTERM)
        _gone, alive = psutil.wait_procs(family, timeout=20)
        for proc in alive:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.kill()
        psutil.wait_procs(alive, timeout=10)
        for popen in self.processes.values():
            popen.wait(timeout=10)

    def check_alive(self) -> None:
        """Fail with the logs if a component died: waiting on a dead stack only wastes the time budget."""
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        assert not dead, f"Airflow component(s) exited: {dead}\n{self.log_tails()}"

    def log_tails(self, lines: int = 40) -> str:
        """The end of each component's log, and of any failed task's log, for a failure report."""
        parts = []
        for path in [*map(self.log_path, self.processes), *_failed_task_logs(self.home / "logs")]:
            text = path.read_text(errors="replace").splitlines() if path.exists() else ["<no log>"]
            parts.append(f"----- {path.name} (last {lines} lines) -----\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def task_log_errors(self, dag_id: str, run_id: str) -> list[str]:
        """ERROR lines in the task logs of one DAG run: a clean, successful run has none."""
        run_logs = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        return [line for path in sorted(run_logs.rglob("*.log")) for line in _error_lines(path)]

    def task_log_events(self, dag_id: str, run_id: str, task_id: str) -> list[str]:
        """The messages a task of one DAG run logged, every try, in order (the UI's log view, line by line)."""
        run_logs = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        lines = [
            line for path in sorted(run_logs.rglob("*.log")) for line in path.read_text(errors="replace").splitlines()
        ]
        return [json.loads(line).get("event", "") for line in lines if line.startswith("{")]

    def grep_log(self, name: str, needle: str) -> list[str]:
        return [line for line in self.log_path(name).read_text(errors="replace").splitlines() if needle in line]


def _process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_group(pid: int, sig: int) -> None:
    # The group may already be gone: stopping is best effort, and idempotent.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _failed_task_logs(log_root: Path) -> list[Path]:
    """Task log files that mention an error; Airflow writes them under <home>/logs/dag_id=.../."""
    return [path for path in sorted(log_root.rglob("*.log")) if _error_lines(path)]


def _error_lines(task_log: Path) -> list[str]:
    # Task logs are JSON lines; the level field is the one reliable marker of an error.
    return [line for line in task_log.read_text(errors="replace").splitlines() if '"level":"error"' in line]


@contextmanager
def metadata_database(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for Airflow's metadata, dropped afterwards whatever happened."""
    name = f"airflow_e2e_{secrets.token_hex(6)}"
    admin = sa.create_engine(normalize_database_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.engine.make_url(normalize_database_url(postgres_url)).set(
            drivername="postgresql+psycopg2", database=name
        )
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            # FORCE: a component killed mid-query may leave a backend that would block the drop.
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrate(env: dict[str, str], home: Path) -> None:
    """`airflow db migrate`, as an operator runs it before starting any component."""
    # The login must exist before the API server starts: it reads the passwords file once.
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    done = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@contextmanager
def running_stack(
    home: Path,
    postgres_url: str,
    scoring: ScoringPaths,
    executor: str,
    *,
    extra_env: dict[str, str] | None = None,
    boot_timeout: float = 120,
) -> Iterator[AirflowStack]:
    """API server, scheduler and dag-processor on a fresh metadata database; all stopped and dropped after."""
    port = free_port()
    with metadata_database(postgres_url) as metadata_url:
        env = airflow_env(home, port, metadata_url, scoring, executor, extra_env or {})
        migrate(env, home)
        stack = AirflowStack(home=home, env=env, api=AirflowApi(f"http://localhost:{port}"))
        stack.api.check_alive = stack.check_alive
        try:
            stack.start("api-server", "api-server", "--port", str(port), "--workers", "1")
            stack.start("scheduler", "scheduler")
            stack.start("dag-processor", "dag-processor")
            wait_for_login(stack, boot_timeout)
            yield stack
        finally:
            stack.stop()


def wait_for_login(stack: AirflowStack, timeout: float) -> None:
    def logged_in() -> bool | None:
        stack.api.check_alive()
        return stack.api.login()

    try:
        wait_until(logged_in, timeout=timeout, what="the API server to issue a token", interval=2)
    except StackTimeout as exc:
        raise StackTimeout(f"{exc}\n{stack.log_tails()}") from exc


def wait_for_dag(stack: AirflowStack, dag_id: str, timeout: float = 90) -> None:
    """Block until the dag-processor has parsed `dag_id`, as a user waits for it to show in the UI."""

    def parsed() -> bool | None:
        stack.api.check_alive()
        return stack.api.dag_is_parsed(dag_id)

    wait_until(parsed, timeout=timeout, what=f"DAG {dag_id} to be parsed", interval=2)


def forget_queue(redis_url: str, queue: str) -> None:
    """Delete what Celery left in Redis for a private queue, so test runs do not pile up keys there."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        # The queue name is random per run, so this pattern only ever matches this run's keys.
        for key in client.scan_iter(match=f"*{queue}*"):
            client.delete(key)
    finally:
        client.close()


# --- the predictions database ---------------------------------------------------------------


def partition_counts(database_url: str, job: str) -> dict[str, tuple[int, int]]:
    """{partition_key: (rows, distinct record ids)} of one job's predictions."""
    query = sa.text(
        "SELECT partition_key, count(*), count(DISTINCT record_id) FROM predictions "
        "WHERE job = :job GROUP BY partition_key"
    )
    return {key: (rows, ids) for key, rows, ids in _fetch(database_url, query, job=job)}


def scoring_run_ids(database_url: str, job: str, partition_key: str) -> list[str]:
    """The published scoring runs of one partition, oldest first."""
    query = sa.text(
        "SELECT run_id FROM scoring_runs WHERE job = :job AND partition_key = :key "
        "AND status = 'published' ORDER BY finished_at"
    )
    return [run_id for (run_id,) in _fetch(database_url, query, job=job, key=partition_key)]


def _fetch(database_url: str, query: sa.TextClause, **params: str) -> list[sa.Row]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(query, params))
    finally:
        engine.dispose()
