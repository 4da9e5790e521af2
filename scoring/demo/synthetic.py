"""Seeded synthetic ride data with NYC TLC green-trip column names, written in the Hive layout.

Real TLC files dropped into the same layout score the same way; this exists so the demo and the
tests need no download.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scoring import storage
from scoring.batch.partitions import PartitionKey

N_ZONES = 265


def generate_rides(n: int, *, start: datetime, span: timedelta, seed: int, first_ride_id: int = 0) -> pd.DataFrame:
    """`n` rides picked up in [start, start + span), with a duration that depends on distance and zones."""
    rng = np.random.default_rng(seed)
    # A skewed zone popularity, like Manhattan against the outer boroughs.
    weights = 1.0 / np.arange(1, N_ZONES + 1) ** 0.8
    weights /= weights.sum()
    pu = rng.choice(np.arange(1, N_ZONES + 1), size=n, p=weights)
    do = rng.choice(np.arange(1, N_ZONES + 1), size=n, p=weights)
    distance = np.round(rng.lognormal(mean=0.8, sigma=0.7, size=n), 2)
    zone_slowness = np.random.default_rng(7).normal(0.0, 3.0, size=N_ZONES + 1)
    minutes = distance / 12.0 * 60.0 + 2.0 + zone_slowness[pu] + zone_slowness[do] + rng.normal(0, 3.0, size=n)
    minutes = np.clip(minutes, 0.2, 180.0)
    pickup_offsets = rng.uniform(0, span.total_seconds(), size=n)
    pickup = pd.to_datetime(start) + pd.to_timedelta(np.sort(pickup_offsets), unit="s")
    dropoff = pickup + pd.to_timedelta(minutes * 60.0, unit="s")
    passengers = rng.integers(1, 5, size=n)
    fare = np.round(2.5 + distance * 2.5 + minutes * 0.5, 2)
    return pd.DataFrame(
        {
            "ride_id": np.arange(first_ride_id, first_ride_id + n, dtype=np.int64),
            "VendorID": rng.integers(1, 3, size=n),
            "lpep_pickup_datetime": pickup.tz_localize(None),
            "lpep_dropoff_datetime": dropoff.tz_localize(None),
            "store_and_fwd_flag": np.where(rng.random(n) < 0.01, "Y", "N"),
            "RatecodeID": np.ones(n, dtype=np.int64),
            "PULocationID": pu.astype(np.int64),
            "DOLocationID": do.astype(np.int64),
            "passenger_count": passengers.astype(np.int64),
            "trip_distance": distance,
            "fare_amount": fare,
            "total_amount": np.round(fare * 1.2, 2),
            "payment_type": rng.integers(1, 3, size=n),
            "trip_type": np.ones(n, dtype=np.int64),
        }
    )


def duration_minutes(rides: pd.DataFrame) -> pd.Series:
    """Ride duration in minutes, as the classic tutorial computes its target."""
    delta = pd.to_datetime(rides["lpep_dropoff_datetime"]) - pd.to_datetime(rides["lpep_pickup_datetime"])
    return delta.dt.total_seconds() / 60.0


def poison(rides: pd.DataFrame, rate: float, seed: int) -> pd.DataFrame:
    """Spoil a fraction of rows the way real feeds do: missing distances and negative ones."""
    if rate <= 0:
        return rides
    rng = np.random.default_rng(seed)
    spoiled = rides.copy()
    rows = rng.random(len(spoiled)) < rate
    half = rows & (rng.random(len(spoiled)) < 0.5)
    spoiled.loc[half, "trip_distance"] = np.nan
    spoiled.loc[rows & ~half, "trip_distance"] = -1.0
    return spoiled


def write_partition(
    input_root: str,
    dataset: str,
    key: PartitionKey,
    rides: pd.DataFrame,
    *,
    files: int = 2,
    file_format: str = "parquet",
) -> list[str]:
    """Write `rides` as `files` part files of one Hive partition; returns their URIs."""
    directory = storage.join(input_root, dataset, *key.path_segments())
    written = []
    for number, part in enumerate(np.array_split(np.arange(len(rides)), max(files, 1))):
        chunk = rides.iloc[part]
        uri = storage.join(directory, f"part-{number:05d}.{file_format}")
        buffer = io.BytesIO()
        if file_format == "parquet":
            pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), buffer)
        elif file_format == "csv":
            chunk.to_csv(buffer, index=False)
        else:
            raise ValueError(f"file_format must be 'parquet' or 'csv', got {file_format!r}")
        storage.write_bytes(uri, buffer.getvalue())
        written.append(uri)
    return written


def write_day(
    input_root: str,
    dataset: str,
    day: str,
    *,
    rows_per_hour: int,
    seed: int,
    poison_rate: float = 0.0,
    files_per_hour: int = 2,
    file_format: str = "parquet",
) -> list[PartitionKey]:
    """Twenty-four hourly partitions of one day; ride ids are unique across the day."""
    start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    keys = []
    for hour in range(24):
        key = PartitionKey.parse(f"{day}T{hour:02d}")
        begin = start + timedelta(hours=hour)
        first_id = (int(begin.timestamp()) // 3600) * 10_000_000
        rides = generate_rides(
            rows_per_hour, start=begin, span=timedelta(hours=1), seed=seed + hour, first_ride_id=first_id
        )
        rides = poison(rides, poison_rate, seed=seed + 1000 + hour)
        write_partition(input_root, dataset, key, rides, files=files_per_hour, file_format=file_format)
        keys.append(key)
    return keys
