"""The DAG's cleanup task sweeps stale staging that killed runs left behind, and keeps a run still writing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from scoring import storage
from scoring.batch.staging import shard_prefix

JOB = "score_rides_hourly"


def _stage_run(root: Path, run_id: str, *, age_hours: float) -> list[Path]:
    """Two shards' files of one run, last written `age_hours` ago."""
    written = []
    stamp = time.time() - age_hours * 3600
    for index in range(2):
        prefix = shard_prefix(str(root), JOB, "2026-01-01T05", run_id, index)
        for kind in ("predictions", "rejected"):
            path = Path(f"{prefix}.{kind}.parquet")
            storage.write_bytes(str(path), b"x" * 10)
            os.utime(path, (stamp, stamp))
            written.append(path)
    return written


@pytest.fixture
def staging(monkeypatch, tmp_path) -> Path:
    root = tmp_path / "staging"
    monkeypatch.setenv("SCORING_STAGING_ROOT", str(root))
    monkeypatch.setenv("SCORING_STAGING_MAX_AGE_HOURS", "6")
    return root


def test_cleanup_sweeps_another_runs_stale_staging_and_keeps_a_fresh_run(staging):
    from scoring.settings import Settings
    from scoring_airflow.run_tasks import cleanup

    # Given a run killed 7 hours ago (past the 6-hour age) and a run whose shards are being written now
    killed = _stage_run(staging, "manual__killed.try1", age_hours=7)
    fresh = _stage_run(staging, "manual__busy.try1", age_hours=0)
    # When the cleanup task of a third run (one that failed before it was planned) runs
    line = cleanup(Settings.from_env(), None, "manual__third")
    # Then the killed run's files and folder are gone, the busy run's are all kept, and the line says so
    assert not any(path.exists() for path in killed)
    assert not (staging / JOB / "2026-01-01T05" / "manual__killed.try1").exists()
    assert all(path.exists() for path in fresh)
    assert line.startswith("swept 1 staged run(s), 4 file(s), 40 bytes older than 6 hours from ")
