"""What the DAGs' trigger forms share: the deployment's settings as the form shows them, and the drift threshold."""

from __future__ import annotations

from airflow.sdk import Param

from scoring.errors import ConfigError
from scoring.settings import Settings


def deployed_settings() -> Settings | None:
    """The SCORING_* settings the workers will read, for the forms' defaults (Settings imports nothing heavy).

    A malformed value must not make a DAG vanish at parse: the form then shows no default, and the run
    fails on the setting's own one-line ConfigError.
    """
    try:
        return Settings.from_env()
    except ConfigError:
        return None


def drift_threshold_param(deployed: Settings | None) -> Param:
    """The Drift threshold field: a positive number (the run checks it is finite), the deployment's by default."""
    return Param(
        deployed.drift_threshold if deployed else 0.1,
        type=["null", "number"],
        exclusiveMinimum=0,
        title="Drift threshold",
        description="A feature or the prediction drifts when its drift statistic (Wasserstein distance normed "
        "by the reference's spread for numbers, Jensen-Shannon distance for text) passes this. Drift never "
        "fails the run: it is logged and updates the drift Asset.",
    )
