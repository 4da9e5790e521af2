"""Train the demo ride-duration bundle the way the classic tutorial does, on synthetic rides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression

from scoring.demo.synthetic import duration_minutes, generate_rides
from scoring.model.artifacts import dump_artifact
from scoring.model.declaration import preset
from scoring.model.features import build_features, records_for_vectorizer
from scoring.model.importing import build_manifest, write_bundle
from scoring.model.manifest import Manifest
from scoring.model.reference import ReferenceProfile, input_kinds

DEMO_NAME = "ride_duration"


@dataclass(frozen=True)
class TrainingReport:
    """The bundle's manifest, how many rides it was fitted on, and its error on them."""

    manifest: Manifest
    training_rows: int
    rmse_minutes: float


def train_demo_bundle(
    destination: str,
    *,
    rows: int = 50_000,
    seed: int = 42,
    version: str = "1",
    recipe_name: str = "ride_pu_do",
    key: bytes | None = None,
) -> TrainingReport:
    """Fit DictVectorizer + LinearRegression on rides lasting 1 to 60 minutes and write a bundle (signed with `key`).

    The manifest declares the preset's features and records the preset's name; the bundle carries the
    reference profile of the training rides and the model's predictions on them.
    """
    rides = generate_rides(rows, start=datetime(2026, 1, 1, tzinfo=timezone.utc), span=timedelta(days=28), seed=seed)
    minutes = duration_minutes(rides)
    keep = ((minutes >= 1) & (minutes <= 60)).to_numpy()
    rides, target = rides[keep], minutes[keep].to_numpy()
    declaration = preset(recipe_name)
    dv = DictVectorizer()
    X = dv.fit_transform(records_for_vectorizer(build_features(declaration, rides)))
    model = LinearRegression().fit(X, target)
    artifact = dump_artifact((dv, model), "pickle")
    manifest = build_manifest(
        artifact, (dv, model), name=DEMO_NAME, version=version, features=declaration, named_preset=recipe_name
    )
    fitted = model.predict(X)
    reference = ReferenceProfile.build(rides, fitted, input_kinds(manifest), manifest.output)
    write_bundle(destination, artifact, manifest, key, reference=reference)
    rmse = float(np.sqrt(np.mean((fitted - target) ** 2)))
    return TrainingReport(manifest=manifest, training_rows=int(len(target)), rmse_minutes=rmse)
