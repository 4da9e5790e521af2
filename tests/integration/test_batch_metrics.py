"""Monitoring metrics of a batch run: accumulated by the shards, merged and written by the publish."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

import scoring.batch.monitor as monitor
from scoring.batch.monitor import accumulator_from_state, accumulator_state
from scoring.monitoring.accumulate import PartitionAccumulator
from scoring.monitoring.profile import ReferenceProfile, input_kinds
from tests.conftest import make_rides
from tests.integration.batch_helpers import HOUR, JOB, run, runs, write_rides

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request):
    return request.getfixturevalue("pg_engine" if request.param == "postgresql" else "sqlite_engine")


@pytest.fixture
def with_reference(predictor, monkeypatch):
    """The demo bundle with a reference profile made from clean rides."""
    rides = make_rides(20_000, seed=3)
    valid = predictor.schema.validate_frame(rides).valid
    kinds = input_kinds(predictor.bundle.manifest)
    profile = ReferenceProfile.build(valid, predictor.predict(valid), kinds, predictor.bundle.manifest.output)
    monkeypatch.setattr(monitor, "reference_of", lambda bundle: profile)
    return profile


def metrics(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        query = sa.text("SELECT * FROM partition_metrics WHERE job = :job AND partition_key = :key")
        table = pd.DataFrame(conn.execute(query, {"job": JOB, "key": str(HOUR)}).mappings().all())
    return table.astype({"drifted": bool})


def test_the_demo_inputs_have_text_and_number_kinds(predictor):
    # Given the demo bundle, whose locations feed a concat feature
    # Then they are monitored as text and the distance as a number
    assert input_kinds(predictor.bundle.manifest) == {
        "PULocationID": "text",
        "DOLocationID": "text",
        "trip_distance": "number",
    }


def test_a_tripled_distance_is_flagged_on_the_distance_and_the_prediction(engine, predictor, tmp_path, with_reference):
    # Given a partition whose trip distances were tripled, in four shards
    rides = make_rides(4_000, seed=8)
    rides["trip_distance"] *= 3
    write_rides(str(tmp_path / "in"), rides, files=4)
    # When it is scored
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"), shard_rows=1_000)
    # Then the run publishes and names the drifted features
    assert summary.status == "published"
    assert {"trip_distance", predictor.bundle.manifest.output} <= set(summary.drifted)
    assert not {"PULocationID", "DOLocationID"} & set(summary.drifted)
    # And partition_metrics flags them with the threshold they were compared with
    table = metrics(engine)
    flagged = table[table["drifted"]]
    assert set(flagged["feature"]) == set(summary.drifted)
    assert (flagged["threshold"] == 0.1).all()


def test_a_clean_partition_is_not_flagged_and_a_threshold_param_overrides(engine, predictor, tmp_path, with_reference):
    # Given a clean partition and a tripled one
    write_rides(str(tmp_path / "in"), make_rides(3_000, seed=9), files=3)
    # When the clean one is scored
    clean = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    # Then nothing drifts
    assert clean.drifted == []
    assert not metrics(engine)["drifted"].any()
    # And a tripled partition under a threshold of 100 is not flagged either
    tripled = make_rides(3_000, seed=9)
    tripled["trip_distance"] *= 3
    write_rides(str(tmp_path / "in"), tripled, files=3)
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"), drift_threshold=100.0)
    assert summary.drifted == []
    assert set(metrics(engine).dropna(subset=["threshold"])["threshold"]) == {100.0}


def test_metrics_reconcile_with_scoring_runs_and_a_rerun_replaces_them(engine, predictor, tmp_path, monkeypatch):
    # Given a bundle without a reference profile (the demo's carries one), and a partition with rejected
    # rows, scored in three shards, twice
    monkeypatch.setattr(monitor, "reference_of", lambda bundle: None)
    rides = make_rides(3_000).astype(object)
    rides.loc[[3, 1500], "trip_distance"] = None
    write_rides(str(tmp_path / "in"), rides, files=3)
    for _ in range(2):
        summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"), shard_rows=1_000)
    # Then the partition's metrics are the last run's only, and their counts are scoring_runs'
    table = metrics(engine)
    assert set(table["run_id"]) == {summary.run_id}
    assert table.duplicated(["feature", "metric"]).sum() == 0
    partition = table[table["feature"] == "*"].set_index("metric")["value"]
    recorded = runs(engine).set_index("run_id").loc[summary.run_id]
    assert partition["input_rows"] == recorded["input_rows"] == 3_000
    assert partition["rejected_rows"] == recorded["rejected_rows"] == 2
    # And without a reference profile nothing is flagged and the table says no reference is present
    assert partition["reference_present"] == 0.0 and not table["drifted"].any()


def test_the_staged_state_round_trips_to_the_same_metrics(predictor, with_reference):
    # Given an accumulator fed two chunks, one small enough to stay in its pending buffer
    rides = make_rides(12_000, seed=5)
    valid = predictor.schema.validate_frame(rides).valid
    kinds = input_kinds(predictor.bundle.manifest)
    output = predictor.bundle.manifest.output
    whole = PartitionAccumulator(with_reference, kinds, output)
    whole.add(valid, predictor.predict(valid), 7)
    small = PartitionAccumulator(with_reference, kinds, output)
    small.add(valid.iloc[:500], predictor.predict(valid.iloc[:500]), 0)
    # When their states go through JSON and come back
    import json

    restored = [accumulator_from_state(json.loads(json.dumps(accumulator_state(a))), {}) for a in (whole, small)]
    # Then the metrics are the same as the originals'
    assert restored[0].metrics() == whole.metrics()
    assert restored[1].metrics() == small.metrics()
