"""The batch engine against a raw COPY and the tutorial way, on one PostgreSQL table, in one run.

    .venv/bin/python bench/batch.py [--rows 1000000] [--repeat 3] [--database postgresql://postgres@127.0.0.1/test]
                                    [--skip-naive] [--skip-airflow] [--skip-rss]

(a) engine: `score_partition` end to end (plan, read Parquet, validate, predict, monitor, stage,
    publish by binary COPY), and the same without the monitoring accumulator: the metrics' cost
(b) raw COPY: only `COPY predictions FROM STDIN` of the same output rows, prepared in memory first,
    as text (CSV, the limit the issue names) and as binary (the engine's format: the tighter limit)
(c) naive: read_parquet, to_dict, dv.transform, predict, to_sql - as the classic tutorial does
All of them write the same logged table with its primary key index. (a) and (b) run --repeat times,
alternately, after one small warm-up run (imports and first calls count in neither), and their
medians are compared. Then the shard counts of the issue's two shapes, the Airflow/CLI ratio
(bench/airflow_overhead.py), and peak RSS of the engine in fresh subprocesses for --rows and 4x
--rows: it should stay flat.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

import scoring.batch.shard
from scoring.batch import score_partition
from scoring.batch.partitions import PartitionKey
from scoring.batch.pieces import pack_shards
from scoring.batch.plan import DEFAULT_SHARD_ROWS
from scoring.batch.reader import file_layout
from scoring.batch.store import pgcopy
from scoring.batch.store.engines import make_engine, upgrade
from scoring.batch.store.writes import BINARY_COLUMNS, COPY_COLUMNS, COPY_SQL, binary_copy_sql
from scoring.demo.synthetic import generate_rides
from scoring.demo.training import train_demo_bundle
from scoring.model.bundle import load_bundle
from scoring.model.predict import Predictor
from scoring.model.trust import BundleTrust
from scoring.settings import normalize_database_url

KEY = PartitionKey.parse("2026-02-01T00")
ROWS_PER_FILE = 500_000


def write_input(root: str, rows: int) -> None:
    """The partition as Parquet files of up to 500k rows, generated file by file to keep this process small."""
    start = datetime(2026, 2, 1, tzinfo=timezone.utc)
    directory = Path(root, "rides", *KEY.path_segments())
    for number, offset in enumerate(range(0, rows, ROWS_PER_FILE)):
        size = min(ROWS_PER_FILE, rows - offset)
        rides = generate_rides(size, start=start, span=timedelta(hours=1), seed=number, first_ride_id=offset)
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(rides, preserve_index=False), directory / f"part-{number:05d}.parquet")


def fresh_schema(base_url: str) -> str:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with sa.create_engine(normalize_database_url(base_url)).begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    return schema


def drop_schema(base_url: str, schema: str) -> None:
    with sa.create_engine(normalize_database_url(base_url)).begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


def schema_url(base_url: str, schema: str) -> str:
    return f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"


def truncate(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE predictions, scoring_runs, rejected_records"))


def run_engine(predictor: Predictor, engine: sa.Engine, root: str, staging: str):
    return score_partition(
        predictor,
        engine,
        job="bench",
        partition=KEY,
        input_root=root,
        dataset="rides",
        staging_root=staging,
        chunk_rows=200_000,
        reject_threshold=0.01,
    )


@dataclass(frozen=True)
class CopyInput:
    """The engine's stored rows, exported once and prepared in memory as both COPY formats."""

    rows: int
    text: bytes
    binary: bytes


def export_rows(engine: sa.Engine) -> CopyInput:
    """What the engine stored, as the CSV and the binary COPY streams of the same rows (in stored order)."""
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text(f"SELECT {', '.join(COPY_COLUMNS)} FROM predictions"), conn)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    del frame
    text = io.BytesIO()
    pacsv.write_csv(table, text, pacsv.WriteOptions(include_header=False))
    first = table.slice(0, 1).to_pylist()[0]
    constants = tuple(first[name] for name in BINARY_COLUMNS[:5])
    scored_at = first["scored_at"]
    scored_at = scored_at.to_pydatetime() if hasattr(scored_at, "to_pydatetime") else scored_at
    head = pgcopy.constant_head(len(BINARY_COLUMNS), constants, scored_at)
    body = pgcopy.binary_rows(head, table.column("prediction").to_numpy(), [table.column("record_id")])
    binary = pgcopy.HEADER + body.to_pybytes() + pgcopy.TRAILER
    return CopyInput(rows=table.num_rows, text=text.getvalue(), binary=binary)


