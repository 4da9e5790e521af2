"""Helpers for batch tests: write partitions, run the engine, read the tables back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from scoring.batch import RunPlan, RunSummary, plan_run, score_partition
from scoring.batch.partitions import PartitionKey
from scoring.demo.synthetic import write_partition
from scoring.model.predict import Predictor

JOB = "score_rides_hourly"
HOUR = PartitionKey.parse("2026-03-01T05")


def write_rides(root: str, rides: pd.DataFrame, key: PartitionKey = HOUR, files: int = 2, file_format: str = "parquet"):
    return write_partition(root, "rides", key, rides, files=files, file_format=file_format)


def run(
    predictor: Predictor, engine: sa.Engine, root: str, staging: str, key: PartitionKey = HOUR, **kwargs
) -> RunSummary:
    options = {"chunk_rows": 97, "reject_threshold": 0.01, **kwargs}
    return score_partition(
        predictor, engine, job=JOB, partition=key, input_root=root, dataset="rides", staging_root=staging, **options
    )


def plan_for(
    predictor: Predictor, tmp_path: Path, key: PartitionKey = HOUR, job: str = JOB, **overrides: Any
) -> RunPlan:
    """The plan of a run over `tmp_path/in`, staging under `tmp_path/stage`, with the predictor's bundle."""
    options = {"model_uri": predictor.bundle.uri, "model": predictor.bundle.manifest, "dataset": "rides", **overrides}
    return plan_run(
        job=job, partition=key, input_root=str(tmp_path / "in"), staging_root=str(tmp_path / "stage"), **options
    )


def stored(engine: sa.Engine, key: PartitionKey = HOUR) -> pd.DataFrame:
    query = sa.text(
        "SELECT record_id, prediction, run_id, model_name, model_version FROM predictions "
        "WHERE job = :job AND partition_key = :key ORDER BY record_id"
    )
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query, {"job": JOB, "key": str(key)}).mappings().all())


def runs(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.text("SELECT * FROM scoring_runs ORDER BY finished_at")).mappings().all())


def rejects(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(
            conn.execute(sa.text("SELECT * FROM rejected_records ORDER BY record_id, id")).mappings().all()
        )


def head_revision() -> str:
    """The newest migration's revision id (its file name starts with it), as the revision check names it."""
    versions = Path(__file__).resolve().parents[2] / "scoring" / "batch" / "store" / "migrations" / "versions"
    return sorted(path.name for path in versions.glob("0*.py"))[-1][:4]
