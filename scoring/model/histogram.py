"""Bounded summaries of one column: a fixed-edge histogram for numbers, capped category counts for text.

Memory depends on the number of bins and categories, never on the number of rows, so a partition of any
size is summarised chunk by chunk; two summaries of the same column merge (shards combine at publish).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# Quantiles whose values become bin edges: fine in the body, and 1% open-ended bins at each end so a
# shifted tail shows up as mass beyond the outer edges.
EDGE_QUANTILES = (0.01, 0.025, *(round(0.05 * i, 2) for i in range(1, 20)), 0.975, 0.99)
# The quantiles every number reports.
REPORTED_QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.50, "p75": 0.75, "p95": 0.95}
# The bucket of every category a summary does not keep by name.
OTHER = "<other>"
# Categories a text column keeps without a reference; later ones are counted as OTHER.
MAX_CATEGORIES = 1000


def quantile_edges(values: np.ndarray) -> np.ndarray:
    """Bin edges at EDGE_QUANTILES of `values` (distinct, ascending; a constant column has one edge).

    Edges are values of the data (inverted CDF, no interpolation), so a column of few distinct values (counts,
    codes) gets one bin per value and its histogram is exact."""
    if len(values) == 0:
        return np.zeros(0)
    return np.unique(np.quantile(values, EDGE_QUANTILES, method="inverted_cdf"))


def bin_indices(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The bin of each value (the number of edges <= it), as np.searchsorted(edges, values, side="right").

    One vectorised comparison per edge: for a few dozen edges this is several times faster than a binary
    search per value, and monitoring must stay a small fraction of scoring."""
    if len(edges) > 250:
        return np.searchsorted(edges, values, side="right")
    bins = np.zeros(len(values), dtype=np.uint8)
    above = np.empty(len(values), dtype=bool)
    for edge in edges:
        np.greater_equal(values, edge, out=above)
        bins += above
    return bins


@dataclass
class NumberHistogram:
    """Counts and value sums per bin on fixed edges (bin i holds edges[i-1] <= x < edges[i]; the outer bins are
    open-ended), with the minimum and maximum seen."""

    edges: np.ndarray
    counts: np.ndarray = field(init=False)
    sums: np.ndarray = field(init=False)
    minimum: float = np.inf
    maximum: float = -np.inf

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=float)
        self.counts = np.zeros(len(self.edges) + 1, dtype=np.int64)
        self.sums = np.zeros(len(self.edges) + 1, dtype=float)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def add(self, values: np.ndarray) -> None:
        """Count finite float values into the bins."""
        if len(values) == 0:
            return
        bins = bin_indices(self.edges, values)
        self.counts += np.bincount(bins, minlength=len(self.counts))
        self.sums += np.bincount(bins, weights=values, minlength=len(self.sums))
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def merge(self, other: NumberHistogram) -> None:
        """Add another histogram's counts; on other edges, each of its bins moves whole to the bin holding its mean."""
        if np.array_equal(self.edges, other.edges):
            self.counts += other.counts
            self.sums += other.sums
        else:
            filled = other.counts > 0
            bins = np.searchsorted(self.edges, other.positions()[filled], side="right")
            np.add.at(self.counts, bins, other.counts[filled])
            np.add.at(self.sums, bins, other.sums[filled])
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def to_json(self) -> dict[str, Any]:
        """Edges, counts, sums and range as plain JSON (a shard's state travels to the publish this way)."""
        return {
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "sums": self.sums.tolist(),
            "minimum": self.minimum,
            "maximum": self.maximum,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> NumberHistogram:
        """The histogram `to_json` described."""
        histogram = cls(np.array(raw["edges"], dtype=float))
        histogram.counts = np.array(raw["counts"], dtype=np.int64)
        histogram.sums = np.array(raw["sums"], dtype=float)
        histogram.minimum, histogram.maximum = float(raw["minimum"]), float(raw["maximum"])
        return histogram

    def positions(self) -> np.ndarray:
        """Each bin's mean value (NaN for an empty bin): where its mass sits, for the Wasserstein distance."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.counts

    def mean(self) -> float:
        """The exact mean of the values counted (NaN when none)."""
        return float(self.sums.sum() / self.count) if self.count else float("nan")

    def quantile(self, q: float) -> float:
        """An approximate quantile: linear within the bin that holds it, the outer bins bounded by min and max."""
        total = self.count
        if total == 0:
            return float("nan")
        lower = np.concatenate(([self.minimum], self.edges))
        upper = np.concatenate((self.edges, [self.maximum]))
        cumulative = np.cumsum(self.counts)
        rank = q * total
        b = min(int(np.searchsorted(cumulative, rank, side="left")), len(self.counts) - 1)
        before = cumulative[b] - self.counts[b]
        share = (rank - before) / self.counts[b] if self.counts[b] else 0.0
        low, high = max(lower[b], self.minimum), min(upper[b], self.maximum)
        return float(np.clip(low + share * (high - low), self.minimum, self.maximum))


@dataclass
class TextCounts:
    """How often each category occurs. With `categories` fixed (a reference's), others count as OTHER;
    without, the first MAX_CATEGORIES seen are kept."""

    categories: tuple[str, ...] | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def add(self, values: pd.Series) -> None:
        """Count non-null values by their text (str(int) for integers, as the categorical feature sees them)."""
        for value, n in _value_counts(values):
            self._add(category_text(value), int(n))

    def merge(self, other: TextCounts) -> None:
        """Add another table's counts."""
        for name, n in other.counts.items():
            self._add(name, n)

    def _add(self, name: str, n: int) -> None:
        if name not in self.counts:
            allowed = name in self.categories if self.categories is not None else len(self.counts) < MAX_CATEGORIES
            if not allowed:
                name = OTHER
        self.counts[name] = self.counts.get(name, 0) + n


# Integer codes up to this value are counted with np.bincount (zone ids, small enums): a few times faster.
BINCOUNT_LIMIT = 100_000


def _value_counts(values: pd.Series) -> list[tuple[object, int]]:
    """(value, count) of each distinct non-null value."""
    if values.dtype == np.int64 and len(values):
        array = values.to_numpy()
        low, high = int(array.min()), int(array.max())
        if low >= 0 and high <= BINCOUNT_LIMIT:
            counts = np.bincount(array)
            present = np.flatnonzero(counts)
            return list(zip(present.tolist(), counts[present].tolist(), strict=True))
    return list(values.value_counts(dropna=True, sort=False).items())


def category_text(value: object) -> str:
    """A category's text as the categorical feature builds it: str(int) for integers, else str(value)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(float(value))
    return str(value)
