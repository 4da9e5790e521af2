"""Batch commands: `scoring score`, `report`, `db upgrade` and `staging sweep`."""

from __future__ import annotations

import argparse

from scoring.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    """Add `db upgrade`, `score`, `staging sweep` and `report`."""
    db = commands.add_parser("db", help="the predictions database").add_subparsers(dest="db_command")
    up = db.add_parser("upgrade", help="create or migrate the tables with Alembic (at deploy time; runs never migrate)")
    up.add_argument("--database", help="database URL (default SCORING_DATABASE_URL)")
    up.set_defaults(handler=_db_upgrade)

    score = commands.add_parser("score", help="score one partition and publish it exactly once")
    score.add_argument("--job", required=True, help="job name, e.g. score_rides_hourly")
    score.add_argument("--partition", required=True, help="2026-01-01T03 (hourly) or 2026-01-01 (daily)")
    score.add_argument("--input", help="input root, local or s3:// (default SCORING_INPUT_ROOT)")
    score.add_argument("--dataset", help="dataset folder under the input root (default SCORING_DATASET, 'rides')")
    score.add_argument(
        "--id-field",
        help="the column naming each record, for this run (default: the bundle's id field); "
        "files without it get ids <file>:<row>",
    )
    score.add_argument(
        "--require-id",
        action="store_true",
        help="fail the run on a file without the id column, instead of naming its rows by file and row",
    )
    score.add_argument("--model", help="bundle URI (default SCORING_MODEL_URI)")
    score.add_argument("--database", help="database URL (default SCORING_DATABASE_URL)")
    score.add_argument("--reject-threshold", type=float, help="fail above this rejected fraction (default 0.01)")
    score.add_argument(
        "--shard-rows",
        type=int,
        help="rows per shard: small files grouped, Parquet split at row groups (default SCORING_SHARD_ROWS, 500000)",
    )
    score.add_argument(
        "--drift-threshold",
        type=float,
        help="a feature drifts when its drift statistic passes this (default SCORING_DRIFT_THRESHOLD, 0.1)",
    )
    score.set_defaults(handler=_score)

    staging = commands.add_parser("staging", help="staged shard output").add_subparsers(dest="staging_command")
    sweep = staging.add_parser("sweep", help="delete staged runs older than an age (runs killed mid-way)")
    sweep.add_argument("--staging", help="staging root, local or s3:// (default SCORING_STAGING_ROOT)")
    sweep.add_argument(
        "--older-than-hours", type=float, help="age in hours (default SCORING_STAGING_MAX_AGE_HOURS, 24)"
    )
    sweep.set_defaults(handler=_staging_sweep)

    report = commands.add_parser("report", help="print the published partitions of a job")
    report.add_argument("--job", required=True)
    report.add_argument("--database", help="database URL (default SCORING_DATABASE_URL)")
    report.set_defaults(handler=_report)


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.batch.store.engines import describe, make_engine, upgrade

    engine = make_engine(args.database or settings.database_url)
    upgrade(engine)
    print(f"database at {describe(engine)} is at the latest schema")
    return 0


def _score(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.batch import PartitionKey, score_partition, validate_job_name
    from scoring.batch.failures import planning_failures_recorded
    from scoring.batch.options import validate_dataset, validate_id_field
    from scoring.batch.plan import new_run_id
    from scoring.batch.progress import RowProgress
    from scoring.batch.reader import partition_uri
    from scoring.batch.store.engines import make_engine, require_current
    from scoring.model.bundle import load_bundle
    from scoring.model.predict import Predictor
    from scoring.model.trust import BundleTrust

    validate_job_name(args.job)
    if args.dataset is not None:
        validate_dataset(args.dataset)
    if args.id_field is not None:
        validate_id_field(args.id_field)
    settings = settings.with_overrides(
        input_root=args.input,
        dataset=args.dataset,
        model_uri=args.model,
        database_url=args.database,
        reject_threshold=args.reject_threshold,
        shard_rows=args.shard_rows,
        drift_threshold=args.drift_threshold,
    )
    partition = PartitionKey.parse(args.partition)
    engine = make_engine(settings.database_url)
    require_current(engine)  # migrating is `scoring db upgrade`'s job, at deploy time
    # From here on a failed run is recorded: a bundle refused before it is read leaves its row too.
    run_id = new_run_id()
    where = partition_uri(settings.input_root, settings.dataset, partition)
    with planning_failures_recorded(engine, job=args.job, partition=partition, run_id=run_id, source_uri=where):
        predictor = Predictor(load_bundle(settings.model_uri, BundleTrust.from_settings(settings)))
    with RowProgress(f"scoring {partition}") as progress:
        summary = score_partition(
            predictor,
            engine,
            job=args.job,
            partition=partition,
            input_root=settings.input_root,
            dataset=settings.dataset,
            staging_root=settings.staging_root,
            chunk_rows=settings.chunk_rows,
            reject_threshold=settings.reject_threshold,
            id_field=args.id_field,
            require_id=args.require_id,
            shard_rows=settings.shard_rows,
            drift_threshold=settings.drift_threshold,
            run_id=run_id,
            on_rows=progress.advance,
        )
    print(summary.line())
    if summary.drifted:
        print(
            f"drifted from the model's reference: {', '.join(summary.drifted)} (see `scoring monitor --job {args.job}`)"
        )
    return 0


def _staging_sweep(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.batch.staging import sweep_staging

    settings = settings.with_overrides(staging_root=args.staging, staging_max_age_hours=args.older_than_hours)
    swept = sweep_staging(settings.staging_root, max_age_hours=settings.staging_max_age_hours)
    print(swept.line(settings.staging_root, settings.staging_max_age_hours))
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.batch.store.engines import check_reachable, make_engine
    from scoring.batch.store.writes import partition_report

    engine = make_engine(args.database or settings.database_url)
    check_reachable(engine)
    rows = partition_report(engine, args.job)
    print(format_table(rows))
    return 0


def format_table(rows: list[dict[str, object]]) -> str:
    """A plain fixed-width table, the way a person reads it in a terminal."""
    if not rows:
        return "(no published partitions)"
    headers = list(rows[0])
    widths = [max(len(str(h)), *(len(str(r[h])) for r in rows)) for h in headers]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(r[h]).ljust(w) for h, w in zip(headers, widths, strict=True)) for r in rows]
    return "\n".join(lines)
