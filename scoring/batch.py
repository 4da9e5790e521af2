"""The batch engine: plan a partition, score its shards, publish the run exactly once.

    plan_run -> score_shard (per file; any process or machine) -> publish_run (one transaction)

`score_partition` chains the three in one process for the CLI and tests; the Airflow DAGs call
the same three steps as separate tasks so shards spread over workers.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine

from scoring import store
from scoring.bundle import Manifest
from scoring.errors import PublishError, RejectThresholdExceeded
from scoring.partitions import PartitionKey
from scoring.predict import NON_FINITE_PREDICTION, Predictor
from scoring.reader import list_partition_files, partition_uri, read_chunks
from scoring.staging import PREDICTION_SCHEMA, REJECT_SCHEMA, ShardResult, StagedWriter, read_staged, shard_prefix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPlan:
    """What one run will score: the partition, its files, and where shards stage their output."""

    run_id: str
    job: str
    partition_key: str
    source_uri: str
    files: list[str]
    staging_root: str
    started_at: str
    # The bundle every shard must use; a shard that loads another sha256 refuses to score.
    model_uri: str = ""
    model_sha256: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> RunPlan:
        return cls(**raw)

    def shard_prefix(self, index: int) -> str:
        return shard_prefix(self.staging_root, self.job, self.partition_key, self.run_id, index)


@dataclass(frozen=True)
class RunSummary:
    """The outcome of a publish, as the CLI prints it and Airflow passes it on."""

    run_id: str
    job: str
    partition_key: str
    input_rows: int
    scored_rows: int
    rejected_rows: int
    model_name: str
    model_version: str
    status: str

    @classmethod
    def of(cls, run: store.RunRecord) -> RunSummary:
        return cls(**{name: getattr(run, name) for name in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"{self.job} {self.partition_key}: {self.scored_rows} scored, {self.rejected_rows} rejected "
            f"of {self.input_rows} rows with {self.model_name} v{self.model_version} (run {self.run_id})"
        )


def new_run_id() -> str:
    """A unique run id that sorts by start time."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def plan_run(
    *,
    job: str,
    partition: PartitionKey,
    input_root: str,
    dataset: str,
    staging_root: str,
    run_id: str | None = None,
    model_uri: str = "",
    model_sha256: str = "",
) -> RunPlan:
    """List the partition's files (PartitionNotFound if there are none) and fix the run's identity."""
    return RunPlan(
        run_id=run_id or new_run_id(),
        job=job,
        partition_key=str(partition),
        source_uri=partition_uri(input_root, dataset, partition),
        files=list_partition_files(input_root, dataset, partition),
        staging_root=staging_root,
        started_at=datetime.now(timezone.utc).isoformat(),
        model_uri=model_uri,
        model_sha256=model_sha256,
    )


def score_shard(
    predictor: Predictor,
    plan: RunPlan,
    index: int,
    *,
    chunk_rows: int,
    on_rows: Callable[[int], None] | None = None,
) -> ShardResult:
    """Validate and score one input file chunk by chunk, staging predictions and rejected rows."""
    _check_model(plan, predictor.bundle.manifest)
    source = plan.files[index]
    prefix = plan.shard_prefix(index)
    scored = StagedWriter(f"{prefix}.predictions.parquet", PREDICTION_SCHEMA)
    rejected = StagedWriter(f"{prefix}.rejected.parquet", REJECT_SCHEMA)
    schema = predictor.schema
    id_field = schema.id_field or ""
    wanted = [*schema.field_names, id_field]
    input_rows = 0
    try:
        for chunk in read_chunks(source, chunk_rows):
            frame = chunk.table.select([c for c in wanted if c in chunk.table.column_names]).to_pandas()
            result = schema.validate_frame(frame, require_id=True, text_input=chunk.text_input)
            valid, values, reasons = _keep_finite(result.valid, predictor.predict(result.valid), result.rejected)
            scored.write(
                pa.table({"record_id": pa.array(valid[id_field], pa.string()), "prediction": values}, PREDICTION_SCHEMA)
            )
            rejected.write(_reject_table(chunk.table, reasons, frame, id_field))
            input_rows += chunk.table.num_rows
            if on_rows:
                on_rows(chunk.table.num_rows)
    except BaseException:
        # A shard that fails leaves no half-written staging behind (nor temp files for s3:// staging).
        scored.abort()
        rejected.abort()
        raise
    scored.close()
    rejected.close()
    return ShardResult(
        source_uri=source,
        input_rows=input_rows,
        scored_rows=scored.rows,
        rejected_rows=rejected.rows,
        predictions_uri=scored.uri,
        rejects_uri=rejected.uri,
        scored_at=datetime.now(timezone.utc).isoformat(),
    )


