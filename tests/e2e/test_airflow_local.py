"""Airflow for real on LocalExecutor: a user triggers, clears and backfills score_rides_hourly through REST API v2.

The API server, scheduler and dag-processor run as processes on a PostgreSQL metadata database;
every step goes through the public API, as the UI's buttons do, and the proof is in the
predictions table: each hour is there exactly once, however many runs scored it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from scoring.batch.partitions import PartitionKey
from scoring.demo.synthetic import write_partition
from tests.conftest import make_rides
from tests.e2e.airflow_stack import (
    DAG_ID,
    AirflowStack,
    ScoringPaths,
    partition_counts,
    scoring_run_ids,
)

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.postgres]

RUN_TIMEOUT = 240
HOUR_03, HOUR_04 = "2026-01-01T03", "2026-01-01T04"
ROWS = {HOUR_03: 900, HOUR_04: 600}


def write_hour(paths: ScoringPaths, partition: str, files: int) -> None:
    """The hour's rides as several part files, so the run maps more than one score_shard."""
    rides = make_rides(ROWS[partition], seed=int(partition[-2:]))
    write_partition(str(paths.input_root), "rides", PartitionKey.parse(partition), rides, files=files)


@pytest.fixture(scope="module")
def first_run(local_stack: AirflowStack, scoring_paths: ScoringPaths) -> dict:
    """Hour 03 scored by a click on Trigger with logical date 03:00: the slot of the scheduled run for hour 03."""
    write_hour(scoring_paths, HOUR_03, files=3)
    # Shard rows 300: one shard per file of 300 rides (the default would group the three small files into one)
    run = local_stack.api.trigger(DAG_ID, logical_date="2026-01-01T03:00:00Z", conf={"shard_rows": 300})
    return local_stack.api.wait_for_run(DAG_ID, run["dag_run_id"], timeout=RUN_TIMEOUT)


def test_triggered_run_publishes_the_hour_that_just_closed_once(local_stack, scoring_paths, first_run):
    # Given 900 rides of hour 03 in three files, When a user triggers the DAG at 03:00 (first_run)
    # Then the hour starting at the run's logical date is stored once, whole
    assert partition_counts(scoring_paths.database_url, DAG_ID)[HOUR_03] == (900, 900)
    # ... scored by one mapped score_shard per shard of 300 rows, i.e. per file
    tis = local_stack.api.task_instances(DAG_ID, first_run["dag_run_id"])
    shards = sorted(ti["map_index"] for ti in tis if ti["task_id"] == "score_shard" and ti["state"] == "success")
    assert shards == [0, 1, 2]
    assert scoring_run_ids(scoring_paths.database_url, DAG_ID, HOUR_03)[0].startswith(first_run["dag_run_id"])
    # ... and no task of the run logged an error on the way
    assert local_stack.task_log_errors(DAG_ID, first_run["dag_run_id"]) == []
    # ... and publish's log gives the summary once, without Alembic's "Context impl" or a returned dict
    events = local_stack.task_log_events(DAG_ID, first_run["dag_run_id"], "publish")
    assert len([e for e in events if e.startswith(f"{DAG_ID} {HOUR_03}: 900 scored")]) == 1, events
    assert not [e for e in events if "Context impl" in e or "scored_rows" in e], events


def test_clearing_the_finished_run_republishes_the_hour_without_duplicates(local_stack, scoring_paths, first_run):
    # Given hour 03 already published by the first run
    run_id = first_run["dag_run_id"]
    published_before = scoring_run_ids(scoring_paths.database_url, DAG_ID, HOUR_03)
    finished_before = local_stack.api.run(DAG_ID, run_id)["end_date"]
    # When the user clears the finished run, so all its tasks run again
    local_stack.api.clear(DAG_ID, run_id)
    local_stack.api.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT, after=finished_before)
    # Then the hour still has each ride exactly once, published by a new scoring run of the same DAG run
    assert partition_counts(scoring_paths.database_url, DAG_ID)[HOUR_03] == (900, 900)
    published_after = scoring_run_ids(scoring_paths.database_url, DAG_ID, HOUR_03)
    assert published_after[: len(published_before)] == published_before
    (new_run,) = published_after[len(published_before) :]
    assert new_run.startswith(run_id) and new_run not in published_before


