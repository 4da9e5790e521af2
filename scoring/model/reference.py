"""A bundle's reference profile: what its training inputs and predictions looked like, in bounded size.

Numbers keep their histogram on the reference's own quantile edges (the edges every later partition is
counted on), with mean, standard deviation and quantiles; text keeps its most frequent categories and
an OTHER bucket. The JSON form is a plain dict with a version and a stable key order, so the bundle's
sha256 over it is reproducible.

It lives in the model kernel because a bundle carries it (reference.json, covered by the manifest's
signature); scoring.monitoring builds on it and re-exports it as scoring.monitoring.profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from scoring.errors import ModelLoadError
from scoring.model.histogram import OTHER, REPORTED_QUANTILES, NumberHistogram, TextCounts, quantile_edges

if TYPE_CHECKING:
    from scoring.model.manifest import Manifest

PROFILE_VERSION = 1
Kind = Literal["number", "text"]
KINDS = ("number", "text")
# Categories a text profile keeps by frequency; the rest are one OTHER bucket.
TOP_CATEGORIES = 50
# Inputs of these feature kinds reach the model as text, so their drift is measured on categories.
TEXT_FEATURE_KINDS = ("categorical", "concat")


def input_kinds(manifest: Manifest) -> dict[str, Kind]:
    """Each declared input's kind for monitoring: "text" when it feeds a categorical or concat feature (or is a
    string), else "number". Batch, online and stream monitoring all use this one rule."""
    text_inputs = {
        name
        for feature in manifest.declaration.features
        if feature.kind in TEXT_FEATURE_KINDS
        for name in feature.inputs
    }
    return {
        spec.name: "text" if spec.name in text_inputs or spec.type == "string" else "number" for spec in manifest.inputs
    }


@dataclass(frozen=True)
class NumberProfile:
    """A number column of the reference: counts on its quantile edges, and its moments and quantiles."""

    count: int
    missing: int
    mean: float
    std: float
    quantiles: dict[str, float]
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    positions: tuple[float | None, ...]  # each bin's mean value, None when empty
    minimum: float
    maximum: float
    kind: Kind = "number"

    def histogram(self) -> NumberHistogram:
        """The reference's own histogram (for the drift statistic)."""
        histogram = NumberHistogram(np.array(self.edges))
        histogram.counts = np.array(self.counts, dtype=np.int64)
        positions = np.array([np.nan if p is None else p for p in self.positions], dtype=float)
        histogram.sums = np.where(histogram.counts > 0, positions * histogram.counts, 0.0)
        histogram.minimum, histogram.maximum = self.minimum, self.maximum
        return histogram


@dataclass(frozen=True)
class TextProfile:
    """A text column of the reference: its top categories' counts, the rest under OTHER."""

    count: int
    missing: int
    counts: dict[str, int]
    kind: Kind = "text"

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(name for name in self.counts if name != OTHER)


ColumnProfile = NumberProfile | TextProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """Per-column profiles of the reference inputs, and of the predictions under the output's name."""

    rows: int
    output: str
    columns: dict[str, ColumnProfile]

    @property
    def kinds(self) -> dict[str, Kind]:
        return {name: column.kind for name, column in self.columns.items()}

    @classmethod
    def build(
        cls,
        inputs: pd.DataFrame,
        predictions: np.ndarray,
        kinds: Mapping[str, Kind],
        output_name: str,
        *,
        top: int = TOP_CATEGORIES,
    ) -> ReferenceProfile:
        """Profile validated reference inputs (the columns named in `kinds`) and the bundle's predictions on them."""
        for name, kind in kinds.items():
            if kind not in KINDS:
                raise ValueError(f"input {name!r} has kind {kind!r}; expected one of {KINDS}")
        columns: dict[str, ColumnProfile] = {}
        for name, kind in kinds.items():
            if name == output_name:
                continue
            series = inputs[name] if name in inputs.columns else pd.Series([None] * len(inputs), dtype=object)
            columns[name] = _number_profile(series) if kind == "number" else _text_profile(series, top)
        predicted = pd.Series(np.asarray(predictions, dtype=float))
        output_kind = kinds.get(output_name, "number")
        columns[output_name] = _number_profile(predicted) if output_kind == "number" else _text_profile(predicted, top)
        return cls(rows=len(inputs), output=output_name, columns=columns)

    def to_json(self) -> dict[str, Any]:
        """A plain, versioned dict in a stable key order (JSON-ready: no NaN)."""
        return {
            "version": PROFILE_VERSION,
            "rows": self.rows,
            "output": self.output,
            "columns": {name: _column_json(column) for name, column in self.columns.items()},
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ReferenceProfile:
        """Read `to_json`'s dict; anything else is one ModelLoadError naming the problem."""
        if not isinstance(raw, Mapping) or raw.get("version") != PROFILE_VERSION:
            version = raw.get("version") if isinstance(raw, Mapping) else None
            raise ModelLoadError(f"reference profile has version {version!r}; this code reads {PROFILE_VERSION}")
        try:
            columns = {str(name): _column_from_json(column) for name, column in raw["columns"].items()}
            return cls(rows=_count(raw["rows"]), output=str(raw["output"]), columns=columns)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"reference profile is malformed: {type(exc).__name__} {exc}") from None


