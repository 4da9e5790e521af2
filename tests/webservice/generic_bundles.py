"""Bundles that are not rides: a binary fraud classifier and a multiclass risk model, with their manifests.

They prove the adapters serve whatever a bundle declares with no code change: nothing in webservice/,
lambda/ or scoring/stream/ may know the names amount, merchant, country, age or region.
Two manifests are written by hand as the contract (notes/contract13.md) spells `model.json` (bounds and
allowed values included); one bundle is made by `scoring model import` from the bare pickle, everything inferred.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from scoring.model.bundle import ModelBundle, load_bundle, sha256_of
from scoring.model.importing import ImportRequest, import_source
from scoring.model.trust import BundleTrust

COUNTRIES = ["DE", "FR", "NG", "US"]
MERCHANTS = ["grocer", "casino", "airline", "books", "fuel"]
REGIONS = ["north", "south", "east", "west"]
RISK_CLASSES = ["high", "low", "medium"]

FRAUD_INPUTS = [
    {"name": "amount", "type": "number", "required": True, "minimum": 0},
    {"name": "merchant", "type": "string", "required": True},
    {"name": "country", "type": "string", "required": True, "values": COUNTRIES},
]
FRAUD_FEATURES = [
    {"name": "amount", "kind": "number", "inputs": ["amount"]},
    {"name": "merchant", "kind": "categorical", "inputs": ["merchant"]},
    {"name": "country", "kind": "categorical", "inputs": ["country"]},
]
RISK_INPUTS = [
    {"name": "age", "type": "integer", "required": True, "minimum": 18, "maximum": 120},
    {"name": "region", "type": "string", "required": True, "values": REGIONS},
]
RISK_FEATURES = [
    {"name": "age", "kind": "number", "inputs": ["age"]},
    {"name": "region", "kind": "categorical", "inputs": ["region"]},
]


@dataclass(frozen=True)
class GenericModel:
    """A trained non-ride model, where its bundle lives, and how scikit-learn itself answers a record."""

    directory: Path
    bundle: ModelBundle
    model: Any  # (DictVectorizer, estimator) or a Pipeline starting with a DictVectorizer

    def predict_proba(self, records: list[dict[str, Any]]) -> np.ndarray:
        """scikit-learn's own per-class probabilities for these records (the inputs only)."""
        if isinstance(self.model, tuple):
            vectorizer, estimator = self.model
            return estimator.predict_proba(vectorizer.transform(records))
        return self.model.predict_proba(records)


def fraud_transactions(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """Transactions with every merchant and country, amounts from cents to thousands."""
    rng = np.random.default_rng(seed)
    return [
        {
            "amount": round(float(rng.exponential(120.0)), 2),
            "merchant": MERCHANTS[int(rng.integers(len(MERCHANTS)))],
            "country": COUNTRIES[int(rng.integers(len(COUNTRIES)))],
        }
        for _ in range(n)
    ]


def risk_cases(n: int, seed: int = 6) -> list[dict[str, Any]]:
    """Cases with an age and a region."""
    rng = np.random.default_rng(seed)
    return [{"age": int(rng.integers(18, 90)), "region": REGIONS[int(rng.integers(len(REGIONS)))]} for _ in range(n)]


def train_fraud_model() -> tuple[DictVectorizer, LogisticRegression]:
    """A (DictVectorizer, LogisticRegression) fraud classifier on amount, merchant and country; label 1 is fraud."""
    records = fraud_transactions(600)
    score = np.array(
        [r["amount"] / 150 + (r["merchant"] == "casino") * 1.5 + (r["country"] == "NG") * 1.2 for r in records]
    )
    labels = (score + np.random.default_rng(1).normal(0, 0.7, len(records)) > 1.8).astype(int)
    vectorizer = DictVectorizer()
    estimator = LogisticRegression(max_iter=2000).fit(vectorizer.fit_transform(records), labels)
    return vectorizer, estimator


def build_fraud_bundle(directory: Path) -> GenericModel:
    """The fraud classifier, pickled, its manifest written by hand (with bounds and allowed countries), no id field."""
    manifest = {
        "name": "fraud",
        "version": "3",
        "format": "dv_tuple",
        "inputs": FRAUD_INPUTS,
        "features": FRAUD_FEATURES,
        "id_field": None,
        "output": "fraud_probability",
        "task": "binary",
        "classes": [0, 1],
        "positive_class": 1,
        "returns": "probability",
    }
    return _write(directory, train_fraud_model(), manifest)


def import_fraud_bundle(work: Path) -> GenericModel:
    """The fraud classifier as a user hands it over: a pickle, imported with no --features (the importer infers them)."""
    model = train_fraud_model()
    pickled = work / "fraud.pkl"
    pickled.write_bytes(pickle.dumps(model))
    request = ImportRequest(source=str(pickled), name="fraud", version="4", id_field=None, output="fraud_probability")
    directory = work / "fraud" / "4"
    import_source(request, str(directory))
    return GenericModel(directory, load_bundle(str(directory), BundleTrust.of_bundle(str(directory))), model)


def build_risk_bundle(directory: Path) -> GenericModel:
    """A multiclass Pipeline(DictVectorizer, LogisticRegression) with an id field, returning per-class probabilities."""
    records = risk_cases(600)
    labels = [
        "high" if r["age"] > 65 or r["region"] == "south" else "medium" if r["age"] > 40 else "low" for r in records
    ]
    pipeline = make_pipeline(DictVectorizer(), LogisticRegression(max_iter=2000)).fit(records, labels)
    assert list(pipeline.classes_) == RISK_CLASSES
    manifest = {
        "name": "risk",
        "version": "7",
        "format": "pipeline",
        "inputs": RISK_INPUTS,
        "features": RISK_FEATURES,
        "id_field": "case_id",
        "output": "risk",
        "task": "multiclass",
        "classes": RISK_CLASSES,
        "returns": "probabilities",
    }
    return _write(directory, pipeline, manifest)


def _write(directory: Path, model: Any, manifest: dict[str, Any]) -> GenericModel:
    artifact = pickle.dumps(model)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.bin").write_bytes(artifact)
    full = {**manifest, "artifact": "model.bin", "sha256": sha256_of(artifact), "sklearn_version": sklearn.__version__}
    (directory / "model.json").write_text(json.dumps(full, indent=2))
    bundle = load_bundle(str(directory), BundleTrust.of_bundle(str(directory)))
    return GenericModel(directory, bundle, model)
