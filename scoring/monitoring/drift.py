"""The two drift statistics, on histograms: pure functions over counts, thresholds beside them.

Both are Evidently's defaults for large data, so course users recognise the numbers: Wasserstein distance
normed by the reference standard deviation for numbers, Jensen-Shannon distance (base 2) for text. Each
is computed by scipy over bounded histograms rather than raw samples; tests hold the approximation
close to scipy on the raw values.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from scoring.model.histogram import OTHER

NUMBER_STATISTIC = "wasserstein_normed"
TEXT_STATISTIC = "jensenshannon"
# Evidently's defaults: a feature drifts when its statistic exceeds 0.1.
DEFAULT_NUMBER_THRESHOLD = 0.1
DEFAULT_TEXT_THRESHOLD = 0.1
# Evidently's floor on the norm, so a constant reference column does not divide by zero.
MIN_NORM = 0.001


def wasserstein_normed(
    reference_positions: np.ndarray,
    reference_counts: np.ndarray,
    current_positions: np.ndarray,
    current_counts: np.ndarray,
    reference_std: float,
) -> float:
    """Wasserstein distance between two weighted histograms, divided by the reference standard deviation.

    Positions are each bin's mean value (exact for the mass inside it, unlike a bin centre, and defined
    for the open-ended outer bins); empty bins are ignored.
    """
    ref_keep = np.asarray(reference_counts) > 0
    cur_keep = np.asarray(current_counts) > 0
    if not ref_keep.any() or not cur_keep.any():
        return float("nan")
    distance = wasserstein_distance(
        np.asarray(reference_positions)[ref_keep],
        np.asarray(current_positions)[cur_keep],
        u_weights=np.asarray(reference_counts, dtype=float)[ref_keep],
        v_weights=np.asarray(current_counts, dtype=float)[cur_keep],
    )
    return float(distance / max(float(reference_std), MIN_NORM))


def jensenshannon_distance(reference_counts: Mapping[str, float], current_counts: Mapping[str, float]) -> float:
    """Jensen-Shannon distance (base 2, 0..1) between two category frequency tables, over the reference's
    categories plus OTHER: a current value the reference never saw counts as OTHER."""
    categories = [name for name in reference_counts if name != OTHER]
    known = set(categories)
    reference = np.array([*(reference_counts[c] for c in categories), reference_counts.get(OTHER, 0.0)], dtype=float)
    unseen = sum(count for name, count in current_counts.items() if name not in known)
    current = np.array([*(current_counts.get(c, 0.0) for c in categories), unseen], dtype=float)
    if reference.sum() <= 0 or current.sum() <= 0:
        return float("nan")
    return float(jensenshannon(reference, current, base=2))


def is_drifted(value: float, threshold: float) -> bool:
    """Whether a statistic crosses its threshold; an undefined statistic (no data) never flags."""
    return bool(np.isfinite(value) and value > threshold)
