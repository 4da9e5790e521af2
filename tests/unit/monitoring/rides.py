"""Ride-like monitoring inputs: the demo's synthetic rides, the columns a ride model reads, a linear prediction."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from scoring.demo.synthetic import generate_rides

# Zone ids are integers, but they feed a categorical feature: for drift they are text.
KINDS = {"PULocationID": "text", "DOLocationID": "text", "trip_distance": "number"}
OUTPUT = "duration"


def ride_inputs(n: int, seed: int) -> pd.DataFrame:
    """`n` validated-looking ride inputs from the demo's distribution."""
    rides = generate_rides(n, start=datetime(2026, 1, 1, tzinfo=timezone.utc), span=timedelta(hours=1), seed=seed)
    return rides[list(KINDS)].reset_index(drop=True)


def predict_minutes(inputs: pd.DataFrame) -> np.ndarray:
    """A stand-in model: minutes grow linearly with distance (as the demo model's do)."""
    return 2.0 + 5.0 * inputs["trip_distance"].to_numpy(dtype=float)