def raw_copy_seconds(engine: sa.Engine, sql: str, data: bytes) -> float:
    """Truncate, then time only the COPY of `data` into predictions (one transaction, committed)."""
    truncate(engine)
    start = time.perf_counter()
    with engine.begin() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.copy_expert(sql, io.BytesIO(data), size=1 << 20)
        cursor.close()
    return time.perf_counter() - start


@contextlib.contextmanager
def without_monitoring() -> Iterator[None]:
    """Shards keep no monitoring accumulator (and the publish writes no metrics) while inside."""
    original = scoring.batch.shard.shard_monitor
    scoring.batch.shard.shard_monitor = lambda bundle: None  # type: ignore[assignment,return-value]
    try:
        yield
    finally:
        scoring.batch.shard.shard_monitor = original


def naive_seconds(bundle_dir: str, engine: sa.Engine, root: str) -> float:
    """The tutorial: whole partition into pandas, per-row dicts, dv.transform, to_sql append."""
    import pickle

    truncate(engine)
    start = time.perf_counter()
    with open(Path(bundle_dir, "model.bin"), "rb") as handle:
        dv, model = pickle.load(handle)
    df = pd.read_parquet(Path(root, "rides", *KEY.path_segments()))
    df["PU_DO"] = df["PULocationID"].astype(str) + "_" + df["DOLocationID"].astype(str)
    dicts = df[["PU_DO", "trip_distance"]].to_dict(orient="records")
    y_pred = model.predict(dv.transform(dicts))
    out = pd.DataFrame(
        {
            "job": "bench",
            "partition_key": str(KEY),
            "record_id": df["ride_id"].astype(str),
            "prediction": y_pred,
            "model_name": "ride_duration",
            "model_version": "1",
            "run_id": "naive",
            "scored_at": datetime.now(timezone.utc),
        }
    )
    out.to_sql("predictions", engine, if_exists="append", index=False, chunksize=10_000)
    return time.perf_counter() - start


def child_peak_rss(rows: int, base_url: str, bundle_dir: str, work: str) -> float:
    """Peak RSS (MiB) of a fresh process that runs the engine on `rows` rows."""
    root = str(Path(work, f"rss_{rows}"))
    write_input(root, rows)
    schema = fresh_schema(base_url)
    try:
        args = [
            sys.executable,
            __file__,
            "--child",
            root,
            schema_url(base_url, schema),
            bundle_dir,
            str(Path(work, "stage")),
        ]
        result = subprocess.run(args, check=True, capture_output=True, text=True)
    finally:
        drop_schema(base_url, schema)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_rss_mib"]


