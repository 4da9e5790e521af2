"""The batch engine against a raw COPY and the tutorial way, on one PostgreSQL table, in one run.

    .venv/bin/python bench/batch.py [--rows 2000000] [--database postgresql://postgres@127.0.0.1/test]

(a) engine: `score_partition` end to end (read Parquet, validate, predict, stage, publish with COPY)
(b) raw COPY: only `COPY predictions FROM STDIN` of the same output rows, prepared in memory first
(c) naive: read_parquet, to_dict, dv.transform, predict, to_sql - as the classic tutorial does
All three write the same logged table with its primary key index. Then peak RSS of the engine, in
fresh subprocesses, for --rows and 4x --rows: it should stay flat.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from scoring.batch import score_partition
from scoring.batch.partitions import PartitionKey
from scoring.batch.store.engines import make_engine, upgrade
from scoring.batch.store.writes import COPY_COLUMNS, COPY_SQL
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


def raw_copy_seconds(engine: sa.Engine) -> tuple[float, int]:
    """Export what the engine stored, truncate, and time only the COPY of those rows back in."""
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text(f"SELECT {', '.join(COPY_COLUMNS)} FROM predictions"), conn)
    rows = len(frame)
    buffer = io.BytesIO()
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer, pacsv.WriteOptions(include_header=False))
    del frame
    truncate(engine)
    buffer.seek(0)
    start = time.perf_counter()
    with engine.begin() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.copy_expert(COPY_SQL, buffer)
        cursor.close()
    return time.perf_counter() - start, rows


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
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
            time_the_three_ways(args, bundle_dir, work)
        if not args.skip_rss:
            small = child_peak_rss(args.rows, args.database, bundle_dir, work)
            large = child_peak_rss(4 * args.rows, args.database, bundle_dir, work)
            print(
                f"peak RSS: {small:.0f} MiB at {args.rows:,} rows, {large:.0f} MiB at {4 * args.rows:,} rows "
                f"(ratio {large / small:.2f}; target flat and < 1024 MiB)"
            )
    return 0


def time_the_three_ways(args: argparse.Namespace, bundle_dir: str, work: str) -> None:
    """(a), (b) and (c) on the same partition and table, printed with their ratios."""
    predictor = Predictor(load_bundle(bundle_dir, BundleTrust.of_bundle(bundle_dir)))
    root = str(Path(work, "in"))
    write_input(root, args.rows)
    schema = fresh_schema(args.database)
    engine = make_engine(schema_url(args.database, schema))
    upgrade(engine)
    try:
        start = time.perf_counter()
        summary = run_engine(predictor, engine, root, str(Path(work, "stage")))
        engine_s = time.perf_counter() - start
        copy_s, copied = raw_copy_seconds(engine)
        naive_s = naive_seconds(bundle_dir, engine, root)
    finally:
        engine.dispose()
        drop_schema(args.database, schema)
    rows = summary.scored_rows
    print(f"rows: {rows:,} scored ({summary.rejected_rows} rejected), {copied:,} copied")
    print(f"(a) engine end to end : {engine_s:7.2f} s  {rows / engine_s:>10,.0f} rows/s")
    print(f"(b) raw COPY only     : {copy_s:7.2f} s  {rows / copy_s:>10,.0f} rows/s")
    print(f"(c) naive tutorial    : {naive_s:7.2f} s  {rows / naive_s:>10,.0f} rows/s")
    print(f"engine / raw COPY throughput: {copy_s / engine_s:.2f}x  (target >= 0.6x)")
    print(f"engine / naive throughput   : {naive_s / engine_s:.1f}x  (target >= 6x)")


if __name__ == "__main__":
    sys.exit(main())
