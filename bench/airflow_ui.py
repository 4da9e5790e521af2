"""The demo's daily partition triggered as the UI triggers it, under `make airflow`, beside `scoring score`.

    .venv/bin/python bench/airflow_ui.py [--repeat 1] [--database postgresql://postgres@127.0.0.1:5432/test]

Starts `make airflow` (standalone: API server, scheduler, dag-processor, triggerer; LocalExecutor)
with VAR_DIR in a temporary folder and free ports, the predictions going to a fresh schema of the
given PostgreSQL database. The demo day (48 files of 10,000 rides, one shard) is written before the
stack starts, so the sensor's first poke finds it and no poke interval is paid.

Each repeat times `scoring score` of the day (a fresh process, the idle stack running beside it),
then POSTs /api/v2/dags/score_rides_daily/dagRuns with a JWT from /auth/token (what the UI's Trigger
button sends: a logical date of now and the form's params as conf) and waits for the run's success.
It prints trigger-to-success seconds, the CLI's, their ratio, and each task instance's timeline
(scheduled -> queued -> running -> done) relative to the trigger. Everything it started is stopped,
and the schema dropped, on success, failure or Ctrl-C.

One deviation from a bare `make airflow`: AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False, so unpausing the
DAG does not also start yesterday's scheduled run, whose data never comes and whose sensor would
compete with the measured run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psutil
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAG_ID = "score_rides_daily"
DAY = "2026-01-01"
USER = PASSWORD = "admin"  # mk/airflow.mk's defaults
BOOT_TIMEOUT = 240
RUN_TIMEOUT = 600


class Interrupted(Exception):
    """SIGTERM, turned into an exception so the stack is stopped in `finally`."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _utc(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Stack:
    """`make airflow` running in its own session, and the REST API client that drives it."""

    var_dir: Path
    database: str
    port: int
    log_path: Path
    make: subprocess.Popen | None = None
    session: requests.Session | None = None

    def scoring_env(self) -> dict[str, str]:
        """What `scoring score` reads: the same input, model, staging and database the DAG uses."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SCORING_"))}
        return {
            **clean,
            "SCORING_DATABASE_URL": self.database,
            "SCORING_INPUT_ROOT": str(self.var_dir / "data" / "input"),
            "SCORING_MODEL_URI": str(self.var_dir / "models" / "ride_duration" / "1"),
            "SCORING_MODEL_ROOTS": str(self.var_dir / "models"),
            "SCORING_STAGING_ROOT": str(self.var_dir / "staging"),
        }

    def start(self) -> None:
        """`make airflow` with every file under VAR_DIR and every port free, in a session of its own."""
        make_vars = {
            "VAR_DIR": str(self.var_dir),
            "AIRFLOW_PORT": str(self.port),
            "AIRFLOW_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW_TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "SCORING_DB_URI": self.database,
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SCORING_"))}
        env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
        with self.log_path.open("wb") as log:
            self.make = subprocess.Popen(
                ["make", "--no-print-directory", "airflow", *(f"{k}={v}" for k, v in make_vars.items())],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def family(self) -> set[psutil.Process]:
        if self.make is None:
            return set()
        try:
            root = psutil.Process(self.make.pid)
            return {root, *root.children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def stop(self) -> list[int]:
        """SIGTERM to make's session and every process below it, SIGKILL after 30 s; pids that survived."""
        if self.make is None:
            return []
        family = self.family()
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.make.pid, signal.SIGTERM)
        for proc in family:
            with suppress(psutil.NoSuchProcess):
                proc.terminate()
        _gone, alive = psutil.wait_procs(family, timeout=30)
        # Task processes started meanwhile, or left in groups of their own: found by ancestry again.
        alive = set(alive) | self.family()
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.make.pid, signal.SIGKILL)
        for proc in alive:
            with suppress(psutil.NoSuchProcess):
                proc.kill()
        _gone, survivors = psutil.wait_procs(alive, timeout=10)
        with suppress(subprocess.TimeoutExpired):
            self.make.wait(timeout=10)
        return [p.pid for p in survivors if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    def _check_alive(self) -> None:
        assert self.make is not None
        if self.make.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"make airflow exited with {self.make.returncode}:\n{tail}")

    def _wait(self, check, what: str, timeout: float, interval: float) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with suppress(requests.ConnectionError, requests.Timeout):
                result = check()
                if result is not None:
                    return result
            time.sleep(interval)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}; see {self.log_path}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self) -> None:
        """Scheduler and dag-processor healthy, a token fetched, the DAG parsed and unpaused."""

        def healthy() -> bool | None:
            report = requests.get(self.url("/api/v2/monitor/health"), timeout=5).json()
            parts = ("metadatabase", "scheduler", "dag_processor")
            return True if all(report[p]["status"] == "healthy" for p in parts) else None

        self._wait(healthy, "the stack to report healthy", BOOT_TIMEOUT, 2)
        session = requests.Session()
        response = session.post(self.url("/auth/token"), json={"username": USER, "password": PASSWORD}, timeout=30)
        response.raise_for_status()
        session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        self.session = session

        def parsed() -> bool | None:
            return True if session.get(self.url(f"/api/v2/dags/{DAG_ID}"), timeout=30).status_code == 200 else None

        self._wait(parsed, f"{DAG_ID} to be parsed", BOOT_TIMEOUT, 2)
        self.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})

    def call(self, method: str, path: str, **kwargs) -> dict:
        assert self.session is not None
        response = self.session.request(method, self.url(f"/api/v2{path}"), timeout=30, **kwargs)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:1000]}")
        return response.json()

    def trigger_and_wait(self) -> tuple[float, float, dict, list[dict]]:
        """UI-style trigger; (trigger time, seconds until success was seen, the run, its task instances)."""
        # The UI's form: logical date now, the params as conf (Partition filled in).
        body = {"logical_date": datetime.now(timezone.utc).isoformat(), "conf": {"partition": DAY}}
        triggered = time.time()
        run_id = self.call("POST", f"/dags/{DAG_ID}/dagRuns", json=body)["dag_run_id"]
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            self._check_alive()
            run = self.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                seen = time.time() - triggered
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} not finished after {RUN_TIMEOUT}s")
            time.sleep(0.2)
        tis = self.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        if run["state"] != "success":
            broken = [f"{t['task_id']}={t['state']}" for t in tis["task_instances"] if t["state"] != "success"]
            raise RuntimeError(f"run {run_id} failed: {broken}; task logs under {self.var_dir}/airflow/logs")
        return triggered, seen, run, tis["task_instances"]


