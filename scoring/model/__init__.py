"""The model kernel: bundles and who may load them, declared inputs and features, record ids, prediction.

It knows nothing of partitions, databases or streams; batch, stream, the web service and the demo build on it.
"""

from scoring.model.bundle import ModelBundle, load_bundle, read_manifest
from scoring.model.declaration import PRESETS, Declaration, FeatureSpec, preset
from scoring.model.manifest import Manifest
from scoring.model.predict import Predictor
from scoring.model.records import RecordOutcome, score_records
from scoring.model.trust import BundleTrust

__all__ = [
    "PRESETS",
    "BundleTrust",
    "Declaration",
    "FeatureSpec",
    "Manifest",
    "ModelBundle",
    "Predictor",
    "RecordOutcome",
    "load_bundle",
    "preset",
    "read_manifest",
    "score_records",
]
