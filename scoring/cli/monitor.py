"""`scoring monitor`: print a job's partition metrics and, on request, plot drift per feature across partitions."""

from __future__ import annotations

import argparse

from sqlalchemy import inspect

from scoring.batch.store.engines import check_reachable, describe, make_engine
from scoring.errors import DatabaseBehind
from scoring.monitoring.report import format_table, plot_drift, read_metrics
from scoring.monitoring.tables import partition_metrics
from scoring.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    """Add `monitor`."""
    monitor = commands.add_parser(
        "monitor", help="show drift and data-quality metrics of a job's partitions (partition_metrics)"
    )
    monitor.add_argument("--job", required=True, help="the job whose metrics to show")
    monitor.add_argument("--partition", help="only this partition key (YYYY-MM-DD or YYYY-MM-DDTHH)")
    monitor.add_argument("--database", help="database URL (default: SCORING_DATABASE_URL)")
    monitor.add_argument(
        "--plot", metavar="FILE.png", help="also draw drift per feature across partitions (matplotlib)"
    )
    monitor.set_defaults(handler=_monitor_command)


def _monitor_command(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(args.database or settings.database_url)
    try:
        check_reachable(engine)
        if not inspect(engine).has_table(partition_metrics.name):
            raise DatabaseBehind(f"{describe(engine)} has no partition_metrics table: run `scoring db upgrade`")
        metrics = read_metrics(engine, args.job, args.partition)
    finally:
        engine.dispose()
    where = f"job '{args.job}'" + (f", partition {args.partition}" if args.partition else "")
    if not metrics:
        print(f"no metrics for {where}")
        return 0
    print(format_table(metrics))
    if args.plot:
        drawn = plot_drift(metrics, args.plot, f"drift per feature, {where}")
        print(f"plot of {drawn} feature(s) written to {args.plot}")
    return 0
