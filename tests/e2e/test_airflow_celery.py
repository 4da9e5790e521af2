"""Airflow on CeleryExecutor: the mapped score_shard tasks run on a real `airflow celery worker`, brokered by Redis.

The scheduler has no LocalExecutor here; the worker serves a queue nobody else serves and is the
only process whose task processes report the hostname the fixture chose for it, so a task
instance carrying that hostname ran under that worker and nowhere else.
"""

from __future__ import annotations

import pytest

from scoring.batch.partitions import PartitionKey
from scoring.demo.synthetic import write_partition
from tests.conftest import make_rides
from tests.e2e.airflow_stack import DAG_ID, AirflowStack, partition_counts, scoring_run_ids

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.postgres]

HOUR_05 = "2026-01-01T05"


def test_triggered_run_scores_its_shards_on_the_celery_worker(celery_stack: AirflowStack, scoring_paths):
    api, worker = celery_stack.api, celery_stack.worker
    # Given 800 rides of hour 05 in four files
    rides = make_rides(800, seed=5)
    write_partition(str(scoring_paths.input_root), "rides", PartitionKey.parse(HOUR_05), rides, files=4)
    # When a user triggers the DAG naming that hour in the form's Partition field, with Shard rows 200 so that
    # each file is a shard of its own (left at the default, the four small files would be grouped into one)
    run = api.trigger(DAG_ID, logical_date="2026-01-01T12:07:00Z", conf={"partition": HOUR_05, "shard_rows": 200})
    run = api.wait_for_run(DAG_ID, run["dag_run_id"], timeout=240)
    # Then every task, each of the four mapped shards included, ran under the Celery worker
    tis = api.task_instances(DAG_ID, run["dag_run_id"])
    shards = sorted(ti["map_index"] for ti in tis if ti["task_id"] == "score_shard")
    assert shards == [0, 1, 2, 3]
    assert {(ti["hostname"], ti["queue"], ti["state"]) for ti in tis} == {(worker.hostname, worker.queue, "success")}
    # ... as the worker's own log tells, shard by shard, on a scheduler that only has Celery to run them
    for index in shards:
        workload = f"run_id={run['dag_run_id']}/task_id=score_shard/map_index={index}/"
        assert celery_stack.grep_log("celery-worker", workload), workload
    # ... which logged no error (publish reads the shards' results in one request, no lookup past the end)
    assert celery_stack.grep_log("celery-worker", "[error") == []
    scheduler_log = celery_stack.log_path("scheduler").read_text()
    assert "executor=CeleryExecutor" in scheduler_log and "LocalExecutor" not in scheduler_log
    # ... and the named hour, not the run's interval, landed once
    assert partition_counts(scoring_paths.database_url, DAG_ID) == {HOUR_05: (800, 800)}
    assert scoring_run_ids(scoring_paths.database_url, DAG_ID, HOUR_05)[0].startswith(run["dag_run_id"])
