"""Any bundle, no code change: a fraud classifier and a multiclass risk model served as their manifests declare."""

from __future__ import annotations

import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.webservice.generic_bundles import COUNTRIES, RISK_CLASSES, fraud_transactions, risk_cases


@pytest.fixture
def fraud_client(make_app, fraud_model):
    return make_app(bundle=fraud_model.bundle).test_client()


@pytest.fixture
def risk_client(make_app, risk_model):
    return make_app(bundle=risk_model.bundle).test_client()


def documented_schema(client, status: str) -> jsonschema.Draft202012Validator:
    """A validator for /predict's documented answer with `status`, references resolved inside the document."""
    document = client.get("/openapi.json").get_json()
    schema = document["paths"]["/predict"]["post"]["responses"][status]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def test_one_transaction_is_answered_with_the_probability_of_fraud(fraud_client, fraud_model):
    # Given a transaction, sent flat as the manifest declares it
    transaction = {"amount": 912.5, "merchant": "casino", "country": "NG"}
    # When it is posted
    response = fraud_client.post("/predict", json=transaction)
    # Then the answer is scikit-learn's predict_proba[:, 1], to the bit, under the manifest's output name
    assert response.status_code == 200, response.get_json()
    expected = fraud_model.predict_proba([transaction])[0, 1]
    assert response.get_json() == {"fraud_probability": expected, "model_name": "fraud", "model_version": "3"}
    assert 0.5 < expected < 1  # a probability, not the label 1.0
    documented_schema(fraud_client, "200").validate(response.get_json())


def test_a_batch_of_transactions_answers_predict_proba_in_order(fraud_client, fraud_model):
    # Given 200 transactions of every merchant and country; the bundle has no id field, so an "id" is just ignored
    transactions = fraud_transactions(200, seed=41)
    transactions[0] = {**transactions[0], "id": "t-0"}
    # When they are posted as one batch
    response = fraud_client.post("/predict", json={"records": transactions})
    # Then each answer is predict_proba[:, 1] of its transaction, and none carries an id
    assert response.status_code == 200, response.get_json()
    expected = fraud_model.predict_proba([{k: r[k] for k in ("amount", "merchant", "country")} for r in transactions])
    assert response.get_json()["predictions"] == [{"fraud_probability": p} for p in expected[:, 1].tolist()]
    assert len(set(expected[:, 1].tolist())) > 150
    documented_schema(fraud_client, "200").validate(response.get_json())


def test_a_country_outside_the_declared_values_is_refused_in_one_line(fraud_client):
    # Given a transaction from a country the manifest does not allow, beside a valid one
    secret = "ZZ" + "q" * 300
    records = [
        {"amount": 10.0, "merchant": "books", "country": "DE"},
        {"amount": 1, "merchant": "x", "country": secret},
    ]
    # When the batch is posted
    response = fraud_client.post("/predict", json={"records": records})
    # Then it is refused (422), the one problem names record 1 and the field in one line, and the value is not echoed
    assert response.status_code == 422
    (problem,) = response.get_json()["error"]["problems"]
    assert problem["index"] == 1 and "country" in problem["reason"]
    assert "\n" not in problem["reason"] and secret not in response.get_data(as_text=True)
    documented_schema(fraud_client, "422").validate(response.get_json())


def test_the_openapi_document_is_valid_and_built_from_the_fraud_manifest(fraud_client):
    # When the document is fetched
    document = fraud_client.get("/openapi.json").get_json()
    # Then it is valid OpenAPI, and its record is the manifest's: names, types, bounds, allowed countries, no id
    validate(document)
    schemas = document["components"]["schemas"]
    record = schemas["Record"]
    assert list(record["properties"]) == ["amount", "merchant", "country"]
    assert record["required"] == ["amount", "merchant", "country"]
    assert record["properties"]["amount"] == {"type": "number", "minimum": 0.0}
    assert record["properties"]["country"] == {"type": "string", "enum": COUNTRIES}
    # And the answer is a probability under the manifest's output name, and the title is the model's
    assert schemas["Prediction"]["required"] == ["fraud_probability", "model_name", "model_version"]
    assert schemas["Prediction"]["properties"]["fraud_probability"]["maximum"] == 1
    assert not any(name in str(document) for name in ("ride", "duration", "PULocationID", "trip_distance"))
    assert document["info"]["title"] == "fraud prediction service"


