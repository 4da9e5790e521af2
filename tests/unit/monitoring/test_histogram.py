"""Bounded column summaries: quantiles close to numpy's, merges equal to one pass, capped categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scoring.monitoring.drift import OTHER
from scoring.monitoring.histogram import (
    EDGE_QUANTILES,
    MAX_CATEGORIES,
    NumberHistogram,
    TextCounts,
    bin_indices,
    category_text,
    quantile_edges,
)


@pytest.mark.parametrize("q", [0.05, 0.25, 0.5, 0.75, 0.95])
def test_histogram_quantiles_are_close_to_numpy(q):
    # Given skewed values counted on their own quantile edges
    values = np.random.default_rng(1).lognormal(0.8, 0.7, 100_000)
    histogram = NumberHistogram(quantile_edges(values))
    histogram.add(values)
    # Then each reported quantile is within 2% of the exact one, and the mean is exact
    assert histogram.quantile(q) == pytest.approx(np.quantile(values, q), rel=0.02)
    assert histogram.mean() == pytest.approx(values.mean(), rel=1e-12)


def test_edges_are_bounded_and_distinct_even_for_a_few_repeated_values():
    assert len(quantile_edges(np.random.default_rng(0).normal(size=1_000_000))) == len(EDGE_QUANTILES)
    assert list(quantile_edges(np.array([1.0, 1.0, 2.0, 2.0]))) == [1.0, 2.0]


def test_merging_on_the_same_edges_equals_counting_everything_once():
    # Given two halves counted separately on the same edges
    values = np.random.default_rng(2).normal(10, 2, 10_000)
    edges = quantile_edges(values)
    whole, first, second = NumberHistogram(edges), NumberHistogram(edges), NumberHistogram(edges)
    whole.add(values)
    first.add(values[:3_000])
    second.add(values[3_000:])
    # When merged
    first.merge(second)
    # Then counts, extremes and mean are those of one pass
    assert first.counts.tolist() == whole.counts.tolist()
    assert (first.minimum, first.maximum) == (whole.minimum, whole.maximum)
    assert first.mean() == pytest.approx(whole.mean())


def test_merging_other_edges_keeps_every_value_and_the_mean():
    # Given two shards whose edges were fixed on different data
    rng = np.random.default_rng(4)
    low, high = rng.normal(0, 1, 5_000), rng.normal(3, 1, 5_000)
    a, b = NumberHistogram(quantile_edges(low)), NumberHistogram(quantile_edges(high))
    a.add(low)
    b.add(high)
    # When one absorbs the other
    a.merge(b)
    # Then nothing is lost and the mean is exact; the median is approximate but near
    assert a.count == 10_000
    assert a.mean() == pytest.approx(np.concatenate([low, high]).mean())
    assert a.quantile(0.5) == pytest.approx(np.median(np.concatenate([low, high])), abs=0.25)


def test_text_counts_use_the_categorical_feature_text():
    counts = TextCounts()
    counts.add(pd.Series([132, 132, 7], dtype="int64"))
    counts.add(pd.Series([132, None], dtype="Int64"))
    assert counts.counts == {"132": 3, "7": 1}
    assert [category_text(v) for v in (np.int64(5), 2.5, "DE")] == ["5", "2.5", "DE"]


def test_text_counts_with_fixed_categories_put_the_rest_in_other():
    counts = TextCounts(categories=("a", "b"))
    counts.add(pd.Series(["a", "c", "d", "b", "a"]))
    assert counts.counts == {"a": 2, "b": 1, OTHER: 2}


def test_text_counts_without_reference_stay_bounded():
    # Given far more distinct values than the cap
    counts = TextCounts()
    counts.add(pd.Series(np.arange(MAX_CATEGORIES * 3)))
    # Then the table holds the cap plus OTHER, and still every value
    assert len(counts.counts) == MAX_CATEGORIES + 1
    assert counts.count == MAX_CATEGORIES * 3


@pytest.mark.parametrize(
    "edges", [np.array([]), np.array([1.0]), np.array([0.5, 1.0, 1.0000001, 7.0]), np.arange(300.0)]
)
def test_bin_indices_equal_searchsorted(edges):
    values = np.concatenate([np.random.default_rng(8).normal(3, 3, 5_000), edges, [-np.inf, np.inf]])
    assert bin_indices(edges, values).tolist() == np.searchsorted(edges, values, side="right").tolist()


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([3, 3, 0, 70_000], dtype="int64"),
        pd.Series([-1, 5, 5], dtype="int64"),
        pd.Series([10**9, 1], dtype="int64"),
        pd.Series([2, None, 2], dtype="Int64"),
    ],
)
def test_integer_categories_count_the_same_on_every_path(values):
    counts = TextCounts()
    counts.add(values)
    expected = {str(int(v)): int(n) for v, n in values.value_counts(dropna=True).items()}
    assert counts.counts == expected
