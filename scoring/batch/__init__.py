"""The batch engine: partitions read in bounded chunks, shards scored and staged, one publishing transaction.

    plan_run -> score_shard (per shard; any process or machine) -> publish_run (one transaction)

`score_partition` chains the three in one process (the CLI); the Airflow DAGs run them as separate
tasks so shards spread over workers. Adapters import the entry points from here in one line
(`from scoring import batch`, then `batch.plan_run(...)`); they load lazily, so importing
`scoring.batch.partitions` in a DAG file costs no pandas, Arrow or SQLAlchemy import.

    partitions    partition keys and their Hive-style folders
    options       a run's options from a person (dataset, id field), checked before they touch a path
    reader        an input file in bounded chunks (Parquet, CSV; local or S3)
    pieces        shards sized by work: files and Parquet row groups packed into shards of about shard_rows rows
    plan          RunPlan: the run's shards, model and staging place; job-name rules
    record_names  how a run names its records: the id column, or file and row
    shard         score one shard chunk by chunk, stage its predictions and rejected rows
    outputs       a classifier's label and class probabilities, staged beside each prediction
    rejects       rejected rows as storable JSON
    monitor       a run's monitoring: per-shard accumulator states, merged into the partition's metrics
    staging       staged shard files, their removal and the sweep of stale ones
    duplicates    ids a partition holds twice, found when the primary key objects
    publish       one transaction per run; the reject-threshold policy
    failures      the failed-run record every run that fails after planning leaves
    progress      a one-line progress counter on a terminal
    run           score_partition: the whole run in one process
    store/        the database: engines and the revision check, tables, writes (COPY), Alembic migrations
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scoring.batch.failures import record_failed_run, shard_failure_reason
    from scoring.batch.partitions import PartitionKey
    from scoring.batch.plan import RunPlan, plan_run, remove_run_staging, validate_job_name
    from scoring.batch.publish import RunSummary, publish_planned_run, publish_run
    from scoring.batch.run import score_partition
    from scoring.batch.shard import score_shard
    from scoring.batch.staging import ShardResult

_HOMES = {
    "PartitionKey": "partitions",
    "RunPlan": "plan",
    "plan_run": "plan",
    "remove_run_staging": "plan",
    "validate_job_name": "plan",
    "score_shard": "shard",
    "ShardResult": "staging",
    "RunSummary": "publish",
    "publish_run": "publish",
    "publish_planned_run": "publish",
    "record_failed_run": "failures",
    "shard_failure_reason": "failures",
    "score_partition": "run",
}

__all__ = [
    "PartitionKey",
    "RunPlan",
    "RunSummary",
    "ShardResult",
    "plan_run",
    "publish_planned_run",
    "publish_run",
    "record_failed_run",
    "remove_run_staging",
    "score_partition",
    "score_shard",
    "shard_failure_reason",
    "validate_job_name",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
