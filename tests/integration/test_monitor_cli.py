"""`scoring monitor` against the real PostgreSQL: the printed table, the partition filter, the plot, the errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from scoring.batch.store.engines import make_engine
from scoring.cli import monitor
from scoring.errors import ScoringError
from scoring.monitoring.accumulate import PARTITION, MetricRow
from scoring.monitoring.tables import metadata, partition_metrics
from scoring.monitoring.writes import replace_partition_metrics
from scoring.settings import Settings

pytestmark = pytest.mark.postgres

JOB = "rides_hourly"


def run_monitor(*argv: str) -> int:
    """Run `scoring monitor ARGV` as scoring.cli.main does: a ScoringError is one 'error:' line and exit code 1."""
    parser = argparse.ArgumentParser(prog="scoring")
    monitor.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["monitor", *argv])
    try:
        return int(args.handler(args, Settings()) or 0)
    except ScoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def hour_rows(distance_drift: float) -> list[MetricRow]:
    drifted = distance_drift > 0.1
    return [
        MetricRow(PARTITION, "input_rows", 10_000.0),
        MetricRow(PARTITION, "share_rejected", 0.001),
        MetricRow(PARTITION, "drifted_features", float(drifted)),
        MetricRow("trip_distance", "p50", 2.2),
        MetricRow("trip_distance", "wasserstein_normed", distance_drift, 0.1, drifted),
        MetricRow("PULocationID", "jensenshannon", 0.03, 0.1, False),
        MetricRow("duration", "wasserstein_normed", distance_drift, 0.1, drifted),
    ]


@pytest.fixture
def database(pg_schema_url: str) -> Iterator[str]:
    """A throwaway schema holding partition_metrics with three hours of one job, the last one drifted."""
    engine = make_engine(pg_schema_url)
    metadata.create_all(engine)
    with engine.begin() as connection:
        for hour, value in (("2026-03-01T00", 0.02), ("2026-03-01T01", 0.03), ("2026-03-01T02", 2.4)):
            replace_partition_metrics(connection, JOB, hour, f"run-{hour}", hour_rows(value))
        replace_partition_metrics(connection, "other_job", "2026-03-01T00", "run-x", hour_rows(9.0))
    engine.dispose()
    yield pg_schema_url


def test_monitor_prints_every_metric_of_the_job_and_names_the_drifted_partition(database, capsys):
    # When the job's metrics are shown
    code = run_monitor("--job", JOB, "--database", database)
    out = capsys.readouterr().out
    # Then every row of its three hours is printed (none of the other job's), the drifted ones marked
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["partition", "feature", "metric", "value", "threshold", "drifted"]
    assert len(lines) == 1 + 3 * 7 + 1
    drifted = [line.split() for line in lines if line.endswith("DRIFTED")]
    assert drifted == [
        ["2026-03-01T02", "duration", "wasserstein_normed", "2.4", "0.1", "DRIFTED"],
        ["2026-03-01T02", "trip_distance", "wasserstein_normed", "2.4", "0.1", "DRIFTED"],
    ]
    assert lines[1].split()[:2] == ["2026-03-01T00", PARTITION]  # partition-level rows lead each partition
    assert lines[-1] == "3 partition(s), 1 drifted (2026-03-01T02: duration, trip_distance)"


def test_monitor_shows_one_partition(database, capsys):
    assert run_monitor("--job", JOB, "--partition", "2026-03-01T01", "--database", database) == 0
    rows = capsys.readouterr().out.splitlines()[1:-1]
    assert len(rows) == 7 and {row.split()[0] for row in rows} == {"2026-03-01T01"}


def test_monitor_plots_drift_per_feature(database, tmp_path, capsys):
    plot = tmp_path / "drift.png"
    assert run_monitor("--job", JOB, "--database", database, "--plot", str(plot)) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 10_000
    assert f"plot of 3 feature(s) written to {plot}" in capsys.readouterr().out


def test_a_rerun_replaces_the_partition_metrics(database):
    # Given the last hour scored again, now without drift and with fewer metrics
    engine = make_engine(database)
    with engine.begin() as connection:
        replace_partition_metrics(
            connection, JOB, "2026-03-01T02", "run-again", [MetricRow("trip_distance", "p50", 2.3)]
        )
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(partition_metrics.c.run_id, partition_metrics.c.metric).where(
                partition_metrics.c.job == JOB, partition_metrics.c.partition_key == "2026-03-01T02"
            )
        ).all()
    engine.dispose()
    # Then only the rerun's rows remain
    assert rows == [("run-again", "p50")]


def test_monitor_without_metrics_says_so(database, capsys):
    assert run_monitor("--job", "never_ran", "--database", database) == 0
    assert capsys.readouterr().out.strip() == "no metrics for job 'never_ran'"


def test_monitor_on_a_database_without_the_table_says_what_to_run(pg_schema_url, capsys):
    assert run_monitor("--job", JOB, "--database", pg_schema_url) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.endswith("has no partition_metrics table: run `scoring db upgrade`")
    assert "\n" not in err


def test_monitor_plot_without_matplotlib_is_one_line_naming_the_install(database, tmp_path, capsys, monkeypatch):
    # Given matplotlib cannot be imported
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    # Then --plot fails in one line saying how to install it, after the table was printed
    assert run_monitor("--job", JOB, "--database", database, "--plot", str(tmp_path / "p.png")) == 1
    captured = capsys.readouterr()
    assert captured.err == "error: --plot needs matplotlib, which is not installed: pip install matplotlib\n"
    assert "DRIFTED" in captured.out
    assert not (tmp_path / "p.png").exists()


def test_monitor_on_an_unreachable_database_is_one_line(capsys):
    assert run_monitor("--job", JOB, "--database", "postgresql://nobody@127.0.0.1:1/none") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot connect to the database") and err.count("\n") == 1
