"""The scoring core: model bundles, input schema, features, prediction, partitions and the store.

This package never imports Airflow, Flask or Lambda code; the adapters import it.
"""

__version__ = "0.1.0"
