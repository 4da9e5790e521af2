"""The Assets the DAGs update: one name for each, shared by the DAG's outlets and the tasks that emit events."""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias


def predictions_asset(dag_id: str) -> Asset:
    """The Asset a successful publish updates; downstream DAGs can be scheduled on it."""
    return Asset(name=f"{dag_id}.predictions", uri=f"scoring://predictions/{dag_id}")


def drift_asset(dag_id: str) -> Asset:
    """The Asset a run whose partition (or traffic hour) drifted updates: a retraining DAG can be scheduled on it."""
    return Asset(name=f"{dag_id}.drift", uri=f"scoring://drift/{dag_id}")


def drift_alias(dag_id: str) -> AssetAlias:
    """A DAG's outlet for drift: through an alias, the event is emitted only when something drifted."""
    return AssetAlias(name=f"{dag_id}.drift_alias")
