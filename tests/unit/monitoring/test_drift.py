"""The drift statistics on histograms agree with scipy on the raw samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from scoring.monitoring import drift
from scoring.monitoring.histogram import NumberHistogram, TextCounts, quantile_edges


def _histograms(reference: np.ndarray, current: np.ndarray) -> tuple[NumberHistogram, NumberHistogram]:
    edges = quantile_edges(reference)
    ref, cur = NumberHistogram(edges), NumberHistogram(edges)
    ref.add(reference)
    cur.add(current)
    return ref, cur


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("same distribution", lambda x: x),
        ("shifted by half a std", lambda x: x + 0.5 * x.std()),
        ("scaled by 1.3", lambda x: x * 1.3),
        ("tripled", lambda x: x * 3.0),
        ("a tenth of it", lambda x: x / 10.0),
    ],
)
def test_histogram_wasserstein_is_close_to_scipy_on_raw_values(name, change):
    # Given a skewed reference (like trip distances) and a current sample, changed or not
    rng = np.random.default_rng(3)
    reference = rng.lognormal(0.8, 0.7, 50_000)
    current = change(rng.lognormal(0.8, 0.7, 20_000))
    ref, cur = _histograms(reference, current)
    # When the statistic is computed from the two histograms
    approx = drift.wasserstein_normed(ref.positions(), ref.counts, cur.positions(), cur.counts, reference.std())
    # Then it is within 5% (or 0.01) of scipy's exact value on the raw samples
    exact = wasserstein_distance(reference, current) / reference.std()
    assert approx == pytest.approx(exact, rel=0.05, abs=0.01), name


def test_wasserstein_of_a_constant_reference_uses_evidently_floor_on_the_norm():
    # Given a reference that never varies and a current sample one unit away
    ref, cur = _histograms(np.full(100, 5.0), np.full(100, 6.0))
    # Then the distance (1) is divided by 0.001, not by zero
    value = drift.wasserstein_normed(ref.positions(), ref.counts, cur.positions(), cur.counts, 0.0)
    assert value == pytest.approx(1000.0)


def test_wasserstein_without_current_values_is_undefined_and_never_drifts():
    ref, cur = _histograms(np.arange(10.0), np.zeros(0))
    value = drift.wasserstein_normed(ref.positions(), ref.counts, cur.positions(), cur.counts, 1.0)
    assert np.isnan(value)
    assert drift.is_drifted(value, 0.1) is False


@pytest.mark.parametrize(
    ("current_weights", "expected_drift"),
    [([0.5, 0.3, 0.2], False), ([0.2, 0.3, 0.5], True), ([0.45, 0.35, 0.2], False)],
)
def test_jensenshannon_on_counts_equals_scipy_on_frequencies(current_weights, expected_drift):
    # Given three categories in the reference and a current sample with other proportions
    rng = np.random.default_rng(5)
    reference = pd.Series(rng.choice(["a", "b", "c"], 30_000, p=[0.5, 0.3, 0.2]))
    current = pd.Series(rng.choice(["a", "b", "c"], 10_000, p=current_weights))
    ref_counts, cur_counts = TextCounts(), TextCounts(("a", "b", "c"))
    ref_counts.add(reference)
    cur_counts.add(current)
    # When the statistic is computed from the count tables
    value = drift.jensenshannon_distance({**ref_counts.counts, drift.OTHER: 0}, cur_counts.counts)
    # Then it is scipy's on the raw frequencies (base 2), and flags only the reversed proportions
    names = ["a", "b", "c"]
    exact = jensenshannon(
        reference.value_counts(normalize=True)[names], current.value_counts(normalize=True)[names], base=2
    )
    assert value == pytest.approx(exact, abs=1e-9)
    assert drift.is_drifted(value, drift.DEFAULT_TEXT_THRESHOLD) is expected_drift


def test_jensenshannon_counts_unseen_categories_as_other():
    # Given a reference without "z" and a current sample that is all "z"
    value = drift.jensenshannon_distance({"a": 10, drift.OTHER: 0}, {"z": 10})
    # Then the two share no mass: the maximal distance 1
    assert value == pytest.approx(1.0)


def test_drift_needs_the_statistic_above_the_threshold():
    assert drift.is_drifted(0.11, 0.1) is True
    assert drift.is_drifted(0.1, 0.1) is False
    assert drift.is_drifted(float("nan"), 0.1) is False
