"""The batch engine: plan a partition, score its shards, publish the run exactly once.

    plan_run -> score_shard (per file; any process or machine) -> publish_run (one transaction)

`score_partition` chains the three in one process for the CLI and tests; the Airflow DAGs call
the same three steps as separate tasks so shards spread over workers.

Every run that fails after planning (a shard, the publish, the database) leaves a `failed` record
in scoring_runs with its reason, written in its own transaction; a finished run removes its
staging (`remove_run_staging`: `score_partition` does it itself, the DAGs in a cleanup task).
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from scoring import storage
from scoring.batch.partitions import PartitionKey
from scoring.batch.reader import list_partition_files, partition_uri, read_chunks
from scoring.batch.staging import (
    PREDICTION_SCHEMA,
    REJECT_SCHEMA,
    ShardResult,
    StagedWriter,
    read_staged,
    remove_staged_run,
    shard_prefix,
)
from scoring.batch.store import writes as store
from scoring.batch.store.engines import describe, first_line
from scoring.batch.store.tables import predictions, scoring_runs
from scoring.errors import BundleChanged, InvalidInput, PublishError, RejectThresholdExceeded, ScoringError, StagingGone
from scoring.model.bundle import Manifest
from scoring.model.predict import NON_FINITE_PREDICTION, Predictor
from scoring.model.record_ids import canonical_ids

log = logging.getLogger(__name__)

# Job names become a column value and a staging folder: a safe character set, no '.' or '..', and
# no longer than the narrowest `job` column.
JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_JOB_LENGTH = min(predictions.c.job.type.length, scoring_runs.c.job.type.length)  # type: ignore[attr-defined]
MAX_RUN_ID_LENGTH: int = scoring_runs.c.run_id.type.length  # type: ignore[attr-defined]
# NUL and lone surrogates: PostgreSQL's text, COPY and JSONB refuse them, UTF-8 cannot encode a surrogate.
UNSTORABLE_TEXT = re.compile(r"[\x00\ud800-\udfff]")
MAX_MESSAGE_LENGTH = 2000


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
    # The bundle every shard must use; a shard that loads another sha256 refuses to score. Name and
    # version are kept so a failed run is recorded from the plan alone, without reading the bundle again.
    model_uri: str = ""
    model_sha256: str = ""
    model_name: str = ""
    model_version: str = ""
    # Shards refuse a file that leads out of it; empty in plans made before it was carried.
    input_root: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> RunPlan:
        return cls(**raw)

    def shard_prefix(self, index: int) -> str:
        return shard_prefix(self.staging_root, self.job, self.partition_key, self.run_id, index)

    def inputs_root(self) -> str:
        """The folder every input file must lie in; an older plan without it is held to its partition."""
        return self.input_root or self.source_uri


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


def validate_job_name(job: str) -> str:
    """The job name if it is usable as a column value and a staging folder name, else InvalidInput saying why."""
    if not job:
        raise InvalidInput("job name is empty")
    if len(job) > MAX_JOB_LENGTH:
        raise InvalidInput(f"job name is longer than {MAX_JOB_LENGTH} characters (the width of the job column)")
    if not JOB_NAME.match(job[0]):
        raise InvalidInput(f"job name {job[:40]!r} must start with a letter, a digit or '_'")
    if not JOB_NAME.fullmatch(job):
        raise InvalidInput(f"job name {job[:40]!r} may hold only letters, digits, '_', '.' and '-'")
    return job


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
    model_name: str = "",
    model_version: str = "",
) -> RunPlan:
    """List the partition's files (PartitionNotFound if there are none) and fix the run's identity."""
    validate_job_name(job)
    if run_id is not None and not 0 < len(run_id) <= MAX_RUN_ID_LENGTH:
        raise InvalidInput(f"run id must be 1 to {MAX_RUN_ID_LENGTH} characters long, got {len(run_id)}")
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
        model_name=model_name,
        model_version=model_version,
        input_root=input_root,
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
        for chunk in read_chunks(source, chunk_rows, input_root=plan.inputs_root()):
            frame = chunk.table.select([c for c in wanted if c in chunk.table.column_names]).to_pandas()
            result = schema.validate_frame(frame, require_id=True, text_input=chunk.text_input)
            valid, values, reasons = _keep_finite(result.valid, predictor.predict(result.valid), result.rejected)
            rows = input_rows + valid.index.to_numpy(dtype=np.int64)
            scored.write(
                pa.table(
                    {"record_id": pa.array(valid[id_field], pa.string()), "prediction": values, "row": rows},
                    PREDICTION_SCHEMA,
                )
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
    """The raw row as JSON that PostgreSQL's JSONB accepts, at any depth.

    NaN and infinities become strings, not bare tokens; NUL and lone surrogates in keys and text
    become U+FFFD (JSONB refuses \\u0000, UTF-8 cannot encode a surrogate); other values (dates,
    decimals, bytes) become their text.
    """
    return json.dumps(_json_value(record), default=lambda value: clean_text(str(value)), allow_nan=False)


def _json_value(value: object) -> object:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {clean_text(str(key)): _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value


def clean_text(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD, so any text column or JSONB accepts it."""
    return UNSTORABLE_TEXT.sub("\ufffd", text)


