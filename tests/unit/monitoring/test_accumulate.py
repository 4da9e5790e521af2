"""Per-partition metrics: the drift proof, the clean-hours false-positive rate, shards, missing and rejected rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scoring.monitoring.accumulate import PARTITION, PartitionAccumulator
from scoring.monitoring.profile import ReferenceProfile
from tests.unit.monitoring.rides import KINDS, OUTPUT, predict_minutes, ride_inputs

CHUNK = 3_000


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = ride_inputs(50_000, seed=1)
    return ReferenceProfile.build(reference, predict_minutes(reference), KINDS, OUTPUT)


def accumulate(profile: ReferenceProfile | None, inputs: pd.DataFrame, rejected: int = 0) -> PartitionAccumulator:
    """Feed a partition in chunks, as the engine reads it."""
    accumulator = PartitionAccumulator(profile, KINDS, OUTPUT)
    for start in range(0, len(inputs), CHUNK):
        chunk = inputs.iloc[start : start + CHUNK]
        accumulator.add(chunk, predict_minutes(chunk), rejected if start == 0 else 0)
    return accumulator


def by_key(accumulator: PartitionAccumulator) -> dict[tuple[str, str], object]:
    return {(row.feature, row.metric): row for row in accumulator.metrics()}


def test_a_partition_with_tripled_trip_distance_is_flagged_on_it_and_on_the_prediction(profile):
    # Given an hour of rides whose distances were tripled
    inputs = ride_inputs(10_000, seed=500)
    inputs["trip_distance"] *= 3
    # When its metrics are computed against the reference
    accumulator = accumulate(profile, inputs)
    rows = by_key(accumulator)
    # Then trip_distance and the prediction drift, the zones do not, and the partition counts one drifted input
    assert rows[("trip_distance", "wasserstein_normed")].drifted
    assert rows[(OUTPUT, "wasserstein_normed")].drifted
    assert not rows[("PULocationID", "jensenshannon")].drifted
    assert not rows[("DOLocationID", "jensenshannon")].drifted
    assert rows[(PARTITION, "drifted_features")].value == 1.0
    assert sorted(accumulator.drifted_features()) == sorted(["trip_distance", OUTPUT])
    assert rows[("trip_distance", "wasserstein_normed")].threshold == 0.1


def test_a_partition_with_other_zones_is_flagged_on_the_zone(profile):
    inputs = ride_inputs(10_000, seed=501)
    inputs["PULocationID"] = 266 - inputs["PULocationID"]  # the rare zones become the popular ones
    rows = by_key(accumulate(profile, inputs))
    assert rows[("PULocationID", "jensenshannon")].drifted
    assert not rows[("trip_distance", "wasserstein_normed")].drifted


def test_24_clean_hourly_partitions_are_never_flagged(profile):
    # Given 24 hours of ~10,000 rides from the reference's own distribution
    flagged, largest = 0, 0.0
    for hour in range(24):
        rows = accumulate(profile, ride_inputs(10_000, seed=1_000 + hour)).metrics()
        flagged += any(row.drifted for row in rows)
        largest = max(largest, *(row.value for row in rows if row.threshold is not None))
    # Then the false-positive rate is 0/24, with a wide margin under the 0.1 threshold
    assert flagged == 0
    assert largest < 0.06


def test_statistics_are_close_to_the_exact_ones(profile):
    inputs = ride_inputs(20_000, seed=7)
    rows = by_key(accumulate(profile, inputs))
    distance = inputs["trip_distance"].to_numpy()
    assert rows[("trip_distance", "mean")].value == pytest.approx(distance.mean())
    for key, q in [("p05", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95)]:
        assert rows[("trip_distance", key)].value == pytest.approx(np.quantile(distance, q), rel=0.03), key


def test_without_a_profile_statistics_are_reported_and_nothing_is_flagged():
    inputs = ride_inputs(10_000, seed=500)
    inputs["trip_distance"] *= 3
    rows = accumulate(None, inputs).metrics()
    keys = {(row.feature, row.metric) for row in rows}
    assert (PARTITION, "reference_present") in keys
    assert next(r.value for r in rows if r.metric == "reference_present") == 0.0
    assert ("trip_distance", "p50") in keys and (OUTPUT, "mean") in keys
    assert not any(row.drifted or row.threshold is not None for row in rows)
    assert (PARTITION, "drifted_features") not in keys


def test_counts_reconcile_and_shares_are_of_the_right_totals(profile):
    # Given 1,000 valid rows, 10 of them without a distance, and 25 rejected rows
    inputs = ride_inputs(1_000, seed=3)
    inputs["trip_distance"] = inputs["trip_distance"].astype("Float64")
    inputs.loc[:9, "trip_distance"] = pd.NA
    rows = by_key(accumulate(profile, inputs, rejected=25))
    # Then input rows are scored + rejected, and each share has its own denominator
    assert rows[(PARTITION, "input_rows")].value == 1_025
    assert rows[(PARTITION, "rejected_rows")].value == 25
    assert rows[(PARTITION, "share_rejected")].value == pytest.approx(25 / 1_025)
    assert rows[("trip_distance", "share_missing")].value == pytest.approx(10 / 1_000)
    assert rows[("PULocationID", "share_missing")].value == 0.0


@pytest.mark.parametrize("with_profile", [True, False])
def test_shards_merged_give_the_metrics_of_one_pass(profile, with_profile):
    # Given one partition split across three shards, the first one too small to fix its own edges
    reference = profile if with_profile else None
    inputs = ride_inputs(30_000, seed=9)
    whole = accumulate(reference, inputs, rejected=6)
    shards = [accumulate(reference, part, rejected=2) for part in (inputs[:500], inputs[500:20_000], inputs[20_000:])]
    # When the shards' accumulators merge
    merged = shards[0]
    for shard in shards[1:]:
        merged.merge(shard)
    # Then counts and drift agree with one pass, and every statistic is close
    one, many = by_key(whole), by_key(merged)
    assert one.keys() == many.keys()
    for key, row in one.items():
        assert many[key].value == pytest.approx(row.value, rel=0.02, abs=1e-3), key
        assert many[key].drifted == row.drifted


@pytest.mark.parametrize("with_profile", [True, False])
def test_a_shard_state_through_json_merges_as_the_shard_itself(profile, with_profile):
    # Given two shards, one of them too small to have fixed its own edges (values still pending)
    reference = profile if with_profile else None
    inputs = ride_inputs(12_000, seed=4)
    first, second = accumulate(reference, inputs[:300], rejected=1), accumulate(reference, inputs[300:], rejected=3)
    # When each travels as JSON (as from a shard's process to the publish's) and the copies merge
    copies = [PartitionAccumulator.from_json(json.loads(json.dumps(a.to_json()))) for a in (first, second)]
    copies[0].merge(copies[1])
    first.merge(second)
    # Then the metrics are exactly those of the accumulators merged in process
    assert copies[0].metrics() == first.metrics()


def test_a_state_read_back_judges_drift_with_the_thresholds_given(profile):
    # Given a partition with tripled distances, its state read back with a threshold above every statistic
    inputs = ride_inputs(5_000, seed=2).assign(trip_distance=lambda f: f.trip_distance * 3)
    state = accumulate(profile, inputs, rejected=0).to_json()
    lenient = PartitionAccumulator.from_json(state, number_threshold=100.0, text_threshold=100.0)
    # Then nothing is flagged, and the same state at the default thresholds flags the distance
    assert not [row for row in lenient.metrics() if row.drifted]
    assert "trip_distance" in PartitionAccumulator.from_json(state).drifted_features()


def test_an_empty_partition_reports_only_its_counts(profile):
    rows = accumulate(profile, ride_inputs(10, seed=1).iloc[:0], rejected=0).metrics()
    assert {row.feature for row in rows} == {PARTITION}
    assert by_key_rows(rows)["input_rows"] == 0.0


def by_key_rows(rows) -> dict[str, float]:
    return {row.metric: row.value for row in rows}


def test_a_text_kind_output_drifts_by_jensenshannon():
    # Given a classifier whose prediction (a class index) is monitored as text
    kinds = {"x": "number", "label": "text"}
    reference = pd.DataFrame({"x": np.arange(1_000.0)})
    labels = np.where(reference["x"] > 500, 1.0, 0.0)
    profile = ReferenceProfile.build(reference, labels, kinds, "label")
    accumulator = PartitionAccumulator(profile, kinds, "label")
    accumulator.add(reference, np.ones(1_000), 0)
    rows = {(r.feature, r.metric): r for r in accumulator.metrics()}
    assert rows[("label", "jensenshannon")].drifted
    assert not rows[("x", "wasserstein_normed")].drifted