def test_backfill_over_a_scored_hour_and_a_new_one_keeps_one_copy_of_each(local_stack, scoring_paths, first_run):
    # Given hour 03 already published, and hour 04 newly landed in two files
    write_hour(scoring_paths, HOUR_04, files=2)
    published_03 = scoring_run_ids(scoring_paths.database_url, DAG_ID, HOUR_03)
    # When the user backfills the logical dates 03:00 to 04:00: the slots of hours 03 and 04
    asked_at = datetime.now(timezone.utc)
    backfill = local_stack.api.backfill(DAG_ID, from_date="2026-01-01T03:00:00Z", to_date="2026-01-01T04:00:00Z")
    local_stack.api.wait_for_backfill(backfill["id"], timeout=RUN_TIMEOUT)
    waited_until = datetime.now(timezone.utc)
    # Then the 03:00 slot (the user's run, reprocessed) and a new backfill run at 04:00 succeeded ...
    by_slot = {r["logical_date"]: r for r in local_stack.api.runs(DAG_ID)}
    for slot in ("2026-01-01T03:00:00Z", "2026-01-01T04:00:00Z"):
        run = by_slot[slot]
        assert run["state"] == "success", local_stack.api.failure_summary(DAG_ID, run["dag_run_id"])
    assert by_slot["2026-01-01T04:00:00Z"]["run_type"] == "backfill"
    # ... and each backfill run's history is a real one: it ran while the user waited (not on its 2026 logical
    # date, and not for days), over its own hour, by the user who asked for it (not `dag_test`)
    # (the runs it created: the reprocessed 03:00 run is the user's manual one, whose interval Airflow set)
    backfill_runs = [r for r in local_stack.api.runs(DAG_ID) if r["dag_run_id"].startswith("backfill__")]
    assert [r["logical_date"] for r in backfill_runs] == ["2026-01-01T04:00:00Z"]
    for run in backfill_runs:
        assert_realistic_history(run, asked_at, waited_until)
    # ... hour 03 still holds its rows once (republished), and hour 04 is there once
    counts = partition_counts(scoring_paths.database_url, DAG_ID)
    assert {key: counts[key] for key in ROWS} == {HOUR_03: (900, 900), HOUR_04: (600, 600)}
    assert len(scoring_run_ids(scoring_paths.database_url, DAG_ID, HOUR_03)) == len(published_03) + 1
    assert len(scoring_run_ids(scoring_paths.database_url, DAG_ID, HOUR_04)) == 1


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_realistic_history(run: dict, asked_at: datetime, waited_until: datetime) -> None:
    """What the run lists show of a run: when it ran (between the request and the end of the wait), which hour, who."""
    started, ended, logical = _utc(run["start_date"]), _utc(run["end_date"]), _utc(run["logical_date"])
    assert asked_at <= started <= ended <= waited_until, run
    assert (_utc(run["data_interval_start"]), _utc(run["data_interval_end"])) == (logical, logical + timedelta(hours=1))
    assert run["triggering_user_name"] and run["triggering_user_name"] != "dag_test", run


def test_a_backfill_carrying_a_partition_fails_each_run_at_once_in_one_line(local_stack, first_run):
    # Given a user who fills in Partition on the Backfill form, which would score that one hour for every date
    backfill = local_stack.api.backfill(
        DAG_ID, from_date="2026-01-01T05:00:00Z", to_date="2026-01-01T05:00:00Z", conf={"partition": HOUR_03}
    )
    local_stack.api.wait_for_backfill(backfill["id"], timeout=RUN_TIMEOUT)
    # Then its run failed at the first task, on its first try (no retry can fix it)
    (run,) = [r for r in local_stack.api.runs(DAG_ID) if r["logical_date"] == "2026-01-01T05:00:00Z"]
    assert run["state"] == "failed" and run["run_type"] == "backfill"
    tis = {ti["task_id"]: ti for ti in local_stack.api.task_instances(DAG_ID, run["dag_run_id"])}
    assert tis["choose_partition"]["state"] == "failed" and tis["choose_partition"]["try_number"] == 1
    assert tis["wait_for_partition"]["state"] == "upstream_failed"
    # And its log says why in one line: the failure's message, with nothing chained under it
    reason = "InvalidPartitionKey: a backfill scores each run's own hour/day; leave Partition empty"
    errors = [
        error
        for line in local_stack.task_log_errors(DAG_ID, run["dag_run_id"])
        for error in json.loads(line).get("error_detail") or []
    ]
    assert [(e["exc_type"], e["exc_value"]) for e in errors] == [("AirflowFailException", reason)], errors
    assert not errors[0]["exceptions"]