def _keep_finite(
    valid: pd.DataFrame, values: np.ndarray, rejected: pd.Series
) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """Move rows whose prediction overflowed to the rejects: infinity is not a duration to store."""
    finite = np.isfinite(values)
    if finite.all():
        return valid, values, rejected
    overflowed = pd.Series(NON_FINITE_PREDICTION, index=valid.index[~finite], dtype=object)
    return valid[finite], values[finite], pd.concat([rejected, overflowed]).sort_index()


def raw_record_json(record: dict[str, object]) -> str:
    """The raw row as JSON that PostgreSQL's JSONB accepts: NaN and infinities become strings, not bare tokens."""
    clean = {key: _json_value(value) for key, value in record.items()}
    return json.dumps(clean, default=str, allow_nan=False)


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _check_model(plan: RunPlan, manifest: Manifest) -> None:
    if plan.model_sha256 and manifest.sha256 != plan.model_sha256:
        raise PublishError(
            f"run {plan.run_id} was planned with model sha256 {plan.model_sha256[:12]} but {manifest.name} "
            f"v{manifest.version} has {manifest.sha256[:12]}: the bundle changed mid-run; rerun the partition"
        )


def _reject_table(raw: pa.Table, reasons: pd.Series, frame: pd.DataFrame, id_field: str) -> pa.Table:
    if reasons.empty:
        return REJECT_SCHEMA.empty_table()
    positions = reasons.index.to_numpy()
    records = raw.take(pa.array(positions)).to_pylist()
    ids = frame[id_field].iloc[positions] if id_field in frame.columns else pd.Series([None] * len(positions))
    return pa.table(
        {
            "record_id": pa.array([None if pd.isna(v) else str(v) for v in ids], pa.string()),
            "reason": pa.array(reasons.astype(str).tolist(), pa.string()),
            "raw_record": pa.array([raw_record_json(r) for r in records], pa.string()),
        },
        REJECT_SCHEMA,
    )


def publish_run(
    engine: Engine,
    plan: RunPlan,
    shards: list[ShardResult],
    manifest: Manifest,
    *,
    reject_threshold: float,
) -> RunSummary:
    """Publish every shard of the run in one transaction, or record a failed run and raise."""
    _check_model(plan, manifest)
    if len(shards) != len(plan.files):
        raise PublishError(f"run {plan.run_id} planned {len(plan.files)} shards but {len(shards)} were scored")
    for shard in shards:
        if shard.input_rows != shard.scored_rows + shard.rejected_rows:
            raise PublishError(
                f"{shard.source_uri}: {shard.input_rows} input rows != {shard.scored_rows} scored + {shard.rejected_rows} rejected"
            )
    try:
        run = _publish_or_fail(engine, plan, shards, manifest, Counter(), reject_threshold)
    except store.DuplicateRecordIds:
        # Rare, so checked only when the primary key objects: find the repeats, keep first copies.
        run = _publish_or_fail(engine, plan, shards, manifest, _duplicate_ids(shards), reject_threshold)
    summary = RunSummary.of(run)
    log.info("%s", summary.line())
    return summary


def _publish_or_fail(
    engine: Engine,
    plan: RunPlan,
    shards: list[ShardResult],
    manifest: Manifest,
    duplicates: Counter[str],
    reject_threshold: float,
) -> store.RunRecord:
    input_rows = sum(s.input_rows for s in shards)
    rejected_rows = sum(s.rejected_rows for s in shards) + sum(duplicates.values())
    run = store.RunRecord(
        run_id=plan.run_id,
        job=plan.job,
        partition_key=plan.partition_key,
        model_name=manifest.name,
        model_version=manifest.version,
        model_sha256=manifest.sha256,
        input_rows=input_rows,
        scored_rows=input_rows - rejected_rows,
        rejected_rows=rejected_rows,
        source_uri=plan.source_uri,
        started_at=datetime.fromisoformat(plan.started_at),
        finished_at=datetime.now(timezone.utc),
        status="published",
    )
    rate = rejected_rows / input_rows if input_rows else 0.0
    if rate > reject_threshold:
        message = (
            f"partition {plan.partition_key} of job {plan.job}: {rejected_rows} of {input_rows} rows ({rate:.2%}) "
            f"failed validation, above the threshold of {reject_threshold:.2%}; "
            f"most common: {_top_reasons(shards, duplicates)}. "
            f"Nothing was published; the rejected rows are in rejected_records under run_id {plan.run_id}"
        )
        failed = store.RunRecord(**{**run.__dict__, "status": "failed", "message": message})
        store.record_failed_run(engine, failed, _rejects(shards, duplicates))
        raise RejectThresholdExceeded(message)
    store.publish(engine, run, _prediction_batches(shards, duplicates), _rejects(shards, duplicates))
    return run