def peak_rss_mib() -> float:
    """This process's own RSS high-water mark. (ru_maxrss would not do: it survives execve, so a child
    started by a big parent reports the parent's peak.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_main(root: str, url: str, bundle_dir: str, staging: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    summary = run_engine(Predictor(load_bundle(bundle_dir, BundleTrust.of_bundle(bundle_dir))), engine, root, staging)
    peak = peak_rss_mib()
    print(json.dumps({"rows": summary.scored_rows, "peak_rss_mib": peak}))


def shard_counts(work: str) -> list[str]:
    """The issue's two shapes, planned as a run plans them: the demo's day, and one 2M-row file in 250k row groups."""
    day = Path(work, "shapes", "day")
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for hour in range(24):  # as `scoring demo` writes it: 24 hours of 20,000 rides, 2 files each
        rides = generate_rides(20_000, start=start + timedelta(hours=hour), span=timedelta(hours=1), seed=hour)
        for part in range(2):
            folder = day / f"hour={hour:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            half = pa.Table.from_pandas(rides.iloc[part * 10_000 : (part + 1) * 10_000], preserve_index=False)
            pq.write_table(half, folder / f"part-{part:05d}.parquet")
    big = Path(work, "shapes", "big.parquet")
    rides = generate_rides(2_000_000, start=start, span=timedelta(hours=1), seed=7)
    pq.write_table(pa.Table.from_pandas(rides, preserve_index=False), big, row_group_size=250_000)
    del rides
    files = sorted(str(path) for path in day.rglob("*.parquet"))
    day_shards = pack_shards([file_layout(uri, str(day)) for uri in files], DEFAULT_SHARD_ROWS)
    big_shards = pack_shards([file_layout(str(big), str(big.parent))], 500_000)
    return [
        f"shards: demo day, {len(files)} files of 10,000 rows at SCORING_SHARD_ROWS={DEFAULT_SHARD_ROWS} (default) "
        f"-> {len(day_shards)} shard(s) (target 1)",
        f"shards: one 2,000,000-row Parquet file in 250,000-row groups at SCORING_SHARD_ROWS=500000 "
        f"-> {len(big_shards)} shard(s) of {', '.join(str(sum(p.rows for p in s)) for s in big_shards)} rows (target 4)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds of (a) and (b); medians are compared")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--skip-naive", action="store_true", help="skip (c), the tutorial way (a minute at 1M rows)")
    parser.add_argument("--skip-airflow", action="store_true", help="skip the Airflow/CLI comparison")
    parser.add_argument("--airflow-repeat", type=int, default=3)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--only-rss", action="store_true", help="measure peak RSS only (skips the timings)")
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return 0

    with tempfile.TemporaryDirectory() as work:
        bundle_dir = str(Path(work, "bundle"))
        train_demo_bundle(bundle_dir)
        if not args.only_rss:
            for line in shard_counts(work):
                print(line, flush=True)
            time_the_ways(args, bundle_dir, work)
            if not args.skip_airflow:
                import airflow_overhead

                for line in airflow_overhead.compare(args.database, args.airflow_repeat).lines():
                    print(line, flush=True)
        if not args.skip_rss:
            small = child_peak_rss(args.rows, args.database, bundle_dir, work)
            large = child_peak_rss(4 * args.rows, args.database, bundle_dir, work)
            print(
                f"peak RSS: {small:.0f} MiB at {args.rows:,} rows, {large:.0f} MiB at {4 * args.rows:,} rows "
                f"(ratio {large / small:.2f}; target flat and < 1024 MiB)"
            )
    return 0


def time_the_ways(args: argparse.Namespace, bundle_dir: str, work: str) -> None:
    """(a), (b) and (c) on the same partition and table, printed with their ratios."""
    predictor = Predictor(load_bundle(bundle_dir, BundleTrust.of_bundle(bundle_dir)))
    root = str(Path(work, "in"))
    write_input(root, args.rows)
    warm = str(Path(work, "warm"))
    write_input(warm, 20_000)
    schema = fresh_schema(args.database)
    engine = make_engine(schema_url(args.database, schema))
    upgrade(engine)
    stage = str(Path(work, "stage"))
    timings: dict[str, list[float]] = {"engine": [], "bare": [], "text": [], "binary": []}
    try:
        run_engine(predictor, engine, warm, stage)  # imports and first calls, outside every timing
        for _ in range(args.repeat):
            truncate(engine)
            start = time.perf_counter()
            summary = run_engine(predictor, engine, root, stage)
            timings["engine"].append(time.perf_counter() - start)
            truncate(engine)
            with without_monitoring():
                start = time.perf_counter()
                run_engine(predictor, engine, root, stage)
                timings["bare"].append(time.perf_counter() - start)
            copy_input = export_rows(engine)
            timings["text"].append(raw_copy_seconds(engine, COPY_SQL, copy_input.text))
            timings["binary"].append(raw_copy_seconds(engine, binary_copy_sql(), copy_input.binary))
        naive_s = None if args.skip_naive else naive_seconds(bundle_dir, engine, root)
    finally:
        engine.dispose()
        drop_schema(args.database, schema)
    engine_s, bare_s, text_s, binary_s = (statistics.median(timings[k]) for k in ("engine", "bare", "text", "binary"))
    rows = summary.scored_rows
    print(
        f"rows: {rows:,} scored ({summary.rejected_rows} rejected), {copy_input.rows:,} copied; medians of {args.repeat}"
    )
    print(f"(a) engine end to end        : {engine_s:7.2f} s  {rows / engine_s:>10,.0f} rows/s")
    print(f"    without the accumulator  : {bare_s:7.2f} s  {rows / bare_s:>10,.0f} rows/s")
    print(f"(b) raw text COPY only       : {text_s:7.2f} s  {rows / text_s:>10,.0f} rows/s")
    print(f"    raw binary COPY only     : {binary_s:7.2f} s  {rows / binary_s:>10,.0f} rows/s")
    if naive_s is not None:
        print(f"(c) naive tutorial           : {naive_s:7.2f} s  {rows / naive_s:>10,.0f} rows/s")
    print(f"engine / raw text COPY throughput  : {text_s / engine_s:.2f}x  (target >= 0.9x)")
    print(f"engine / raw binary COPY throughput: {binary_s / engine_s:.2f}x  (the tighter limit)")
    print(f"binary / text COPY throughput      : {text_s / binary_s:.2f}x")
    print(f"metrics cost: {100 * (engine_s - bare_s) / engine_s:.1f}% of engine time (target <= 10%)")
    if naive_s is not None:
        print(f"engine / naive throughput          : {naive_s / engine_s:.1f}x  (target >= 6x)")


if __name__ == "__main__":
    sys.exit(main())
