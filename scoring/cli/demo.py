"""`scoring demo`: a day of synthetic ride partitions and the demo bundle trained on rides like them."""

from __future__ import annotations

import argparse

from scoring import storage
from scoring.settings import Settings

DEMO_DAY = "2026-01-01"


def register(commands: argparse._SubParsersAction) -> None:
    """Add `demo`."""
    demo = commands.add_parser("demo", help="generate a day of synthetic ride partitions and train the demo bundle")
    demo.add_argument("--day", default=DEMO_DAY, help=f"day to generate (default {DEMO_DAY})")
    demo.add_argument("--rows-per-hour", type=int, default=20_000)
    demo.add_argument("--poison-rate", type=float, default=0.002, help="fraction of rows spoiled to show quarantine")
    demo.add_argument("--input", help="input root (default SCORING_INPUT_ROOT)")
    demo.add_argument("--model", help="bundle directory to write (default SCORING_MODEL_URI)")
    demo.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    demo.set_defaults(handler=_demo)


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