def _duplicate_ids(shards: list[ShardResult]) -> Counter[str]:
    """Ids seen more than once in the partition, with how many extra copies: the first copy wins."""
    hashes = [
        pd.util.hash_array(table.column("record_id").to_numpy(zero_copy_only=False).astype(object))
        for shard in shards
        for table in read_staged(shard.predictions_uri, columns=["record_id"])
    ]
    if not hashes:
        return Counter()
    all_hashes = np.concatenate(hashes)
    unique, counts = np.unique(all_hashes, return_counts=True)
    suspects = set(unique[counts > 1].tolist())
    if not suspects:
        return Counter()
    # Hash collisions are possible in principle: count the suspects by their real ids.
    seen: Counter[str] = Counter()
    for shard in shards:
        for table in read_staged(shard.predictions_uri, columns=["record_id"]):
            ids = table.column("record_id").to_numpy(zero_copy_only=False).astype(object)
            for record_id in ids[np.isin(pd.util.hash_array(ids), list(suspects))]:
                seen[record_id] += 1
    return Counter({record_id: n - 1 for record_id, n in seen.items() if n > 1})


def _prediction_batches(shards: list[ShardResult], duplicates: Counter[str]) -> Iterator[store.PredictionBatch]:
    kept: set[str] = set()
    for shard in shards:
        scored_at = datetime.fromisoformat(shard.scored_at)
        for table in read_staged(shard.predictions_uri):
            if duplicates:
                table = _drop_repeats(table, duplicates, kept)
            yield store.PredictionBatch(rows=table, scored_at=scored_at)


def _drop_repeats(table: pa.Table, duplicates: Counter[str], kept: set[str]) -> pa.Table:
    ids = table.column("record_id").to_pylist()
    keep = []
    for record_id in ids:
        if record_id in duplicates:
            keep.append(record_id not in kept)
            kept.add(record_id)
        else:
            keep.append(True)
    return table.filter(pa.array(keep))


def _rejects(shards: list[ShardResult], duplicates: Counter[str]) -> Iterator[dict[str, object]]:
    for shard in shards:
        for table in read_staged(shard.rejects_uri):
            yield from table.to_pylist()
    for record_id, extra in duplicates.items():
        for _ in range(extra):
            yield {
                "record_id": record_id,
                "reason": f"duplicate record id {record_id!r} in the partition; the first occurrence was scored",
                "raw_record": json.dumps({"record_id": record_id}),
            }


def _top_reasons(shards: list[ShardResult], duplicates: Counter[str], top: int = 3) -> str:
    reasons: Counter[str] = Counter()
    for shard in shards:
        for table in read_staged(shard.rejects_uri, columns=["reason"]):
            reasons.update(table.column("reason").to_pylist())
    if duplicates:
        reasons["duplicate record id"] += sum(duplicates.values())
    return ", ".join(f"{reason} ({count})" for reason, count in reasons.most_common(top))


def score_partition(
    predictor: Predictor,
    engine: Engine,
    *,
    job: str,
    partition: PartitionKey,
    input_root: str,
    dataset: str,
    staging_root: str,
    chunk_rows: int,
    reject_threshold: float,
    run_id: str | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> RunSummary:
    """Plan, score every shard in this process, and publish: the whole run, for the CLI and tests."""
    manifest = predictor.bundle.manifest
    plan = plan_run(
        job=job,
        partition=partition,
        input_root=input_root,
        dataset=dataset,
        staging_root=staging_root,
        run_id=run_id,
        model_uri=predictor.bundle.uri,
        model_sha256=manifest.sha256,
    )
    shards = [score_shard(predictor, plan, i, chunk_rows=chunk_rows, on_rows=on_rows) for i in range(len(plan.files))]
    return publish_run(engine, plan, shards, manifest, reject_threshold=reject_threshold)
