"""Bounded column summaries (histograms, category counts): they live in scoring.model.histogram, because a
bundle's reference profile is made of them; monitoring code keeps importing them from here."""

from scoring.model.histogram import (
    EDGE_QUANTILES,
    MAX_CATEGORIES,
    OTHER,
    REPORTED_QUANTILES,
    NumberHistogram,
    TextCounts,
    bin_indices,
    category_text,
    quantile_edges,
)

__all__ = [
    "EDGE_QUANTILES",
    "MAX_CATEGORIES",
    "OTHER",
    "REPORTED_QUANTILES",
    "NumberHistogram",
    "TextCounts",
    "bin_indices",
    "category_text",
    "quantile_edges",
]
