"""A classifier in batch: its probability or label stored, and per-class probabilities in their own JSON column."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from scoring.batch import score_partition
from scoring.model.bundle import load_bundle
from scoring.model.importing import ImportRequest, import_source
from scoring.model.predict import Predictor
from scoring.model.trust import BundleTrust
from tests.integration.batch_helpers import HOUR, JOB, run

pytestmark = pytest.mark.postgres

COUNTRIES = ["DE", "FR", "NL"]


def _transactions(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(3, 1, n), 2),
            "country": rng.choice(COUNTRIES, n),
            "merchant": rng.choice(["m1", "m2", "m3", "m4"], n),
        }
    )


def _labels(frame: pd.DataFrame, classes: list) -> np.ndarray:
    score = np.log(frame["amount"]) + (frame["country"] == "NL") * 1.5 + (frame["merchant"] == "m4")
    cut = np.quantile(score, np.linspace(0, 1, len(classes) + 1)[1:-1])
    return np.asarray(classes, dtype=object)[np.searchsorted(cut, score)]


@pytest.fixture(scope="module")
def fraud_models(tmp_path_factory):
    """Pipelines (DictVectorizer + LogisticRegression) on amount, country and merchant: binary and 3-class."""
    train = _transactions(3_000, seed=1)
    records = train.to_dict("records")
    models = {}
    for name, classes in (("binary", [0, 1]), ("multiclass", ["ok", "review", "fraud"])):
        pipeline = make_pipeline(DictVectorizer(), LogisticRegression(max_iter=500))
        pipeline.fit(records, list(_labels(train, classes)))
        models[name] = pipeline
    return models


def _import(tmp_path: Path, pipeline, returns: str) -> Predictor:
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(pipeline))
    request = ImportRequest(source=str(pickled), name="fraud", version="1", id_field="txn_id", returns=returns)
    _, where = import_source(request, str(tmp_path / "models" / "fraud" / "1"))
    return Predictor(load_bundle(where, BundleTrust.of_bundle(where)))


def _drop(tmp_path: Path, frame: pd.DataFrame) -> Path:
    folder = tmp_path / "in" / "rides" / "dt=2026-03-01" / "hour=05"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "txns.parquet")
    return folder / "txns.parquet"


def _stored(engine: sa.Engine) -> pd.DataFrame:
    query = sa.text("SELECT record_id, prediction, label, probabilities FROM predictions WHERE job = :job")
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query, {"job": JOB}).mappings().all())
    frame["row"] = frame["record_id"].str.rpartition(":")[2].astype(int)
    return frame.sort_values("row").reset_index(drop=True)


def test_multiclass_probabilities_are_stored_as_json_beside_the_label(pg_engine, fraud_models, tmp_path):
    # Given a 3-class pipeline imported to return probabilities, and transactions without ids
    pipeline = fraud_models["multiclass"]
    predictor = _import(tmp_path, pipeline, "probabilities")
    batch = _transactions(400, seed=2)
    _drop(tmp_path, batch)
    # When the hour is scored (in 97-row chunks)
    summary = run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    # Then every row is stored with the pipeline's own label and its probabilities per class, by class name
    assert (summary.scored_rows, summary.rejected_rows) == (400, 0)
    stored = _stored(pg_engine)
    records = batch.to_dict("records")
    assert list(stored["label"]) == list(pipeline.predict(records))
    expected = pipeline.predict_proba(records)
    classes = [str(c) for c in pipeline.classes_]
    for row in (0, 96, 97, 399):
        probabilities = stored["probabilities"][row]
        assert set(probabilities) == set(classes)
        assert [probabilities[c] for c in classes] == pytest.approx(expected[row], abs=1e-12)
    # And the numeric prediction is the label's index in the manifest's classes
    manifest_classes = list(predictor.bundle.manifest.classes)
    assert [manifest_classes[int(i)] for i in stored["prediction"]] == list(stored["label"])


def test_a_binary_classifier_stores_the_positive_class_probability_and_no_extras(pg_engine, fraud_models, tmp_path):
    # Given a binary pipeline imported as it is by default (the probability of the positive class)
    pipeline = fraud_models["binary"]
    predictor = _import(tmp_path, pipeline, "probability")
    batch = _transactions(150, seed=3)
    _drop(tmp_path, batch)
    # When scored
    run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    # Then the prediction is predict_proba[:, 1] and the label and probabilities columns stay NULL
    stored = _stored(pg_engine)
    np.testing.assert_allclose(stored["prediction"], pipeline.predict_proba(batch.to_dict("records"))[:, 1], rtol=1e-12)
    assert stored["label"].isna().all() and stored["probabilities"].isna().all()


def test_a_label_classifier_on_sqlite_stores_labels_and_parseable_probabilities(sqlite_engine, fraud_models, tmp_path):
    # Given the 3-class pipeline returning probabilities, published to SQLite (INSERTs, not COPY)
    pipeline = fraud_models["multiclass"]
    predictor = _import(tmp_path, pipeline, "probabilities")
    batch = _transactions(60, seed=4)
    _drop(tmp_path, batch)
    score_partition(
        predictor,
        sqlite_engine,
        job=JOB,
        partition=HOUR,
        input_root=str(tmp_path / "in"),
        dataset="rides",
        staging_root=str(tmp_path / "stage"),
        chunk_rows=1_000,
        reject_threshold=0.0,
    )
    stored = _stored(sqlite_engine)
    # Then the label is the pipeline's and the probabilities are a JSON object (not JSON text inside JSON)
    assert list(stored["label"]) == list(pipeline.predict(batch.to_dict("records")))
    first = stored["probabilities"][0]
    first = json.loads(first) if isinstance(first, str) else first
    assert isinstance(first, dict) and sum(first.values()) == pytest.approx(1.0)


def test_a_regressor_leaves_label_and_probabilities_null(pg_engine, predictor, tmp_path):
    # Given the demo regression bundle and a TLC-shaped file
    from tests.support.tlc import write_tlc_parquet

    write_tlc_parquet(tmp_path / "in" / "rides" / "dt=2026-03-01" / "hour=05" / "g.parquet", "green", 20)
    # When scored
    run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    # Then the class columns are NULL on every row
    stored = _stored(pg_engine)
    assert len(stored) == 20 and stored["label"].isna().all() and stored["probabilities"].isna().all()