def _check_model(plan: RunPlan, manifest: Manifest) -> None:
    if plan.model_sha256 and manifest.sha256 != plan.model_sha256:
        raise BundleChanged(
            f"run {plan.run_id} was planned with model sha256 {plan.model_sha256[:12]} but {manifest.name} "
            f"v{manifest.version} has {manifest.sha256[:12]}: the bundle changed mid-run; rerun the partition"
        )


def _reject_table(raw: pa.Table, reasons: pd.Series, frame: pd.DataFrame, id_field: str) -> pa.Table:
    if reasons.empty:
        return REJECT_SCHEMA.empty_table()
    positions = reasons.index.to_numpy()
    records = raw.take(pa.array(positions)).to_pylist()
    if id_field in frame.columns:
        # The canonical id, or null where the id itself was refused: never the raw text that no column can hold.
        ids = canonical_ids(frame[id_field].iloc[positions], nan_is_null=True)[0].tolist()
    else:
        ids = [None] * len(positions)
    return pa.table(
        {
            "record_id": pa.array(ids, pa.string()),
            "reason": pa.array([clean_text(str(r)) for r in reasons], pa.string()),
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
    """Publish every shard of the run in one transaction; on any failure record a failed run and raise.

    Staging is left in place (a retried publish task needs it): the caller removes it once the run is over.
    """
    try:
        _check_publishable(plan, shards, manifest)
        try:
            run = _publish_or_fail(engine, plan, shards, manifest, {}, reject_threshold)
        except store.DuplicateRecordIds:
            # Rare, so checked only when the primary key objects: find the repeats, keep first copies.
            run = _publish_or_fail(engine, plan, shards, manifest, _duplicate_copies(shards), reject_threshold)
    except RejectThresholdExceeded:
        raise  # recorded already, with its rejected rows
    except Exception as exc:
        error = _as_publish_error(engine, plan, exc)
        record_failed_run(engine, plan, manifest, _reason(error), shards)
        if error is exc:
            raise
        raise error from exc
    summary = RunSummary.of(run)
    log.info("%s", summary.line())
    return summary


def _check_publishable(plan: RunPlan, shards: list[ShardResult], manifest: Manifest) -> None:
    _check_model(plan, manifest)
    if len(shards) != len(plan.files):
        raise PublishError(f"run {plan.run_id} planned {len(plan.files)} shards but {len(shards)} were scored")
    for shard in shards:
        if shard.input_rows != shard.scored_rows + shard.rejected_rows:
            raise PublishError(
                f"{shard.source_uri}: {shard.input_rows} input rows != {shard.scored_rows} scored + {shard.rejected_rows} rejected"
            )
        for uri in (shard.predictions_uri, shard.rejects_uri):
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


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, ScoringError) else f"{type(exc).__name__}: {exc}"
    return text


def shard_failure_reason(plan: RunPlan, index: int, exc: BaseException) -> str:
    """The failed-run message of a shard that raised: which shard, which file, and why."""
    return f"shard {index} ({plan.files[index]}): {_reason(exc)}"


def record_failed_run(
    engine: Engine,
    plan: RunPlan,
    manifest: Manifest | None,
    reason: str,
    shards: list[ShardResult] | None = None,
    *,
    only_if_unrecorded: bool = False,
) -> None:
    """Record the run as failed with its reason, in its own transaction; the published rows stay as they were.

    The model is the manifest's when one was read, else the plan's (so a bundle that can no longer be
    read does not cost the record). Counts come from the shards when every shard was scored, else
    they are zero. With
    `only_if_unrecorded` (a cleanup step that does not know how the run ended) a run that already has
    its record keeps it. Never raises: a database that cannot take the record either is logged, and
    the run's own error is what matters.
    """
    complete = shards is not None and len(shards) == len(plan.files)
    input_rows = sum(s.input_rows for s in shards) if shards and complete else 0
    rejected_rows = sum(s.rejected_rows for s in shards) if shards and complete else 0
    message = clean_text(" ".join(reason.split()))
    run = store.RunRecord(
        run_id=plan.run_id,
        job=plan.job,
        partition_key=plan.partition_key,
        model_name=manifest.name if manifest else plan.model_name,
        model_version=manifest.version if manifest else plan.model_version,
        model_sha256=manifest.sha256 if manifest else plan.model_sha256,
        input_rows=input_rows,
        scored_rows=input_rows - rejected_rows,
        rejected_rows=rejected_rows,
        source_uri=plan.source_uri,
        started_at=datetime.fromisoformat(plan.started_at),
        finished_at=datetime.now(timezone.utc),
        status="failed",
        message=message[:MAX_MESSAGE_LENGTH],
    )
    try:
        store.record_failed_run(engine, run, only_if_absent=only_if_unrecorded)
    except Exception as exc:
        log.warning("run %s failed and its failure could not be recorded: %s", plan.run_id, first_line(exc))


def remove_run_staging(plan: RunPlan) -> int:
    """Delete the run's staged shards (local or s3://); returns how many files went."""
    return remove_staged_run(plan.staging_root, plan.job, plan.partition_key, plan.run_id)


def _publish_or_fail(
    engine: Engine,
    plan: RunPlan,
    shards: list[ShardResult],
    manifest: Manifest,
    duplicates: dict[int, dict[int, str]],
    reject_threshold: float,
) -> store.RunRecord:
    input_rows = sum(s.input_rows for s in shards)
    rejected_rows = sum(s.rejected_rows for s in shards) + _count(duplicates)
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
        store.record_failed_run(engine, failed, _rejects(plan, shards, duplicates))
        raise RejectThresholdExceeded(message)
    store.publish(engine, run, _prediction_batches(shards, duplicates), _rejects(plan, shards, duplicates))
    return run


def _count(duplicates: dict[int, dict[int, str]]) -> int:
    return sum(len(rows) for rows in duplicates.values())


def _duplicate_copies(shards: list[ShardResult]) -> dict[int, dict[int, str]]:
    """Per shard, the input rows (position -> id) whose id an earlier row of the partition has: the first copy wins."""
    hashes = [
        pd.util.hash_array(table.column("record_id").to_numpy(zero_copy_only=False).astype(object))
        for shard in shards
        for table in read_staged(shard.predictions_uri, columns=["record_id"])
    ]
    if not hashes:
        return {}
    unique, counts = np.unique(np.concatenate(hashes), return_counts=True)
    suspects = unique[counts > 1]
    if not len(suspects):
        return {}
    # Hash collisions are possible in principle: compare the suspects by their real ids.
    seen: set[str] = set()
    copies: dict[int, dict[int, str]] = {}
    for index, shard in enumerate(shards):
        for table in read_staged(shard.predictions_uri, columns=["record_id", "row"]):
            ids = table.column("record_id").to_numpy(zero_copy_only=False).astype(object)
            rows = table.column("row").to_numpy()
            for position in np.flatnonzero(np.isin(pd.util.hash_array(ids), suspects)):
                record_id = ids[position]
                if record_id in seen:
                    copies.setdefault(index, {})[int(rows[position])] = record_id
                seen.add(record_id)
    return copies


def _prediction_batches(
    shards: list[ShardResult], duplicates: dict[int, dict[int, str]]
) -> Iterator[store.PredictionBatch]:
    for index, shard in enumerate(shards):
        scored_at = datetime.fromisoformat(shard.scored_at)
        repeated = np.fromiter(duplicates.get(index, {}), dtype=np.int64)
        for table in read_staged(shard.predictions_uri):
            if len(repeated):
                table = table.filter(pa.array(~np.isin(table.column("row").to_numpy(), repeated)))
            yield store.PredictionBatch(rows=table, scored_at=scored_at)


def _rejects(
    plan: RunPlan, shards: list[ShardResult], duplicates: dict[int, dict[int, str]]
) -> Iterator[dict[str, object]]:
    for shard in shards:
        for table in read_staged(shard.rejects_uri):
            yield from table.to_pylist()
    for index, copies in sorted(duplicates.items()):
        raws = _raw_rows(shards[index].source_uri, plan.inputs_root(), copies)
        for row, record_id in sorted(copies.items()):
            yield {
                "record_id": record_id,
                "reason": f"duplicate record id {record_id!r} in the partition; the first occurrence was scored",
                "raw_record": raws.get(row) or json.dumps({"record_id": record_id}),
            }


def _raw_rows(source_uri: str, input_root: str, copies: dict[int, str], chunk_rows: int = 65_536) -> dict[int, str]:
    """The raw rows at the given positions of an input file, as storable JSON (read again: duplicates are rare)."""
    wanted = np.array(sorted(copies), dtype=np.int64)
    found: dict[int, str] = {}
    offset = 0
    try:
        for chunk in read_chunks(source_uri, chunk_rows, input_root=input_root):
            rows = chunk.table.num_rows
            inside = wanted[(wanted >= offset) & (wanted < offset + rows)]
            if len(inside):
                records = chunk.table.take(pa.array(inside - offset)).to_pylist()
                found.update(zip(inside.tolist(), map(raw_record_json, records), strict=True))
            offset += rows
            if offset > wanted[-1]:
                break
    except ScoringError as exc:  # the file changed or vanished since it was scored: keep the ids at least
        log.warning("raw rows of duplicate ids in %s are not readable: %s", source_uri, exc)
    return found


def _top_reasons(shards: list[ShardResult], duplicates: dict[int, dict[int, str]], top: int = 3) -> str:
    reasons: Counter[str] = Counter()
    for shard in shards:
        for table in read_staged(shard.rejects_uri, columns=["reason"]):
            reasons.update(table.column("reason").to_pylist())
    if duplicates:
        reasons["duplicate record id"] += _count(duplicates)
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
    """Plan, score every shard in this process, and publish: the whole run, for the CLI and tests.

    Whatever the outcome, the run's staging is removed; a failed shard is recorded as a failed run.
    """
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
        model_name=manifest.name,
        model_version=manifest.version,
    )
    try:
        shards = []
        for index in range(len(plan.files)):
            try:
                shards.append(score_shard(predictor, plan, index, chunk_rows=chunk_rows, on_rows=on_rows))
            except Exception as exc:
                record_failed_run(engine, plan, manifest, shard_failure_reason(plan, index, exc))
                raise
        return publish_run(engine, plan, shards, manifest, reject_threshold=reject_threshold)
    finally:
        _remove_quietly(plan)


def _remove_quietly(plan: RunPlan) -> None:
    # The run's outcome is what the caller needs; staging left by a failed removal is swept later.
    try:
        remove_run_staging(plan)
    except Exception as exc:
        log.warning("run %s: staging under %s was not removed: %s", plan.run_id, plan.staging_root, exc)
