"""The ceiling of the web stack: a Flask app that parses the request body as /predict does and answers a constant.

bench/online.sh serves it under the same server and settings as the service, so project/ceiling says how
much of what the server and Flask can do the model path leaves.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/predict")
def predict():
    """Parse the JSON body, score nothing, answer a constant of the service's shape."""
    body = request.get_json(force=True, silent=True)
    records = body.get("records") if isinstance(body, dict) and "records" in body else [body]
    return jsonify({"predictions": [{"duration": 0.0} for _ in records or ()]})


@app.get("/ready")
def ready():
    """Ready as soon as the process is up: there is no model to load."""
    return jsonify({"status": "ready"})
