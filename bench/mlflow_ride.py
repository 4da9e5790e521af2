"""The demo model as a team would hand it to `mlflow models serve`: a pyfunc doing the tutorial's per-row dicts.

bench/online_setup.py saves it with the bundle's artifact; MLflow loads this file from the model's code folder.
"""

from __future__ import annotations

import pickle

import mlflow.pyfunc


class RidePyfunc(mlflow.pyfunc.PythonModel):
    """DictVectorizer + model on {"PU_DO": "<PU>_<DO>", "trip_distance": d}, one dict per row."""

    def load_context(self, context):
        with open(context.artifacts["model"], "rb") as artifact:
            self.dv, self.model = pickle.load(artifact)

    def predict(self, context, model_input, params=None):
        dicts = [
            {"PU_DO": f"{row.PULocationID}_{row.DOLocationID}", "trip_distance": float(row.trip_distance)}
            for row in model_input.itertuples(index=False)
        ]
        return self.model.predict(self.dv.transform(dicts))
