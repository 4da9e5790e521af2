"""Scoring one shard (its pieces: whole files or row groups): validate and predict chunk by chunk, stage the output.

A shard runs in any process or machine; what it leaves is two staged Parquet files, its monitoring
state as JSON, and a ShardResult with their counts, nothing in the database until the run publishes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from scoring.batch.monitor import shard_monitor, stage_monitor
from scoring.batch.outputs import ClassOutputs
from scoring.batch.plan import RunPlan, check_model
from scoring.batch.reader import Chunk, read_chunks
from scoring.batch.record_names import RecordNaming, derived_ids
from scoring.batch.rejects import reject_table, rejected_ids
from scoring.batch.staging import REJECT_SCHEMA, ShardResult, StagedWriter
from scoring.model.predict import Predictor, split_finite
from scoring.monitoring.accumulate import PartitionAccumulator


def score_shard(
    predictor: Predictor,
    plan: RunPlan,
    index: int,
    *,
    chunk_rows: int,
    on_rows: Callable[[int], None] | None = None,
) -> ShardResult:
    """Validate and score one shard's pieces (files, or row groups of a file) chunk by chunk, staging
    predictions, rejected rows and the shard's monitoring state.

    Rows are named by the run's id column, or, in a file without it, by file and row (the row's place
    in its file, whichever piece of it this shard reads); a run that requires the column fails on
    such a file before anything is staged.
    """
    manifest = predictor.bundle.manifest
    check_model(plan, manifest)
    prefix = plan.shard_prefix(index)
    outputs = ClassOutputs.of(predictor)
    scored = StagedWriter(f"{prefix}.predictions.parquet", outputs.schema)
    rejected = StagedWriter(f"{prefix}.rejected.parquet", REJECT_SCHEMA)
    naming = plan.record_naming(manifest)
    monitor = shard_monitor(predictor.bundle)
    input_rows = 0
    try:
        for piece in plan.pieces(index):
            source = plan.files[piece.file]
            chunks = read_chunks(source, chunk_rows, input_root=plan.inputs_root(), row_groups=piece.row_groups)
            place = _Place(piece.file, plan.file_name(piece.file), source)
            for chunk in chunks:
                scored_rows, rejected_rows = _score_chunk(predictor, chunk, naming, place, outputs, monitor)
                scored.write(scored_rows)
                rejected.write(rejected_rows)
                input_rows += chunk.table.num_rows
                if on_rows:
                    on_rows(chunk.table.num_rows)
        metrics_uri = stage_monitor(monitor, f"{prefix}.metrics.json")
    except BaseException:
        # A shard that fails leaves no half-written staging behind (nor temp files for s3:// staging).
        scored.abort()
        rejected.abort()
        raise
    scored.close()
    rejected.close()
    return ShardResult(
        source_uri=plan.describe_shard(index),
        input_rows=input_rows,
        scored_rows=scored.rows,
        rejected_rows=rejected.rows,
        predictions_uri=scored.uri,
        rejects_uri=rejected.uri,
        scored_at=datetime.now(timezone.utc).isoformat(),
        shard=index,
        metrics_uri=metrics_uri,
    )


@dataclass(frozen=True)
class _Place:
    """The file a chunk comes from: its index in the plan, its name in derived ids, and its URI."""

    file: int
    name: str
    uri: str


def _score_chunk(
    predictor: Predictor,
    chunk: Chunk,
    naming: RecordNaming,
    place: _Place,
    outputs: ClassOutputs,
    monitor: PartitionAccumulator | None,
) -> tuple[pa.Table, pa.Table]:
    """One chunk's staged predictions and rejected rows; the monitor counts it from what is already in memory."""
    has_id = naming.file_has_id(chunk.table.column_names, place.uri)
    id_field = naming.id_field if has_id else None
    schema = replace(predictor.schema, id_field=id_field)
    wanted = [*schema.field_names, *([id_field] if id_field else [])]
    frame = chunk.table.select([c for c in wanted if c in chunk.table.column_names]).to_pandas()
    result = schema.validate_frame(frame, require_id=has_id, text_input=chunk.text_input)
    values, probabilities = predictor.predict_with_probabilities(result.valid)
    if probabilities is not None:
        probabilities = probabilities[np.isfinite(values)]
    valid, values, reasons = split_finite(result.valid, values, result.rejected)
    if monitor is not None:
        monitor.add(valid, values, len(reasons))
    rows = chunk.first_row + valid.index.to_numpy(dtype=np.int64)
    ids = pa.array(valid[id_field], pa.string()) if id_field else derived_ids(place.name, rows)
    files = np.full(len(rows), place.file, dtype=np.int32)
    staged = pa.table(
        {"record_id": ids, "prediction": values, "row": rows, "file": files, **outputs.columns(values, probabilities)},
        outputs.schema,
    )
    positions = reasons.index.to_numpy(dtype=np.int64)
    reject_ids = (
        rejected_ids(frame, id_field, positions) if id_field else derived_ids(place.name, chunk.first_row + positions)
    )
    return staged, reject_table(chunk.table, reasons, reject_ids)
