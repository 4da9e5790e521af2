"""The hourly traffic monitoring DAG: for each closed hour, the same metrics as a batch partition, computed from
the predictions the web service and the stream logged (prediction_log), per source, into traffic_metrics.

Drift never fails a run: it is logged once as a warning naming the source, hour and features, and updates
the Asset `scoring://drift/<dag_id>` (through an alias, so a clean hour emits no event) that a retraining
DAG can be scheduled on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from scoring.partition_keys import key_pattern
from scoring_airflow.assets import drift_alias, drift_asset
from scoring_airflow.errors import task_errors
from scoring_airflow.params import deployed_settings, drift_threshold_param

if TYPE_CHECKING:
    from scoring.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_ARGS = {"owner": "ml-platform", "retries": 3, "retry_delay": timedelta(seconds=30)}
# The task's Docs tab: what it does and what its failure means.
TASK_DOC = """Reads the hour's prediction_log rows per source, writes traffic_metrics (replacing the hour's
rows) and, when a source's hour drifted, updates the drift Asset. **Fails at once** for an hour that
is not YYYY-MM-DDTHH, a malformed setting or drift threshold, a missing or untrusted bundle, or a
database that needs `scoring db upgrade`; retries when the database is unreachable."""


def run_monitoring(context: Mapping[str, Any], dag_id: str) -> dict[str, Any]:
    """The task: monitor the form's hour, else the one starting at the run's logical date; emit drift if any.

    The form's drift threshold passes through the same override path as the scoring DAGs' (settings_for),
    so it is checked by the settings' own rule (a NaN would switch drift off).
    """
    from scoring.partition_keys import PartitionKey
    from scoring_airflow.partition_tasks import settings_for

    params = context["params"]
    logical = context.get("logical_date") or context["dag_run"].run_after
    hour = params.get("hour") or str(PartitionKey.of_hour(logical))
    summary = monitor_hour(settings_for(params), hour, context["run_id"])
    extra = drift_extra(summary, dag_id)
    if extra is not None:
        # Added to the alias only when something drifted: a clean hour emits no drift event.
        context["outlet_events"][drift_alias(dag_id)].add(drift_asset(dag_id), extra=extra)
    return summary


def monitor_hour(settings: Settings, hour: str, run_id: str) -> dict[str, Any]:
    """Compute and write each source's metrics for `hour`; a summary with the drifted features per source."""
    from scoring.model import BundleTrust, load_bundle
    from scoring.monitoring.tables import SOURCES
    from scoring.monitoring.traffic import hour_metrics, parse_hour, write_hour
    from scoring_airflow.run_tasks import predictions_db, require_current

    bundle = load_bundle(settings.model_uri, BundleTrust.from_settings(settings))
    start = parse_hour(hour)
    summary: dict[str, Any] = {"hour": hour, "reference": bundle.reference is not None, "sources": {}}
    with predictions_db(settings) as engine:
        require_current(engine)
        for source in SOURCES:
            metrics = hour_metrics(engine, source, start, bundle.manifest, bundle.reference, settings.drift_threshold)
            written = write_hour(engine, metrics, run_id)
            summary["sources"][source] = {"logged": metrics.logged, "metrics": written, "drifted": metrics.drifted}
            if metrics.drifted:
                log.warning(
                    "%s traffic of %s drifted from the model's reference on %s (threshold %g); see traffic_metrics",
                    source,
                    hour,
                    ", ".join(metrics.drifted),
                    settings.drift_threshold,
                )
    log.info(
        "traffic of %s: %s",
        hour,
        "; ".join(f"{s} {v['logged']} predictions, {v['metrics']} metrics" for s, v in summary["sources"].items()),
    )
    return summary


def drift_extra(summary: dict[str, Any], dag_id: str) -> dict[str, Any] | None:
    """The drift Asset event's extra when a source's hour drifted (None: no event)."""
    drifted = {source: v["drifted"] for source, v in summary["sources"].items() if v["drifted"]}
    if not drifted:
        return None
    return {"dag_id": dag_id, "partition": summary["hour"], "sources": drifted}


def traffic_dag(*, dag_id: str, doc_md: str | None, start_date: datetime | None = None):
    """Build the hourly traffic monitoring DAG; a run covers the hour starting at its logical date."""
    drifted_alias = drift_alias(dag_id)
    deployed = deployed_settings()

    @dag(
        dag_id=dag_id,
        description="Drift and data-quality metrics of each hour of logged online and stream traffic.",
        schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
        start_date=start_date or datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=4,
        default_args=DEFAULT_ARGS,
        tags=["scoring", "monitoring", "hourly"],
        doc_md=doc_md,
        params={
            "hour": Param(
                None,
                type=["null", "string"],
                pattern=key_pattern(hourly=True),
                title="Hour",
                description="Monitor this hour instead of the run's own: 2026-01-01T03 (UTC). Empty: the hour "
                "starting at the run's logical date.",
            ),
            "drift_threshold": drift_threshold_param(deployed),
        },
    )
    def monitor():
        @task(outlets=[drifted_alias], show_return_value_in_logs=False, doc_md=TASK_DOC)
        def monitor_traffic() -> dict:
            with task_errors():
                return run_monitoring(get_current_context(), dag_id)

        monitor_traffic()

    return monitor()
