"""The hourly traffic monitoring DAG: for each closed hour, the same metrics as a batch partition, computed from
the predictions the web service and the stream logged (prediction_log), per source, into traffic_metrics.

Drift never fails a run: it is logged once as a warning naming the source, hour and features, and updates
the Asset `scoring://drift/<dag_id>` (through an alias, so a clean hour emits no event) that a retraining
DAG can be scheduled on.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import Asset, AssetAlias, CronDataIntervalTimetable, Param, dag, get_current_context, task

from scoring.settings import Settings, checked_drift_threshold
from scoring_airflow.errors import task_errors
from scoring_airflow.params import deployed_settings, drift_threshold_param

log = logging.getLogger(__name__)

HOUR_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}$"
DEFAULT_ARGS = {"owner": "ml-platform", "retries": 3, "retry_delay": timedelta(seconds=30)}


def monitor_hour(settings: Settings, hour: str, run_id: str, threshold: float | None) -> dict[str, Any]:
    """Compute and write each source's metrics for `hour`; a summary with the drifted features per source."""
    from scoring.model.bundle import load_bundle
    from scoring.model.trust import BundleTrust
    from scoring.monitoring.tables import SOURCES
    from scoring.monitoring.traffic import hour_metrics, parse_hour, write_hour
    from scoring_airflow.run_tasks import predictions_db, require_current

    bundle = load_bundle(settings.model_uri, BundleTrust.from_settings(settings))
    start = parse_hour(hour)
    summary: dict[str, Any] = {"hour": hour, "reference": bundle.reference is not None, "sources": {}}
    with predictions_db(settings) as engine:
        require_current(engine)
        for source in SOURCES:
            metrics = hour_metrics(engine, source, start, bundle.manifest, bundle.reference, threshold)
            written = write_hour(engine, metrics, run_id)
            summary["sources"][source] = {"logged": metrics.logged, "metrics": written, "drifted": metrics.drifted}
            if metrics.drifted:
                log.warning(
                    "%s traffic of %s drifted from the model's reference on %s (threshold %g); see traffic_metrics",
                    source,
                    hour,
                    ", ".join(metrics.drifted),
                    threshold if threshold is not None else settings.drift_threshold,
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
    drifted_asset = Asset(name=f"{dag_id}.drift", uri=f"scoring://drift/{dag_id}")
    drifted_alias = AssetAlias(name=f"{dag_id}.drift_alias")
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
                pattern=HOUR_PATTERN,
                title="Hour",
                description="Monitor this hour instead of the run's own: 2026-01-01T03 (UTC). Empty: the hour "
                "starting at the run's logical date.",
            ),
            "drift_threshold": drift_threshold_param(deployed),
        },
    )
    def monitor():
        @task(outlets=[drifted_alias], show_return_value_in_logs=False)
        def monitor_traffic() -> dict:
            """Reads the hour's prediction_log rows per source, writes traffic_metrics, emits drift."""
            context = get_current_context()
            params = context["params"]
            logical = context.get("logical_date") or context["dag_run"].run_after
            hour = params.get("hour") or logical.astimezone(timezone.utc).strftime("%Y-%m-%dT%H")
            with task_errors():
                settings = Settings.from_env()
                # The form's param passes through the settings' own rule (a NaN would switch drift off).
                threshold = checked_drift_threshold(params.get("drift_threshold"), "the drift_threshold param")
                summary = monitor_hour(settings, hour, context["run_id"], threshold)
            extra = drift_extra(summary, dag_id)
            if extra is not None:
                context["outlet_events"][drifted_alias].add(drifted_asset, extra=extra)
            return summary

        monitor_traffic()

    return monitor()
