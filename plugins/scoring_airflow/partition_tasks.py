"""The first steps of a scoring run: the form's options, the partition the run scores, and the wait for it.

Plain functions of Airflow context values, so the logic is testable without a scheduler; heavy imports
happen at task run time, never while a DAG file is parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoring.settings import Settings

log = logging.getLogger(__name__)

# A backfill's DAG runs carry this run type (DagRunType.BACKFILL_JOB).
BACKFILL = "backfill"


@dataclass(frozen=True)
class RunOptions:
    """What a run is configured with: the worker's Settings with the form's overrides, and its id options."""

    settings: Settings
    id_field: str | None = None
    require_id: bool = False


def run_options(params: Mapping[str, Any]) -> RunOptions:
    """The one path from a run's params to its configuration; an empty field keeps the environment's value.

    A malformed SCORING_* value or form value is a one-line ConfigError (the value not echoed for a name),
    so the run's first task, which calls this, fails at once before any wait. The partition param goes
    to resolve_partition.
    """
    from scoring.batch.options import validate_dataset, validate_id_field
    from scoring.settings import Settings, checked_drift_threshold

    if params.get("dataset"):
        validate_dataset(params["dataset"])
    if params.get("id_field"):
        validate_id_field(params["id_field"])
    # Checked under the form's own name (a bad value is the user's, not the environment's); 0 is refused, not
    # taken for an empty field.
    drift_threshold = checked_drift_threshold(_given(params, "drift_threshold"), "the form's drift_threshold")
    settings = Settings.from_env().with_overrides(
        model_uri=params.get("model_uri") or None,
        reject_threshold=params.get("reject_threshold"),
        dataset=params.get("dataset") or None,
        shard_rows=params.get("shard_rows") or None,
        drift_threshold=drift_threshold,
    )
    return RunOptions(settings, id_field=params.get("id_field") or None, require_id=bool(params.get("require_id")))


def _given(params: Mapping[str, Any], name: str) -> Any:
    """A form field's value, None when it was left empty."""
    value = params.get(name)
    return None if value is None or value == "" else value


def settings_for(params: Mapping[str, Any]) -> Settings:
    """The worker's Settings with the form's overrides (run_options without the id options)."""
    return run_options(params).settings


def choose_partition(context: Mapping[str, Any], *, hourly: bool) -> str:
    """The first task: check the run's settings and form values, then name the partition it scores."""
    params, dag_run = context["params"], context["dag_run"]
    run_options(params)
    return resolve_partition(
        params.get("partition"),
        context.get("logical_date"),
        dag_run.run_after,
        hourly=hourly,
        run_type=dag_run.run_type,
    )


def poke(context: Mapping[str, Any], partition: str, *, wait: timedelta) -> bool:
    """One poke of the sensor: is the partition there yet, counting the wait from the first poke."""
    now = datetime.now(timezone.utc)
    # In reschedule mode each poke is a new try of the task: the wait counts from the first poke.
    first_poke = context["ti"].get_first_reschedule_date(context) or now
    return partition_is_ready(settings_for(context["params"]), partition, waited=now - first_poke, wait=wait)


def resolve_partition(
    requested: str | None,
    logical_date: datetime | None,
    run_after: datetime,
    *,
    hourly: bool,
    run_type: str | None = None,
) -> str:
    """The partition a run scores: the one named by the trigger, else the period starting at its logical date.

    A backfill's form carries the same params into every run it makes, so a named partition there would
    score that one partition for every date: refused. A key of the other cadence is refused too: a day
    in the hourly job would store the day's rows a second time, under a key beside its hours'.
    """
    from scoring.errors import InvalidPartitionKey
    from scoring.partition_keys import PartitionKey

    if not requested:
        return str(PartitionKey.for_run(logical_date, run_after, hourly=hourly))
    if run_type == BACKFILL:
        raise InvalidPartitionKey("a backfill scores each run's own hour/day; leave Partition empty")
    key = PartitionKey.parse(requested)
    if hourly and key.hour is None:
        raise InvalidPartitionKey(f"partition {key}: the hourly job scores hours: give YYYY-MM-DDTHH, e.g. {key}T00")
    if not hourly and key.hour is not None:
        raise InvalidPartitionKey(f"partition {key}: the daily job scores days: give YYYY-MM-DD, e.g. {key.day}")
    return str(key)


def partition_is_ready(settings: Settings, partition: str, *, waited: timedelta, wait: timedelta) -> bool:
    """True once the partition has a data file; False while waiting (saying where it looks); past `wait`, fail.

    The failure is AirflowSensorTimeout (no retry) with one line naming the partition, the wait and the
    place, instead of Airflow's own "Sensor has timed out" that names neither.
    """
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from scoring.batch.reader import list_partition_files, partition_uri
    from scoring.errors import PartitionNotFound
    from scoring.partition_keys import PartitionKey

    key = PartitionKey.parse(partition)
    try:
        files = list_partition_files(settings.input_root, settings.dataset, key)
    except PartitionNotFound:
        files = []
    where = partition_uri(settings.input_root, settings.dataset, key)
    if files:
        log.info("partition %s is ready: %d file(s) under %s", partition, len(files), where)
        return True
    hours = describe_span(wait)
    if waited >= wait:
        raise AirflowSensorTimeout(
            f"no data arrived for partition {partition} within {hours}: no .parquet or .csv file under {where}; "
            "clear this task to look again once the data is there"
        )
    log.info(
        "waiting for partition %s: no .parquet or .csv file under %s yet (waited %s of up to %s)",
        partition,
        where,
        describe_span(waited),
        hours,
    )
    return False


def describe_span(span: timedelta) -> str:
    """A wait as a person says it: "5 minutes", "1.5 hours", "24 hours"."""
    minutes = span.total_seconds() / 60
    return f"{minutes / 60:.3g} hours" if minutes >= 60 else f"{minutes:.3g} minutes"
