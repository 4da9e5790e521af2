"""`make demo` keeps its promises when it fails: the DAG is paused again and nothing it started runs on.

The run is made to fail on purpose (its runs get one second to finish), from a fresh shell, with every
file under a temporary VAR_DIR and every port free, so the repository's var/ is untouched.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e.airflow_stack import ROOT
from tests.e2e.test_make_airflow import FRESH_SHELL_PATH, descendants, stop_group
from tests.support.gunicorn import free_port

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

DEMO_LIMIT = 600  # seconds: the whole make demo, failure and cleanup included


def test_a_failed_make_demo_leaves_the_dag_paused_and_nothing_running(tmp_path: Path):
    # Given a fresh shell, private files and ports, and a demo whose runs cannot finish in time
    var_dir = tmp_path / "var"
    make_vars = {
        "VAR_DIR": str(var_dir),
        "AIRFLOW_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW_TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "SCORING_DB_URI": f"sqlite:///{tmp_path / 'scoring.db'}",
    }
    env = {"HOME": os.environ["HOME"], "PATH": FRESH_SHELL_PATH, "DEMO_HOURS": "1", "DEMO_TIMEOUT": "1"}
    log_path = tmp_path / "make-demo.log"
    family: set[psutil.Process] = set()
    # When make demo runs and fails
    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "demo", *(f"{k}={v}" for k, v in make_vars.items())],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + DEMO_LIMIT
    while make.poll() is None and time.monotonic() < deadline:
        family.update(descendants(make.pid))
        time.sleep(1)
    output = log_path.read_text(errors="replace")
    if make.poll() is None:
        stop_group(make, family)
        pytest.fail(f"make demo did not end within {DEMO_LIMIT}s:\n{output[-3000:]}")
    # Then it failed, saying why
    assert make.returncode != 0, output[-3000:]
    assert "did not finish within 1s" in output, output[-3000:]
    # And the DAG it unpaused for its backfill is paused again
    with sqlite3.connect(var_dir / "airflow" / "airflow.db") as metadata:
        paused = dict(metadata.execute("SELECT dag_id, is_paused FROM dag").fetchall())
    assert paused["score_rides_hourly"] == 1
    # And nothing it started (dag-processor, scheduler, execution API, their task processes) is running
    started = {p for p in family if p.pid != make.pid}
    assert len(started) >= 3, "the demo's components were never seen running"
    running = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert running == [], [" ".join(p.cmdline()[:4]) for p in running]
