"""The reference profile: bounded, faithful to its reference, and a stable, versioned JSON dict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scoring.errors import ModelLoadError
from scoring.monitoring.drift import OTHER
from scoring.monitoring.profile import PROFILE_VERSION, TOP_CATEGORIES, NumberProfile, ReferenceProfile, TextProfile
from tests.unit.monitoring.rides import KINDS, OUTPUT, predict_minutes, ride_inputs


@pytest.fixture(scope="module")
def reference():
    return ride_inputs(30_000, seed=1)


@pytest.fixture(scope="module")
def profile(reference):
    return ReferenceProfile.build(reference, predict_minutes(reference), KINDS, OUTPUT)


def test_numbers_keep_exact_moments_and_quantiles_and_a_bounded_histogram(profile, reference):
    distance = profile.columns["trip_distance"]
    assert isinstance(distance, NumberProfile)
    values = reference["trip_distance"].to_numpy()
    assert distance.mean == pytest.approx(values.mean())
    assert distance.std == pytest.approx(values.std())
    assert distance.quantiles["p50"] == pytest.approx(np.quantile(values, 0.5))
    assert sum(distance.counts) == len(values) == distance.count
    assert len(distance.edges) <= 25


def test_text_keeps_its_top_categories_and_the_rest_as_other(profile, reference):
    zones = profile.columns["PULocationID"]
    assert isinstance(zones, TextProfile)
    # Given 265 zones, the most frequent 50 are kept by name (as text, "1" being the most popular)
    assert len(zones.categories) == TOP_CATEGORIES
    assert zones.categories[0] == str(reference["PULocationID"].value_counts().index[0])
    assert sum(zones.counts.values()) == len(reference)
    assert zones.counts[OTHER] == len(reference) - sum(zones.counts[c] for c in zones.categories)


def test_the_prediction_is_profiled_under_the_output_name(profile, reference):
    assert list(profile.columns) == [*KINDS, OUTPUT]
    assert profile.columns[OUTPUT].mean == pytest.approx(predict_minutes(reference).mean())


def test_json_round_trip_is_lossless_and_stable(profile):
    # When the profile goes through JSON text and back
    text = json.dumps(profile.to_json())
    again = ReferenceProfile.from_json(json.loads(text))
    # Then it is the same profile, and writes the same text (the bundle's sha256 covers it)
    assert again == profile
    assert json.dumps(again.to_json()) == text
    assert list(json.loads(text)) == ["version", "rows", "output", "columns"]
    assert json.loads(text)["version"] == PROFILE_VERSION


def test_json_has_no_nan_for_an_all_missing_column():
    import pandas as pd

    inputs = pd.DataFrame({"tip": pd.Series([np.nan, np.nan])})
    profile = ReferenceProfile.build(inputs, np.array([1.0, 2.0]), {"tip": "number"}, "y")
    text = json.dumps(profile.to_json(), allow_nan=False)
    assert ReferenceProfile.from_json(json.loads(text)).columns["tip"].missing == 2


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"version": 99, "rows": 1, "output": "y", "columns": {}}, "version 99"),
        ({"version": PROFILE_VERSION, "rows": 1, "output": "y"}, "malformed"),
        ({"version": PROFILE_VERSION, "rows": 1, "output": "y", "columns": {"x": {"kind": "image"}}}, "malformed"),
        ([1, 2], "version None"),
    ],
)
def test_a_bad_profile_is_one_clear_error(raw, says):
    with pytest.raises(ModelLoadError, match=says) as caught:
        ReferenceProfile.from_json(raw)
    assert "\n" not in str(caught.value)


def test_an_unknown_kind_is_refused(reference):
    with pytest.raises(ValueError, match="kind 'date'"):
        ReferenceProfile.build(reference, predict_minutes(reference), {"trip_distance": "date"}, OUTPUT)