def _number_profile(series: pd.Series) -> NumberProfile:
    missing = series.isna().to_numpy()
    values = series[~missing].to_numpy(dtype=float)
    histogram = NumberHistogram(quantile_edges(values))
    histogram.add(values)
    empty = len(values) == 0
    return NumberProfile(
        count=len(values),
        missing=int(missing.sum()),
        mean=float("nan") if empty else float(values.mean()),
        std=float("nan") if empty else float(values.std()),
        quantiles={k: float("nan") if empty else float(np.quantile(values, q)) for k, q in REPORTED_QUANTILES.items()},
        edges=tuple(float(e) for e in histogram.edges),
        counts=tuple(int(c) for c in histogram.counts),
        positions=tuple(None if np.isnan(p) else float(p) for p in histogram.positions()),
        minimum=histogram.minimum,
        maximum=histogram.maximum,
    )


def _text_profile(series: pd.Series, top: int) -> TextProfile:
    counts = TextCounts()
    counts.add(series)
    # Most frequent first; ties by name, so the same reference always gives the same profile.
    ranked = sorted(((n, name) for name, n in counts.counts.items() if name != OTHER), key=lambda x: (-x[0], x[1]))
    kept = {name: n for n, name in ranked[:top]}
    rest = counts.count - sum(kept.values())
    return TextProfile(count=counts.count, missing=int(series.isna().sum()), counts={**kept, OTHER: rest})


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _column_json(column: ColumnProfile) -> dict[str, Any]:
    if isinstance(column, TextProfile):
        return {"kind": "text", "count": column.count, "missing": column.missing, "counts": dict(column.counts)}
    return {
        "kind": "number",
        "count": column.count,
        "missing": column.missing,
        "mean": _finite_or_none(column.mean),
        "std": _finite_or_none(column.std),
        "min": _finite_or_none(column.minimum),
        "max": _finite_or_none(column.maximum),
        "quantiles": {k: _finite_or_none(v) for k, v in column.quantiles.items()},
        "edges": list(column.edges),
        "counts": list(column.counts),
        "positions": list(column.positions),
    }


def _float(value: Any, default: float) -> float:
    return default if value is None else float(value)


# Counts become int64 arrays (histograms, drift statistics): a larger one would overflow or raise far from here.
INT64_MAX = 2**63 - 1


def _count(value: Any) -> int:
    """A count as reference.json must hold it: a non-negative JSON integer that fits int64."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise ValueError("counts must be non-negative integers within int64")
    return value


def _edges(values: Any) -> tuple[float, ...]:
    """Histogram edges as reference.json must hold them: finite and strictly ascending (bins are found by them)."""
    edges = tuple(float(e) for e in values)
    if not all(np.isfinite(e) for e in edges) or any(a >= b for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError("edges must be finite and strictly ascending")
    return edges


def _column_from_json(raw: Mapping[str, Any]) -> ColumnProfile:
    if raw["kind"] == "text":
        return TextProfile(
            count=_count(raw["count"]),
            missing=_count(raw["missing"]),
            counts={str(k): _count(v) for k, v in raw["counts"].items()},
        )
    if raw["kind"] != "number":
        raise ValueError(f"unknown column kind {raw['kind']!r}")
    edges = _edges(raw["edges"])
    counts = tuple(_count(c) for c in raw["counts"])
    positions = tuple(None if p is None else float(p) for p in raw["positions"])
    if len(counts) != len(edges) + 1 or len(positions) != len(counts):
        raise ValueError("counts and positions must have one entry more than edges")
    return NumberProfile(
        count=_count(raw["count"]),
        missing=_count(raw["missing"]),
        mean=_float(raw["mean"], float("nan")),
        std=_float(raw["std"], float("nan")),
        quantiles={str(k): _float(v, float("nan")) for k, v in raw["quantiles"].items()},
        edges=edges,
        counts=counts,
        positions=positions,
        minimum=_float(raw["min"], float("inf")),
        maximum=_float(raw["max"], float("-inf")),
    )
