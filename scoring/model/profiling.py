"""Reference profiles of training samples: what a model's inputs and predictions looked like, for monitoring.

`scoring model import --reference` and `scoring model profile` profile a sample (Parquet or CSV) with the
bundle: its valid rows and the bundle's predictions on them. Writing the profile into a bundle is
scoring.model.importing; the profile itself is scoring.model.reference.
"""

from __future__ import annotations

import logging

import pandas as pd

from scoring.errors import ConfigError
from scoring.model.bundle import ModelBundle
from scoring.model.predict import Predictor, split_finite
from scoring.model.reference import ReferenceProfile, input_kinds

log = logging.getLogger(__name__)


def read_reference_sample(path: str) -> tuple[pd.DataFrame, bool]:
    """A reference sample (Parquet or CSV) as read, and whether it is text (CSV: numbers come as text)."""
    parquet = path.lower().endswith((".parquet", ".pq"))
    try:
        frame = pd.read_parquet(path) if parquet else pd.read_csv(path, dtype=str, keep_default_na=True)
    except FileNotFoundError:
        raise ConfigError(f"--reference {path}: no such file") from None
    except Exception as exc:
        raise ConfigError(f"--reference {path}: cannot read it as Parquet or CSV ({type(exc).__name__})") from None
    return frame, not parquet


def profile_sample(bundle: ModelBundle, path: str) -> ReferenceProfile:
    """The reference profile of a sample of training inputs: its valid rows and the bundle's predictions on them."""
    frame, text_input = read_reference_sample(path)
    manifest = bundle.manifest
    result = bundle.schema.validate_frame(frame, text_input=text_input)
    if len(result.valid) == 0:
        missing = [spec.name for spec in manifest.inputs if spec.name not in frame.columns]
        why = f"it lacks the inputs {missing}" if missing else "none of its rows is a valid input"
        raise ConfigError(f"--reference {path}: {why}")
    if result.rejected_count:
        log.warning(
            "--reference %s: %d of %d rows are not valid inputs: left out", path, result.rejected_count, len(frame)
        )
    # An overflowed prediction is left out, as every mode leaves it out of what it stores.
    valid, predictions, _ = split_finite(result.valid, Predictor(bundle).predict(result.valid), result.rejected)
    return ReferenceProfile.build(valid, predictions, input_kinds(manifest), manifest.output)
