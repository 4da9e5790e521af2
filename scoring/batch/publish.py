"""Publishing a run: every staged shard in ONE transaction, or nothing and a failed-run record.

The threshold policy lives here: a run whose rejected share passes the job's threshold publishes
nothing, records itself as failed with its rejected rows and the commonest reasons, and raises.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime

import pyarrow as pa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from scoring import storage
from scoring.batch import duplicates
from scoring.batch.duplicates import Copies
from scoring.batch.failures import failure_reason, record_failed_run
from scoring.batch.monitor import RunMetrics, merged_metrics, read_state
from scoring.batch.plan import RunPlan, check_model
from scoring.batch.staging import ShardResult, read_staged
from scoring.batch.store import writes as store
from scoring.batch.store.engines import describe, first_line
from scoring.errors import DuplicateRecordIds, PublishError, RejectThresholdExceeded, StagingGone
from scoring.model.bundle import read_manifest
from scoring.model.manifest import Manifest
from scoring.model.trust import BundleTrust
from scoring.monitoring.accumulate import PARTITION


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
    # Features (the prediction included, under the bundle's output name) whose drift passed its threshold.
    drifted: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, run: store.RunRecord, drifted: list[str] | None = None) -> RunSummary:
        values = {f.name: getattr(run, f.name) for f in fields(cls) if f.name != "drifted"}
        return cls(**values, drifted=list(drifted or []))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"{self.job} {self.partition_key}: {self.scored_rows} scored, {self.rejected_rows} rejected "
            f"of {self.input_rows} rows with {self.model_name} v{self.model_version} (run {self.run_id})"
        )


def publish_planned_run(
    engine: Engine,
    plan: RunPlan,
    shards: list[ShardResult],
    trust: BundleTrust,
    *,
    reject_threshold: float,
    drift_threshold: float | None = None,
) -> RunSummary:
    """Publish a run whose shards were scored elsewhere (in any order): read its bundle's manifest, then publish_run.

    A bundle that can no longer be read fails the run, recorded from the plan.
    """
    ordered = sorted(shards, key=lambda shard: _shard_index(plan, shard))
    try:
        manifest = read_manifest(plan.model_uri, trust)
    except Exception as exc:
        record_failed_run(engine, plan, None, f"publish: the model bundle cannot be read: {exc}")
        raise
    return publish_run(
        engine, plan, ordered, manifest, reject_threshold=reject_threshold, drift_threshold=drift_threshold
    )


def _shard_index(plan: RunPlan, shard: ShardResult) -> int:
    # A result from code that named a shard by its one file carries no index: find it by that file.
    return shard.shard if shard.shard >= 0 else plan.files.index(shard.source_uri)


def publish_run(
    engine: Engine,
    plan: RunPlan,
    shards: list[ShardResult],
    manifest: Manifest,
    *,
    reject_threshold: float,
    drift_threshold: float | None = None,
) -> RunSummary:
    """Publish every shard of the run, and the partition's monitoring metrics, in one transaction; on any
    failure record a failed run and raise.

    `drift_threshold` replaces the default threshold of every drift statistic. Staging is left in place
    (a retried publish task needs it): the caller removes it once the run is over, and logs or prints
    the summary, whose `drifted` names the features that drifted.
    """
    try:
        _check_publishable(plan, shards, manifest)
        metrics = merged_metrics([read_state(s.metrics_uri) for s in shards if s.metrics_uri], drift_threshold)
        try:
            run = _publish_or_fail(engine, plan, shards, manifest, {}, reject_threshold, metrics)
        except DuplicateRecordIds:
            # Rare, so checked only when the primary key objects: find the repeats, keep first copies.
            copies = duplicates.duplicate_copies(shards)
            metrics = _without_copies(metrics, duplicates.count(copies))
            run = _publish_or_fail(engine, plan, shards, manifest, copies, reject_threshold, metrics)
    except RejectThresholdExceeded:
        raise  # recorded already, with its rejected rows
    except Exception as exc:
        error = _as_publish_error(engine, plan, exc)
        record_failed_run(engine, plan, manifest, failure_reason(error), shards)
        if error is exc:
            raise
        raise error from exc
    return RunSummary.of(run, metrics.drifted if metrics else [])


def _check_publishable(plan: RunPlan, shards: list[ShardResult], manifest: Manifest) -> None:
    check_model(plan, manifest)
    if len(shards) != plan.shard_count():
        raise PublishError(f"run {plan.run_id} planned {plan.shard_count()} shards but {len(shards)} were scored")
    for shard in shards:
        if shard.input_rows != shard.scored_rows + shard.rejected_rows:
            raise PublishError(
                f"{shard.source_uri}: {shard.input_rows} input rows != {shard.scored_rows} scored + {shard.rejected_rows} rejected"
            )
        for uri in (shard.predictions_uri, shard.rejects_uri, *([shard.metrics_uri] if shard.metrics_uri else [])):
            if not storage.exists(uri):
                raise StagingGone(
                    f"run {plan.run_id}: the staged output {uri} is gone (the run's staging was cleaned up "
                    "or swept); score the partition again"
                )


def _as_publish_error(engine: Engine, plan: RunPlan, exc: Exception) -> Exception:
    """Database errors become one PublishError line naming the database (never its password or a row)."""
    if isinstance(exc, SQLAlchemyError):
        return PublishError(
            f"run {plan.run_id}: the database {describe(engine)} refused the publish of partition "
            f"{plan.partition_key} of job {plan.job}: {first_line(exc)}"
        )
    return exc


def _publish_or_fail(
    engine: Engine,
    plan: RunPlan,
    shards: list[ShardResult],
    manifest: Manifest,
    copies: Copies,
    reject_threshold: float,
    metrics: RunMetrics | None,
) -> store.RunRecord:
    input_rows = sum(s.input_rows for s in shards)
    rejected_rows = sum(s.rejected_rows for s in shards) + duplicates.count(copies)
    run = plan.run_record(manifest, input_rows=input_rows, rejected_rows=rejected_rows, status="published")
    rate = rejected_rows / input_rows if input_rows else 0.0
    if rate > reject_threshold:
        message = (
            f"partition {plan.partition_key} of job {plan.job}: {rejected_rows} of {input_rows} rows ({rate:.2%}) "
            f"failed validation, above the threshold of {reject_threshold:.2%}; "
            f"most common: {_top_reasons(shards, copies)}. "
            f"Nothing was published; the rejected rows are in rejected_records under run_id {plan.run_id}"
        )
        failed = replace(run, status="failed", message=message)
        store.record_failed_run(engine, failed, _rejects(plan, shards, copies))
        raise RejectThresholdExceeded(message)
    store.publish(
        engine,
        run,
        _prediction_batches(shards, copies),
        _rejects(plan, shards, copies),
        metrics.rows if metrics is not None else None,
    )
    return run


def _without_copies(metrics: RunMetrics | None, copies: int) -> RunMetrics | None:
    """The metrics of a run whose later copies of ids are rejected at publish: they count as rejected rows.

    Their values were counted as valid by the shards (a copy is found only now); at a rate the reject
    threshold allows they cannot move a statistic, so only the counts are corrected to match scoring_runs.
    """
    if metrics is None or not copies:
        return metrics
    corrected = []
    for row in metrics.rows:
        if row.feature == PARTITION and row.metric == "rejected_rows":
            row = replace(row, value=row.value + copies)
        corrected.append(row)
    rejected = next(r.value for r in corrected if r.feature == PARTITION and r.metric == "rejected_rows")
    total = next(r.value for r in corrected if r.feature == PARTITION and r.metric == "input_rows")
    corrected = [
        replace(r, value=rejected / total if total else 0.0)
        if r.feature == PARTITION and r.metric == "share_rejected"
        else r
        for r in corrected
    ]
    return RunMetrics(rows=corrected, drifted=metrics.drifted)


# Only what the COPY sends: the staged row and file positions serve duplicate tracing alone.
_PUBLISHED = ["record_id", "prediction", *store.CLASS_COLUMNS]


def _prediction_batches(shards: list[ShardResult], copies: Copies) -> Iterator[store.PredictionBatch]:
    for index, shard in enumerate(shards):
        scored_at = datetime.fromisoformat(shard.scored_at)
        repeated = copies.get(index, {})
        columns = None if repeated else _PUBLISHED
        for table in read_staged(shard.predictions_uri, columns=columns):
            if repeated:
                table = table.filter(pa.array(~duplicates.is_repeated(table, repeated))).drop_columns(["row", "file"])
            yield store.PredictionBatch(rows=table, scored_at=scored_at)


def _rejects(plan: RunPlan, shards: list[ShardResult], copies: Copies) -> Iterator[dict[str, object]]:
    for shard in shards:
        for table in read_staged(shard.rejects_uri):
            yield from table.to_pylist()
    yield from duplicates.duplicate_rejects(plan.files, plan.inputs_root(), copies)


def _top_reasons(shards: list[ShardResult], copies: Copies, top: int = 3) -> str:
    reasons: Counter[str] = Counter()
    for shard in shards:
        for table in read_staged(shard.rejects_uri, columns=["reason"]):
            reasons.update(table.column("reason").to_pylist())
    if copies:
        reasons["duplicate record id"] += duplicates.count(copies)
    return ", ".join(f"{reason} ({count})" for reason, count in reasons.most_common(top))
