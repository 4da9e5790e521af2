"""What an imported model itself knows, checked before a manifest is written for it.

The features its DictVectorizer (or its Pipeline's columns) expects, against those a declaration produces;
and the task it performs (a regressor, or a binary or multiclass classifier) with what it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from scoring.errors import ConfigError, ModelLoadError
from scoring.model.bundle import feature_vectorizer, split_model
from scoring.model.declaration import Declaration, FeatureSpec
from scoring.model.inference import ModelFeatures, vocabulary_features
from scoring.model.manifest import RETURNS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """What kind of model this is and what it returns."""

    task: str = "regression"
    classes: tuple[Any, ...] | None = None
    positive_class: Any = None
    returns: str = "value"


def model_features_of(loaded: Any, fmt: str) -> ModelFeatures:
    """The model's vectorizer (if it has one up front), else the column names its Pipeline was fitted on."""
    vectorizer, model = feature_vectorizer(*split_model(loaded, fmt, "the model"))
    columns = getattr(model, "feature_names_in_", None) if vectorizer is None else None
    return ModelFeatures(vectorizer=vectorizer, frame_columns=None if columns is None else tuple(map(str, columns)))


def fit_to_model(declaration: Declaration, model: ModelFeatures, named_preset: str | None = None) -> Declaration:
    """The declaration cut to what the model reads; refused when it never produces a feature the model knows."""
    known = model.known_features()
    if not known:
        return declaration  # a Pipeline fitted on bare arrays: nothing to check against
    label = f"recipe {named_preset!r}" if named_preset else "the declaration"
    produced = declaration.feature_names()
    never_produced = sorted(known - set(produced))
    what = "DictVectorizer" if model.vectorizer is not None else "Pipeline"
    if never_produced:
        raise ModelLoadError(
            f"the model's {what} expects features {never_produced} that {label} never produces "
            f"(it produces {produced}); choose the preset the model was trained with, or leave out --features"
        )
    if model.vectorizer is not None:
        _check_kinds(declaration, vocabulary_features(model.vectorizer), label)
        features = tuple(f for f in declaration.features if f.name in known)
    else:
        # A frame goes to the Pipeline with exactly the columns it was fitted on, in that order.
        columns = model.frame_columns or ()
        features = (
            (FeatureSpec(declaration.features[0].name, "frame", tuple(columns)),)
            if declaration.features[0].kind == "frame"
            else tuple(f for f in declaration.features if f.name in known)
        )
    ignored = [f.name for f in declaration.features if f.kind != "frame" and f.name not in known]
    if ignored:
        log.warning("%s produces %s, which the model never saw: left out", label, ignored)
    # Inputs that no kept feature reads are not declared, so records need not carry them.
    used = {name for feature in features for name in feature.inputs}
    return Declaration(inputs=tuple(spec for spec in declaration.inputs if spec.name in used), features=features)


def _check_kinds(declaration: Declaration, vocabulary: dict[str, list[str] | None], label: str) -> None:
    """A number feature the model saw as text (or the reverse) would always be zero: refuse it."""
    for feature in declaration.features:
        if feature.name not in vocabulary:
            continue
        text_in_model = vocabulary[feature.name] is not None
        if text_in_model != (feature.kind != "number"):
            seen = "text (name=value)" if text_in_model else "a number"
            raise ModelLoadError(
                f"{label} makes {feature.name!r} a {feature.kind} feature but the model's DictVectorizer saw {seen}"
            )


def task_of(loaded: Any, returns: str | None = None, positive_class: str | None = None) -> Task:
    """Regression, or a binary or multiclass classifier (predict_proba and classes_), with what it returns."""
    estimator = loaded[1] if isinstance(loaded, (tuple, list)) else loaded
    final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    classes = getattr(final, "classes_", None)
    if not (hasattr(final, "predict_proba") and classes is not None):
        if returns not in (None, "value"):
            raise ConfigError(f"--returns {returns}: the model is a regressor, which returns a value")
        if positive_class is not None:
            raise ConfigError("--positive-class is for binary classifiers; the model is a regressor")
        return Task()
    labels = tuple(_json_value(c) for c in np.asarray(classes).tolist())
    task = "binary" if len(labels) == 2 else "multiclass"
    returns = returns or RETURNS[task][0]
    if returns not in RETURNS[task]:
        raise ConfigError(f"--returns {returns}: a {task} classifier returns {' or '.join(RETURNS[task])}")
    if task != "binary":
        if positive_class is not None:
            raise ConfigError(f"--positive-class is for binary classifiers; this one has {len(labels)} classes")
        return Task(task=task, classes=labels, returns=returns)
    positive = labels[1]
    if positive_class is not None:
        matches = [c for c in labels if str(c) == positive_class]
        if not matches:
            raise ConfigError(f"--positive-class must be one of the model's classes {list(labels)}")
        positive = matches[0]
    return Task(task=task, classes=labels, positive_class=positive, returns=returns)


def _json_value(value: Any) -> Any:
    """A class label as a JSON value; scikit-learn's classes are numbers, booleans or text."""
    if isinstance(value, (str, bool, int, float)):
        return value
    raise ModelLoadError(f"the model's classes must be numbers or text, not {type(value).__name__}")