def test_model_shows_what_the_bundle_declares(fraud_client):
    # When /model is asked
    body = fraud_client.get("/model").get_json()
    # Then it names the inputs, the absent id field, the output, the task, classes and what is returned
    assert [spec["name"] for spec in body["inputs"]] == ["amount", "merchant", "country"]
    assert body["inputs"][2]["values"] == COUNTRIES
    assert (body["id_field"], body["output"], body["task"]) == (None, "fraud_probability", "binary")
    assert (body["classes"], body["positive_class"], body["returns"]) == ([0, 1], 1, "probability")
    assert "source" in body and body["input_schema"]["properties"]["country"]["enum"] == COUNTRIES


def test_a_multiclass_model_answers_the_label_and_every_class_probability(risk_client, risk_model):
    # Given cases, some with an id under the manifest's id field
    cases = risk_cases(60, seed=9)
    records = [{**case, "case_id": f"c-{i}"} if i % 2 else case for i, case in enumerate(cases)]
    # When they are posted
    response = risk_client.post("/predict", json={"records": records})
    # Then each answer is the most probable class, its probabilities as fields, and the id when it was given
    assert response.status_code == 200, response.get_json()
    probabilities = risk_model.predict_proba(cases)
    expected = []
    for i, row in enumerate(probabilities.tolist()):
        answer = {"risk": RISK_CLASSES[row.index(max(row))], "probabilities": dict(zip(RISK_CLASSES, row, strict=True))}
        expected.append({**answer, "case_id": f"c-{i}"} if i % 2 else answer)
    assert response.get_json()["predictions"] == expected
    assert len({answer["risk"] for answer in expected}) == 3  # every class answered at least once
    documented_schema(risk_client, "200").validate(response.get_json())


def test_a_single_multiclass_answer_matches_its_documented_schema(risk_client, risk_model):
    # Given one case
    case = {"age": 70, "region": "north"}
    # When it is posted, then the label and probabilities come back as fields beside the model's name
    body = risk_client.post("/predict", json=case).get_json()
    row = risk_model.predict_proba([case])[0].tolist()
    assert body == {
        "risk": "high",
        "probabilities": dict(zip(RISK_CLASSES, row, strict=True)),
        "model_name": "risk",
        "model_version": "7",
    }
    documented_schema(risk_client, "200").validate(body)
    # And the document names the classes as the output's values and each one's probability
    prediction = risk_client.get("/openapi.json").get_json()["components"]["schemas"]["Prediction"]
    assert prediction["properties"]["risk"] == {"type": "string", "enum": RISK_CLASSES}
    assert prediction["properties"]["probabilities"]["required"] == RISK_CLASSES


def test_a_classifier_imported_with_no_features_is_served_as_predict_proba(make_app, imported_fraud_model):
    # Given the fraud pickle imported with no --features (inputs, features, task and classes all inferred)
    client = make_app(bundle=imported_fraud_model.bundle).test_client()
    transactions = fraud_transactions(100, seed=77)
    # When the transactions are posted
    response = client.post("/predict", json={"records": transactions})
    # Then every answer is predict_proba[:, 1], and the document names the inferred inputs
    assert response.status_code == 200, response.get_json()
    expected = imported_fraud_model.predict_proba(transactions)[:, 1].tolist()
    assert [p["fraud_probability"] for p in response.get_json()["predictions"]] == expected
    document = client.get("/openapi.json").get_json()
    validate(document)
    # (and the generic id field an inferred import names records by)
    assert set(document["components"]["schemas"]["Record"]["properties"]) == {"amount", "merchant", "country", "id"}
