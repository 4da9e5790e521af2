"""A fraud classifier, not a ride model, through all three modes: every answer is predict_proba[:, 1].

batch  : Parquet partition (no id column) -> batch engine -> PostgreSQL predictions table, ids from file and row
online : POST /predict to webservice/ as shipped (python -m webservice.serve: Granian), over HTTP
stream : Kinesis (moto server, HTTP) -> `scoring stream run` -> lambda_function.py -> output stream
reference: the pickle itself, `dv.transform(dicts)` + `model.predict_proba`, no project code involved
"""

from __future__ import annotations

import json
import pickle

import pandas as pd
import pytest
import requests

from scoring.batch.partitions import PartitionKey
from scoring.cli import main
from scoring.demo.synthetic import write_partition
from scoring.model.predict import Predictor
from tests.integration.batch_helpers import run, stored
from tests.support.gunicorn import running_service
from tests.support.lambda_handler import HANDLER_PATH
from tests.webservice.generic_bundles import GenericModel, fraud_transactions

pytestmark = [pytest.mark.postgres, pytest.mark.aws]


@pytest.fixture(scope="module")
def transactions() -> dict[str, dict]:
    """Transactions by id, with edge amounts (zero, tiny, huge) before ordinary ones."""
    edges = [{"amount": amount, "merchant": "casino", "country": "NG"} for amount in (0.0, 1e-9, 250_000.0)]
    ordinary = fraud_transactions(150, seed=2024)
    return {f"t-{i}": t for i, t in enumerate(edges + ordinary)}


def reference(model: GenericModel, transactions: dict[str, dict]) -> dict[str, float]:
    vectorizer, estimator = pickle.loads((model.directory / "model.bin").read_bytes())
    probabilities = estimator.predict_proba(vectorizer.transform(list(transactions.values())))[:, 1]
    return dict(zip(transactions, probabilities.tolist(), strict=True))


def batch_mode(model: GenericModel, transactions: dict[str, dict], pg_engine, tmp_path) -> dict[str, float]:
    # One file without an id column: each record is named "<file>:<row>", so row i is transaction i.
    hour = PartitionKey.parse("2026-05-01T12")
    (written,) = write_partition(str(tmp_path / "in"), "rides", hour, pd.DataFrame(transactions.values()), files=1)
    run(Predictor(model.bundle), pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"), key=hour)
    rows = stored(pg_engine, hour)
    by_row = dict(zip(rows["record_id"], rows["prediction"], strict=True))
    file_name = written.rsplit("/", 1)[-1]
    return {key: by_row[f"{file_name}:{row}"] for row, key in enumerate(transactions) if f"{file_name}:{row}" in by_row}


def online_mode(model: GenericModel, transactions: dict[str, dict], tmp_path) -> dict[str, float]:
    # The bundle has no id field, so answers come back in request order and are matched by position.
    with running_service(tmp_path / "serve.log", SCORING_MODEL_URI=str(model.directory)) as (url, _):
        response = requests.post(f"{url}/predict", json={"records": list(transactions.values())}, timeout=30)
    assert response.status_code == 200, response.text
    answers = [p["fraud_probability"] for p in response.json()["predictions"]]
    return dict(zip(transactions, answers, strict=True))


def stream_mode(model, transactions, kinesis, new_stream, read_stream, stream_env, tmp_path) -> dict[str, float]:
    source, sink = new_stream(shards=2), new_stream()
    for transaction_id, transaction in transactions.items():
        payload = json.dumps({"record": transaction, "id": transaction_id})
        kinesis.put_record(StreamName=source, Data=payload.encode(), PartitionKey=transaction_id)
    stream_env(SCORING_MODEL_URI=str(model.directory), SCORING_STREAM_OUTPUT="kinesis", SCORING_OUTPUT_STREAM=sink)
    code = main(
        ["stream", "run", "--kinesis-stream", source, "--function", f"{HANDLER_PATH}:lambda_handler"]
        + ["--idle-timeout", "1", "--poll-seconds", "0.05", "--checkpoints", str(tmp_path / "checkpoints.json")]
    )
    assert code == 0
    outputs = read_stream(sink)
    assert {(m["model"], m["version"]) for m in outputs} == {("fraud", "3")}
    return {m["prediction"]["id"]: m["prediction"]["fraud_probability"] for m in outputs}


def test_online_stream_and_predict_proba_agree_exactly_for_a_fraud_classifier(
    fraud_model, transactions, pg_engine, kinesis, new_stream, read_stream, stream_env, tmp_path
):
    # Given transactions and scikit-learn's own probability of fraud for each
    expected = reference(fraud_model, transactions)
    # When each mode scores them, with no code written for this model
    answers = {
        "batch": batch_mode(fraud_model, transactions, pg_engine, tmp_path),
        "online": online_mode(fraud_model, transactions, tmp_path),
        "stream": stream_mode(fraud_model, transactions, kinesis, new_stream, read_stream, stream_env, tmp_path),
    }
    # Then each mode has every transaction, with bit-for-bit the reference probability
    for mode, predictions in answers.items():
        assert predictions.keys() == expected.keys(), mode
        mismatched = {key: (predictions[key], expected[key]) for key in expected if predictions[key] != expected[key]}
        assert mismatched == {}, f"{mode} differs from predict_proba"
