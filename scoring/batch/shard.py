"""Scoring one shard (one input file of a run): validate and predict chunk by chunk, stage the output.

A shard runs in any process or machine; what it leaves is two staged Parquet files and a
ShardResult with their counts, nothing in the database until the run publishes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from scoring.batch.plan import RunPlan, check_model
from scoring.batch.reader import read_chunks
from scoring.batch.rejects import reject_table
from scoring.batch.staging import PREDICTION_SCHEMA, REJECT_SCHEMA, ShardResult, StagedWriter
from scoring.model.predict import Predictor, split_finite


def score_shard(
    predictor: Predictor,
    plan: RunPlan,
    index: int,
    *,
    chunk_rows: int,
    on_rows: Callable[[int], None] | None = None,
) -> ShardResult:
    """Validate and score one input file chunk by chunk, staging predictions and rejected rows."""
    check_model(plan, predictor.bundle.manifest)
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
            valid, values, reasons = split_finite(result.valid, predictor.predict(result.valid), result.rejected)
            rows = input_rows + valid.index.to_numpy(dtype=np.int64)
            scored.write(
                pa.table(
                    {"record_id": pa.array(valid[id_field], pa.string()), "prediction": values, "row": rows},
                    PREDICTION_SCHEMA,
                )
            )
            rejected.write(reject_table(chunk.table, reasons, frame, id_field))
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