def cli_seconds(stack: Stack) -> float:
    """Wall time of `scoring score` of the day, a fresh process."""
    started = time.perf_counter()
    _run([BIN / "scoring", "score", "--job", DAG_ID, "--partition", DAY], stack.scoring_env())
    return time.perf_counter() - started


def _run(args: list, env: dict[str, str]) -> None:
    result = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise RuntimeError(f"{Path(str(args[0])).name} {args[1]} failed")


def timeline(triggered: float, run: dict, tis: list[dict], log_dir: Path) -> list[str]:
    """Each task instance's scheduled, queued, start and end, in seconds after the trigger, and its gaps."""

    def at(text: str | None) -> str:
        moment = _utc(text)
        return "   -  " if moment is None else f"{moment - triggered:6.2f}"

    lines = [
        f"  run: queued {at(run.get('queued_at'))}  start {at(run['start_date'])}  end {at(run['end_date'])}",
        "  task (s after trigger) sched  queued  start    end   queue->start  start->end  (task log: pre-execute, body, post)",
    ]
    order = sorted(tis, key=lambda t: (_utc(t["start_date"]) or 0.0, t["map_index"]))
    for t in order:
        name = t["task_id"] + (f"[{t['map_index']}]" if t["map_index"] >= 0 else "")
        queued, start, end = _utc(t["queued_when"]), _utc(t["start_date"]), _utc(t["end_date"])
        wait = f"{start - queued:6.2f}" if queued and start else "   -  "
        took = f"{end - start:6.2f}" if start and end else "   -  "
        lines.append(
            f"  {name:20s} {at(t['scheduled_when'])} {at(t['queued_when'])} {at(t['start_date'])} "
            f"{at(t['end_date'])}       {wait}      {took}" + log_split(log_dir, t["task_id"], t["map_index"])
        )
    return lines


