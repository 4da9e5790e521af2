"""The `scoring` command line: demo setup, model import, batch scoring, staging sweep, database migrations."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from scoring import storage
from scoring.errors import ScoringError
from scoring.settings import Settings

log = logging.getLogger("scoring")

DEMO_DAY = "2026-01-01"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `scoring` console script; returns the process exit code."""
    # Warnings and errors only: the command prints its own one-line summary.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    settings = Settings.from_env()
    try:
        return int(args.handler(args, settings) or 0)
    except ScoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scoring", description=__doc__)
    commands = parser.add_subparsers(dest="command")

    demo = commands.add_parser("demo", help="generate a day of synthetic ride partitions and train the demo bundle")
    demo.add_argument("--day", default=DEMO_DAY, help=f"day to generate (default {DEMO_DAY})")
    demo.add_argument("--rows-per-hour", type=int, default=20_000)
    demo.add_argument("--poison-rate", type=float, default=0.002, help="fraction of rows spoiled to show quarantine")
    demo.add_argument("--input", help="input root (default SCORING_INPUT_ROOT)")
    demo.add_argument("--model", help="bundle directory to write (default SCORING_MODEL_URI)")
    demo.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    demo.set_defaults(handler=_demo)

    model = commands.add_parser("model", help="model bundles").add_subparsers(dest="model_command")
    imp = model.add_parser("import", help="turn an existing model.bin into a bundle")
    imp.add_argument("path", help="the pickled (DictVectorizer, estimator) tuple or Pipeline")
    imp.add_argument("--name", required=True)
    imp.add_argument("--version", required=True)
    imp.add_argument("--features", required=True, help="feature recipe, e.g. ride_pu_do")
    imp.add_argument("--id-field", default="ride_id")
    imp.add_argument("--output", default="duration", help="name of the predicted field")
    imp.add_argument("--dest", help="bundle directory (default models/NAME/VERSION)")
    imp.set_defaults(handler=_model_import)
    show = model.add_parser("show", help="print a bundle's manifest after verifying it")
    show.add_argument("uri", nargs="?", help="bundle directory (default SCORING_MODEL_URI)")
    show.set_defaults(handler=_model_show)

    db = commands.add_parser("db", help="the predictions database").add_subparsers(dest="db_command")
    up = db.add_parser("upgrade", help="create or migrate the tables with Alembic")
    up.add_argument("--database", help="database URL (default SCORING_DATABASE_URL)")
    up.set_defaults(handler=_db_upgrade)

    score = commands.add_parser("score", help="score one partition and publish it exactly once")
    score.add_argument("--job", required=True, help="job name, e.g. score_rides_hourly")
    score.add_argument("--partition", required=True, help="2026-01-01T03 (hourly) or 2026-01-01 (daily)")
    score.add_argument("--input", help="input root, local or s3:// (default SCORING_INPUT_ROOT)")
    score.add_argument("--model", help="bundle URI (default SCORING_MODEL_URI)")
    score.add_argument("--database", help="database URL (default SCORING_DATABASE_URL)")
    score.add_argument("--reject-threshold", type=float, help="fail above this rejected fraction (default 0.01)")
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
    from scoring.stream.runner import add_stream_commands

    add_stream_commands(commands)
    return parser


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.demo.synthetic import write_day
    from scoring.demo.training import train_demo_bundle
    from scoring.model.trust import BundleTrust

    input_root = args.input or settings.input_root
    model_uri = args.model or settings.model_uri
    report = train_demo_bundle(model_uri, key=BundleTrust.from_settings(settings).key)
    print(
        f"trained {report.manifest.name} v{report.manifest.version} on {report.training_rows} rides "
        f"(rmse {report.rmse_minutes:.2f} min) -> {model_uri}"
    )
    keys = write_day(
        input_root,
        settings.dataset,
        args.day,
        rows_per_hour=args.rows_per_hour,
        seed=2026,
        poison_rate=args.poison_rate,
        file_format=args.format,
    )
    print(
        f"wrote {len(keys)} hourly partitions of {args.rows_per_hour} rides -> {storage.join(input_root, settings.dataset)}"
    )
    return 0


def _model_import(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.model.bundle import import_model
    from scoring.model.trust import BundleTrust

    dest = args.dest or storage.join("models", args.name, args.version)
    manifest = import_model(
        args.path,
        dest,
        name=args.name,
        version=args.version,
        features=args.features,
        id_field=args.id_field,
        output=args.output,
        key=BundleTrust.from_settings(settings).key,
    )
    print(f"imported {manifest.name} v{manifest.version} ({manifest.format}, sha256 {manifest.sha256[:12]}) -> {dest}")
    return 0


def _model_show(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.model.bundle import load_bundle
    from scoring.model.trust import BundleTrust

    bundle = load_bundle(args.uri or settings.model_uri, BundleTrust.from_settings(settings))
    print(json.dumps(bundle.manifest.to_json(), indent=2))
    return 0


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.batch.store.engines import make_engine, upgrade

    url = args.database or settings.database_url
    upgrade(make_engine(url))
    print(f"database at {_redact(url)} is at the latest schema")
    return 0


def _score(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.batch.engine import score_partition, validate_job_name
    from scoring.batch.partitions import PartitionKey
    from scoring.batch.progress import RowProgress
    from scoring.batch.store.engines import make_engine, upgrade
    from scoring.model.bundle import load_bundle
    from scoring.model.predict import Predictor
    from scoring.model.trust import BundleTrust

    validate_job_name(args.job)
    settings = settings.with_overrides(
        input_root=args.input, model_uri=args.model, database_url=args.database, reject_threshold=args.reject_threshold
    )
    partition = PartitionKey.parse(args.partition)
    predictor = Predictor(load_bundle(settings.model_uri, BundleTrust.from_settings(settings)))
    engine = make_engine(settings.database_url)
    upgrade(engine)
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
            on_rows=progress.advance,
        )
    print(summary.line())
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


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


if __name__ == "__main__":
    sys.exit(main())
