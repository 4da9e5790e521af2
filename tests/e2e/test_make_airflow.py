"""`make airflow` as a new user runs it: from a fresh shell with nothing activated, it comes up and answers.

The make target is run with the bare environment `env -i HOME=... PATH=/usr/local/bin:/usr/bin:/bin`
gives, everything it writes pointed at a temporary directory (VAR_DIR) and its ports at free ones,
so it neither touches the repository's var/ nor clashes with another Airflow on this machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import suppress
from pathlib import Path

import psutil
import pytest
import requests

from tests.e2e.airflow_stack import ROOT, wait_until
from tests.support.gunicorn import free_port

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

BOOT_TIMEOUT = 180
FRESH_SHELL_PATH = "/usr/local/bin:/usr/bin:/bin"  # no .venv/bin: nothing activated


def health(port: int) -> dict | None:
    """The API server's health report, or None while it does not answer yet."""
    response = requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5)
    return response.json() if response.status_code == 200 else None


def scheduler_and_processor_healthy(port: int, make: subprocess.Popen) -> dict | None:
    assert make.poll() is None, f"make airflow exited with {make.returncode}"
    report = health(port)
    healthy = report and all(report[part]["status"] == "healthy" for part in ("scheduler", "dag_processor"))
    return report if healthy else None


def stop_group(make: subprocess.Popen, family: set[psutil.Process]) -> list[psutil.Process]:
    """SIGTERM to make's process group and every process seen below it, SIGKILL after 30 s; what survived."""
    with suppress(ProcessLookupError):
        os.killpg(make.pid, signal.SIGTERM)
    for proc in family:
        with suppress(psutil.NoSuchProcess):
            proc.terminate()
    _gone, alive = psutil.wait_procs(family, timeout=30)
    with suppress(ProcessLookupError):
        os.killpg(make.pid, signal.SIGKILL)
    for proc in alive:
        with suppress(psutil.NoSuchProcess):
            proc.kill()
    make.wait(timeout=30)
    _gone, survivors = psutil.wait_procs(alive, timeout=10)
    return survivors


def descendants(pid: int) -> set[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return {root, *root.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def test_make_airflow_from_a_fresh_shell_comes_up_healthy_and_stops_cleanly(tmp_path: Path):
    # Given a shell with nothing activated, and make variables that keep every file and port private
    port = free_port()
    var_dir = tmp_path / "var"
    make_vars = {
        "VAR_DIR": str(var_dir),
        "AIRFLOW_PORT": str(port),
        "AIRFLOW_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW_TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "SCORING_DB_URI": f"sqlite:///{tmp_path / 'scoring.db'}",
    }
    log_path = tmp_path / "make-airflow.log"
    # When the user runs `make airflow` there
    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "airflow", *(f"{k}={v}" for k, v in make_vars.items())],
            cwd=ROOT,
            env={"HOME": os.environ["HOME"], "PATH": FRESH_SHELL_PATH},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    family: set[psutil.Process] = set()

    def up() -> dict | None:
        family.update(descendants(make.pid))  # task-less here, but components are found by ancestry
        return scheduler_and_processor_healthy(port, make)

    try:
        # Then the API server answers, and reports the scheduler and the dag-processor healthy
        report = wait_until(up, timeout=BOOT_TIMEOUT, what="make airflow to report healthy", interval=3)
        assert report["metadatabase"]["status"] == "healthy"
        # ... its files went where VAR_DIR says: the metadata, and the demo bundle it trains if missing
        assert (var_dir / "airflow" / "airflow.db").is_file()
        assert (var_dir / "models" / "ride_duration" / "1" / "model.json").is_file()
        # ... and the components run the venv's airflow, found on the PATH make sets, not the caller's
        commands = {" ".join(p.cmdline()[:3]) for p in family if p.is_running()}
        assert any(str(ROOT / ".venv" / "bin" / "airflow") in c for c in commands), commands
        # ... with LocalExecutor sized to the machine: two tasks per core (nproc counts the usable ones),
        # said in the banner and given to the components, not Airflow's default of 32
        cores = len(os.sched_getaffinity(0))
        banner = log_path.read_text(errors="replace")
        assert f"LocalExecutor: at most {2 * cores} tasks at once ({cores} cores;" in banner
        venv_airflow = str(ROOT / ".venv" / "bin" / "airflow")
        parallelism = {
            p.environ().get("AIRFLOW__CORE__PARALLELISM")
            for p in family
            # the components themselves (`python .venv/bin/airflow scheduler`), not the shell make starts them from
            if p.is_running() and venv_airflow in p.cmdline()[:2]
        }
        assert parallelism == {str(2 * cores)}, parallelism
    except BaseException:
        print(log_path.read_text(errors="replace")[-5000:])
        raise
    finally:
        # Then stopping the process group leaves nothing of it running
        family.update(descendants(make.pid))
        survivors = stop_group(make, family)
    assert survivors == [], f"still running after SIGKILL: {[p.pid for p in survivors]}"
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