def log_split(log_dir: Path, task_id: str, map_index: int) -> str:
    """A task's time from its own log: pre-execute (process start, DAG parse), body (our code), post (XCom push)."""
    path = log_dir / f"task_id={task_id}" / (f"map_index={map_index}" if map_index >= 0 else "") / "attempt=1.log"
    if not path.is_file():
        return ""
    stamps: list[tuple[float, str]] = []
    for line in path.read_text(errors="replace").splitlines():
        with suppress(ValueError):
            record = json.loads(line)
            stamps.append((_utc(record["timestamp"]) or 0.0, record.get("event", "")))
    marks = [
        moment for moment, event in stamps if event in ("::group::Pre Execute", "::endgroup::", "::group::Post Execute")
    ]
    if len(marks) < 4:
        return ""
    pre, body, post = marks[1] - marks[0], marks[2] - marks[1], marks[3] - marks[2]
    return f"  log: pre {pre:5.2f} body {body:5.2f} post {post:5.2f}"


def bench(base_url: str, repeat: int, keep_logs: Path | None) -> int:
    schema = f"bench_ui_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(base_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    # No '&' in it: mk/airflow.mk puts the URL on a shell line unquoted.
    database = f"{base_url}?options=-csearch_path%3D{schema}"
    with tempfile.TemporaryDirectory(prefix="airflow-ui-") as tmp:
        var_dir = Path(tmp) / "var"
        stack = Stack(var_dir=var_dir, database=database, port=free_port(), log_path=Path(tmp) / "make-airflow.log")
        try:
            env = stack.scoring_env()
            # The day exists before anything starts: the sensor's first poke succeeds.
            _run([BIN / "scoring", "demo", "--day", DAY, "--input", env["SCORING_INPUT_ROOT"],
                  "--model", env["SCORING_MODEL_URI"]], env)  # fmt: skip
            files = len(list((var_dir / "data" / "input").rglob("*.parquet")))
            print(f"demo day {DAY}: {files} files; starting make airflow (VAR_DIR={var_dir}, port {stack.port})")
            booted = time.perf_counter()
            stack.start()
            stack.wait_ready()
            print(f"stack healthy, {DAG_ID} parsed and unpaused after {time.perf_counter() - booted:.1f} s")
            for attempt in range(1, repeat + 1):
                cli = cli_seconds(stack)
                triggered, seen, run, tis = stack.trigger_and_wait()
                by_end = (_utc(run["end_date"]) or triggered) - triggered
                print(f"\n#{attempt} scoring score (CLI)      : {cli:6.2f} s")
                print(
                    f"#{attempt} UI trigger -> success   : {seen:6.2f} s polled, {by_end:6.2f} s to the run's end_date"
                )
                print(f"#{attempt} ratio UI-triggered / CLI : {seen / cli:6.2f}x")
                log_dir = var_dir / "airflow" / "logs" / f"dag_id={DAG_ID}" / f"run_id={run['dag_run_id']}"
                print("\n".join(timeline(triggered, run, tis, log_dir)))
        except Interrupted:
            print("interrupted: stopping the stack", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print("interrupted: stopping the stack", file=sys.stderr)
            return 130
        finally:
            # A second Ctrl-C must not cut the stopping short.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            survivors = stack.stop()
            if keep_logs is not None and (var_dir / "airflow" / "logs").is_dir():
                shutil.copytree(var_dir / "airflow" / "logs", keep_logs, dirs_exist_ok=True)
                shutil.copy(stack.log_path, keep_logs / "make-airflow.log")
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            engine.dispose()
            signal.signal(signal.SIGINT, previous)
            if survivors:
                print(f"still running after SIGKILL: {survivors}", file=sys.stderr)
    return 0


def _on_sigterm(_signum, _frame) -> None:
    raise Interrupted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="triggered runs on the one stack")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep-logs", type=Path, help="copy Airflow's task logs and make's output here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C raises KeyboardInterrupt even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return bench(args.database, args.repeat, args.keep_logs)
    except RuntimeError as exc:
        print(f"airflow_ui: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
