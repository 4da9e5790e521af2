"""Schema-driven fuzzing of POST /predict: over a thousand generated requests, and not one 5xx.

Records are drawn from the loaded model's input schema, each field either a plausible value or any
JSON at all, with fields dropped and extra ones added; bodies around them range from well-formed
batches to random bytes, under assorted content types. Every answer must be a documented JSON
shape, and every 200 must carry exactly the predictions the scoring core gives for those records.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import predict_valid

MIN_REQUESTS = 1000

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
any_json = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def plausible_value(spec) -> st.SearchStrategy:
    """Values of the field's type near and beyond its bounds."""
    low = spec.minimum if spec.minimum is not None else -1e6
    if spec.type == "integer":
        return st.integers(min_value=int(low) - 2, max_value=300)
    if spec.type == "number":
        return st.floats(min_value=low - 2, max_value=1e6, allow_nan=False) | st.integers(min_value=-2, max_value=500)
    return st.text(max_size=10)


def records_for(manifest) -> st.SearchStrategy:
    """One record: each input field plausible, junk, or absent; maybe an id; maybe extra fields."""
    fields = {spec.name: st.one_of(plausible_value(spec), plausible_value(spec), any_json) for spec in manifest.inputs}
    return st.builds(
        lambda present, absent, record_id, extra: {
            **extra,
            **{name: value for name, value in present.items() if name not in absent},
            **({manifest.id_field: record_id} if record_id is not None else {}),
        },
        st.fixed_dictionaries(fields),
        st.sets(st.sampled_from([spec.name for spec in manifest.inputs]), max_size=1),
        st.none() | st.integers() | st.text(max_size=8) | any_json,
        st.dictionaries(st.text(max_size=6), json_scalars, max_size=2),
    )


def bodies_for(manifest) -> st.SearchStrategy:
    """Request bodies as bytes: single records, batches, arbitrary JSON, mangled JSON, and random bytes."""
    record = records_for(manifest)
    documents = st.one_of(
        record,
        record,
        st.fixed_dictionaries({"records": st.lists(st.one_of(record, record, any_json), max_size=12)}),
        any_json,
    )
    encoded = documents.map(lambda document: json.dumps(document, allow_nan=True).encode())
    mangled = st.tuples(encoded, st.integers(min_value=0, max_value=200), st.binary(max_size=4)).map(
        lambda parts: parts[0][: parts[1]] + parts[2] + parts[0][parts[1] :]
    )
    return st.one_of(encoded, encoded, encoded, mangled, st.binary(max_size=64))


content_types = st.sampled_from(
    ["application/json"] * 8 + ["application/json; charset=utf-8", "text/plain", "application/x-ndjson", ""]
)


@pytest.mark.slow
def test_generated_requests_never_get_a_5xx(make_app, predictor):
    client = make_app(max_request_records=10).test_client()
    document = client.get("/openapi.json").get_json()
    documented = document["paths"]["/predict"]["post"]["responses"]
    manifest = predictor.bundle.manifest
    statuses: dict[int, int] = {}

    @settings(
        max_examples=MIN_REQUESTS + 200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies_for(manifest), content_type=content_types)
    def post_one(body: bytes, content_type: str) -> None:
        response = client.post("/predict", data=body, content_type=content_type or None)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.get_data(as_text=True)
        assert str(response.status_code) in documented, response.status_code
        schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
        answer = response.get_json()
        jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(answer)
        if response.status_code == 200:
            sent = json.loads(body)
            batch = "records" in sent
            records = sent["records"] if batch else [sent]
            expected = predict_valid(predictor, records).tolist()
            got = [p[manifest.output] for p in answer["predictions"]] if batch else [answer[manifest.output]]
            assert got == expected

    post_one()
    assert sum(statuses.values()) >= MIN_REQUESTS, statuses
    # The generator must reach both sides: scored requests and each kind of refusal.
    assert {200, 400, 415, 422} <= set(statuses), statuses
