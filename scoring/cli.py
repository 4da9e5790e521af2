"""The `scoring` command line: demo setup, model import, batch scoring, database migrations."""

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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
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
    return parser


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.synthetic import write_day
    from scoring.training import train_demo_bundle

    input_root = args.input or settings.input_root
    model_uri = args.model or settings.model_uri
    report = train_demo_bundle(model_uri)
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
    from scoring.bundle import import_model

    dest = args.dest or storage.join("models", args.name, args.version)
    manifest = import_model(
        args.path,
        dest,
        name=args.name,
        version=args.version,
        features=args.features,
        id_field=args.id_field,
        output=args.output,
    )
    print(f"imported {manifest.name} v{manifest.version} ({manifest.format}, sha256 {manifest.sha256[:12]}) -> {dest}")
    return 0


def _model_show(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.bundle import load_bundle

    bundle = load_bundle(args.uri or settings.model_uri)
    print(json.dumps(bundle.manifest.to_json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
