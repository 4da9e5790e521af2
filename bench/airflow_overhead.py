"""`airflow dags test score_rides_daily` against `scoring score` on the demo's daily partition, in one run.

    .venv/bin/python bench/airflow_overhead.py [--repeat 3] [--database postgresql://postgres@127.0.0.1/test]

Both score the same 480,000 rides (48 files of 10,000 rows, one shard) into the same PostgreSQL
schema, alternately, each in a fresh process, so both pay their imports. The Airflow run is split
from its own log: start-up (the CLI, parsing and syncing the DAGs, creating the DAG run), each
task's body (our code, between Airflow's pre- and post-execute), and what Airflow spends around
each task (the in-process execution API, state updates, XComs). Medians are printed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAG_ID = "score_rides_daily"
DAY = "2026-01-01"
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")
_START = re.compile(r"\[DAG TEST\] starting task_id=(\w+)")
_END = re.compile(r"\[DAG TEST\] end task task_id=(\w+)")


@dataclass
class AirflowRun:
    """One `airflow dags test`, timed from outside and split by its own log."""

    total: float
    startup: float  # process start to the first task: CLI import, DAG parse and sync, DAG run created
    bodies: dict[str, float] = field(default_factory=dict)  # each task's own code (execute)
    around: float = 0.0  # Airflow's share of the tasks: execution API, state, XCom, between tasks
    exit: float = 0.0  # after the last task until the process is gone

    def body(self) -> float:
        return sum(self.bodies.values())


def parse_log(log: str, started: float, ended: float) -> AirflowRun:
    """Split a `dags test` log into start-up, task bodies, Airflow around the tasks, and exit."""
    first = last = None
    bodies: dict[str, float] = {}
    task = body_start = None
    for line in log.splitlines():
        stamp = _STAMP.match(line)
        if not stamp:
            continue
        moment = datetime.fromisoformat(stamp.group(1) + "+00:00").timestamp()
        if (match := _START.search(line)) is not None:
            task, body_start = match.group(1), None
            first = first if first is not None else moment
        elif task and body_start is None and "::endgroup::" in line:
            body_start = moment  # pre-execute is over: the task's own callable runs now
        elif task and body_start is not None and "::group::Post Execute" in line:
            bodies[task] = bodies.get(task, 0.0) + moment - body_start
        elif _END.search(line):
            last = moment
    if first is None or last is None:
        raise RuntimeError("the dags test log has no task: see its output")
    run = AirflowRun(total=ended - started, startup=first - started, bodies=bodies, exit=ended - last)
    run.around = last - first - run.body()
    return run


@dataclass(frozen=True)
class Setup:
    """The demo partition, bundle, predictions schema and Airflow home both ways share."""

    work: Path
    database: str

    def env(self) -> dict[str, str]:
        home = self.work / "airflow"
        return {
            **os.environ,
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT / "plugins"),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW_CONN_SCORING_DB": self.database,
            "SCORING_DATABASE_URL": self.database,
            "SCORING_INPUT_ROOT": str(self.work / "input"),
            "SCORING_MODEL_URI": str(self.work / "models" / "ride_duration" / "1"),
            "SCORING_MODEL_ROOTS": str(self.work / "models"),
            "SCORING_STAGING_ROOT": str(self.work / "staging"),
        }


def prepare(work: Path, base_url: str) -> tuple[Setup, str]:
    """Demo data and bundle, a fresh schema at the head revision, a migrated Airflow home; returns the schema too."""
    schema = f"bench_af_{uuid.uuid4().hex[:8]}"
    with sa.create_engine(_plain(base_url)).begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    setup = Setup(work=work, database=f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}")
    env = setup.env()
    (work / "airflow").mkdir(parents=True)
    _run([BIN / "scoring", "demo", "--input", env["SCORING_INPUT_ROOT"], "--model", env["SCORING_MODEL_URI"]], env)
    _run([BIN / "scoring", "db", "upgrade", "--database", setup.database], env)
    _run([BIN / "airflow", "db", "migrate"], env)
    return setup, schema


def drop(base_url: str, schema: str) -> None:
    with sa.create_engine(_plain(base_url)).begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


def _plain(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def _run(args: list, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise RuntimeError(f"{Path(str(args[0])).name} {args[1]} failed")
    return result


def cli_seconds(setup: Setup) -> float:
    """Wall time of `scoring score` of the day, a fresh process."""
    started = time.perf_counter()
    _run([BIN / "scoring", "score", "--job", DAG_ID, "--partition", DAY], setup.env())
    return time.perf_counter() - started


def airflow_run(setup: Setup) -> AirflowRun:
    """One `airflow dags test` of the day, a fresh process, split by its log."""
    started = time.time()
    result = _run([BIN / "airflow", "dags", "test", DAG_ID, DAY], setup.env())
    ended = time.time()
    if "state=success" not in result.stdout + result.stderr:
        raise RuntimeError("the dags test run did not succeed")
    return parse_log(result.stdout + result.stderr, started, ended)


@dataclass
class Comparison:
    """Medians of both ways over the repeats."""

    cli: float
    airflow: float
    startup: float
    bodies: dict[str, float]
    around: float
    exit: float

    def ratio(self) -> float:
        return self.airflow / self.cli

    def lines(self) -> list[str]:
        body = sum(self.bodies.values())
        tasks = ", ".join(f"{name} {seconds:.2f}" for name, seconds in self.bodies.items())
        return [
            f"scoring score (CLI)      : {self.cli:6.2f} s",
            f"airflow dags test        : {self.airflow:6.2f} s  = Airflow/CLI {self.ratio():.2f}x (target <= 2x)",
            f"  start-up (Airflow)     : {self.startup:6.2f} s  CLI import, DAG parse and sync, DAG run",
            f"  task bodies (ours)     : {body:6.2f} s  {tasks}",
            f"  around tasks (Airflow) : {self.around:6.2f} s  in-process execution API, task state, XComs",
            f"  exit                   : {self.exit:6.2f} s",
        ]


def compare(base_url: str, repeat: int) -> Comparison:
    """Both ways, alternately, `repeat` times each on one machine state; their medians."""
    with tempfile.TemporaryDirectory() as tmp:
        setup, schema = prepare(Path(tmp), base_url)
        try:
            clis, runs = [], []
            for _ in range(repeat):
                clis.append(cli_seconds(setup))
                runs.append(airflow_run(setup))
        finally:
            drop(base_url, schema)
    median = statistics.median
    names = list(runs[0].bodies)
    return Comparison(
        cli=median(clis),
        airflow=median(r.total for r in runs),
        startup=median(r.startup for r in runs),
        bodies={name: median(r.bodies.get(name, 0.0) for r in runs) for name in names},
        around=median(r.around for r in runs),
        exit=median(r.exit for r in runs),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    for line in compare(args.database, args.repeat).lines():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
