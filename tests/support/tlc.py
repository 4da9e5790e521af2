"""Files shaped exactly like the NYC TLC's published trip records, for tests that must read real data.

The schemas are the ones the TLC's own Parquet files carry (green: 2021 onward, with the all-null
`ehail_fee` stored as Arrow's null type; yellow: 2024, `tpep_` timestamps and `Airport_fee`): no
`ride_id`, 32-bit location ids, nullable floats and integers, microsecond timestamps. A CSV export
is what `pandas.read_parquet(...).to_csv(index=False)` of such a file writes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GREEN_SCHEMA = pa.schema(
    [
        ("VendorID", pa.int32()),
        ("lpep_pickup_datetime", pa.timestamp("us")),
        ("lpep_dropoff_datetime", pa.timestamp("us")),
        ("store_and_fwd_flag", pa.large_string()),
        ("RatecodeID", pa.float64()),
        ("PULocationID", pa.int32()),
        ("DOLocationID", pa.int32()),
        ("passenger_count", pa.float64()),
        ("trip_distance", pa.float64()),
        ("fare_amount", pa.float64()),
        ("extra", pa.float64()),
        ("mta_tax", pa.float64()),
        ("tip_amount", pa.float64()),
        ("tolls_amount", pa.float64()),
        ("ehail_fee", pa.null()),
        ("improvement_surcharge", pa.float64()),
        ("total_amount", pa.float64()),
        ("payment_type", pa.float64()),
        ("trip_type", pa.float64()),
        ("congestion_surcharge", pa.float64()),
    ]
)

YELLOW_SCHEMA = pa.schema(
    [
        ("VendorID", pa.int32()),
        ("tpep_pickup_datetime", pa.timestamp("us")),
        ("tpep_dropoff_datetime", pa.timestamp("us")),
        ("passenger_count", pa.int64()),
        ("trip_distance", pa.float64()),
        ("RatecodeID", pa.int64()),
        ("store_and_fwd_flag", pa.large_string()),
        ("PULocationID", pa.int32()),
        ("DOLocationID", pa.int32()),
        ("payment_type", pa.int64()),
        ("fare_amount", pa.float64()),
        ("extra", pa.float64()),
        ("mta_tax", pa.float64()),
        ("tip_amount", pa.float64()),
        ("tolls_amount", pa.float64()),
        ("improvement_surcharge", pa.float64()),
        ("total_amount", pa.float64()),
        ("congestion_surcharge", pa.float64()),
        ("Airport_fee", pa.float64()),
    ]
)

SCHEMAS = {"green": GREEN_SCHEMA, "yellow": YELLOW_SCHEMA}


def tlc_table(kind: str, rows: int, *, seed: int = 3, start: datetime = datetime(2026, 3, 1, 5)) -> pa.Table:
    """`rows` trips of the `kind` ("green" or "yellow") schema, with nulls where the TLC's files have them.

    Every tenth trip has the nulls the TLC leaves in its store-and-forward rows: no rate code, no
    passenger count, no payment or trip type. The location ids and distance the demo model reads are
    always there and valid, so such a file scores with zero rejects.
    """
    schema = SCHEMAS[kind]
    rng = np.random.default_rng(seed)
    prefix = "lpep" if kind == "green" else "tpep"
    pickup = np.datetime64(start, "us") + np.sort(rng.integers(0, 3_600_000_000, rows)).astype("timedelta64[us]")
    dropoff = pickup + rng.integers(60_000_000, 3_600_000_000, rows).astype("timedelta64[us]")
    holes = np.arange(rows) % 10 == 9
    money = np.round(rng.uniform(0, 60, rows), 2)
    columns: dict[str, pa.Array] = {
        "VendorID": pa.array(rng.integers(1, 3, rows), pa.int32()),
        f"{prefix}_pickup_datetime": pa.array(pickup, pa.timestamp("us")),
        f"{prefix}_dropoff_datetime": pa.array(dropoff, pa.timestamp("us")),
        "store_and_fwd_flag": pa.array(np.where(holes, None, "N").tolist(), pa.large_string()),
        "PULocationID": pa.array(rng.integers(1, 266, rows), pa.int32()),
        "DOLocationID": pa.array(rng.integers(1, 266, rows), pa.int32()),
        "trip_distance": pa.array(np.round(rng.lognormal(0.8, 0.7, rows), 2)),
        "ehail_fee": pa.nulls(rows, pa.null()),
    }
    for name in ("RatecodeID", "passenger_count", "payment_type", "trip_type"):
        values = rng.integers(1, 3, rows)
        columns[name] = pa.array(values, mask=holes)
    for field in schema:
        if field.name not in columns:
            columns[field.name] = pa.array(money + len(field.name) % 3)
    return pa.table({field.name: columns[field.name].cast(field.type) for field in schema}, schema)


def write_tlc_parquet(path: Path, kind: str, rows: int, *, seed: int = 3) -> Path:
    """A TLC-shaped Parquet file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(tlc_table(kind, rows, seed=seed), path)
    return path


def write_tlc_csv(path: Path, kind: str, rows: int, *, seed: int = 3) -> Path:
    """The CSV export of the same trips: pandas' rendering, nullable integers as floats and empty cells for nulls."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tlc_table(kind, rows, seed=seed).to_pandas().to_csv(path, index=False)
    return path
