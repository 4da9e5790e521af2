"""The reasons a value is refused, worded once: the columnar checks and the per-record checks of the small-request
path (scoring.model.checks) both take them from here, so the two paths cannot drift apart in what they say.

Reasons name the field and never echo more than a short prefix of a value.
"""

from __future__ import annotations

import numbers
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scoring.model.schema import FieldSpec


def type_name(value: object) -> str:
    """What a JSON value is, as a rejection names it ("a boolean", "an array"), never the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (numbers.Real, Decimal)):
        return "a number"
    if isinstance(value, numbers.Number):
        return f"a {type(value).__name__} number"  # complex: not a real number, so named by kind
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def missing_field(name: str) -> str:
    return f"missing required field '{name}'"


def not_a_string(spec: FieldSpec, value: object) -> str:
    return f"field '{spec.name}': expected a string, got {type_name(value)}"


def string_is_null(spec: FieldSpec) -> str:
    return f"field '{spec.name}': is null"


def not_allowed(spec: FieldSpec, value: object) -> str:
    return f"field '{spec.name}': {_short(value)} is not one of its {len(spec.values or ())} allowed values"


def wrong_type(spec: FieldSpec, value: object) -> str:
    return f"field '{spec.name}': expected {_expected(spec)}, got {type_name(value)}"


def number_is_null(spec: FieldSpec) -> str:
    return f"field '{spec.name}': is null or NaN"


def not_finite(spec: FieldSpec) -> str:
    return f"field '{spec.name}': is not finite"


def not_an_integer(spec: FieldSpec, value: float) -> str:
    return f"field '{spec.name}': {_fmt(value)} is not an integer"


def too_large_integer(spec: FieldSpec) -> str:
    return f"field '{spec.name}': is too large for an integer (it must be below 2**53)"


def below_minimum(spec: FieldSpec, value: float) -> str:
    return f"field '{spec.name}': {_fmt(value)} is below the minimum {_fmt(spec.minimum)}"  # type: ignore[arg-type]


def above_maximum(spec: FieldSpec, value: float) -> str:
    return f"field '{spec.name}': {_fmt(value)} is above the maximum {_fmt(spec.maximum)}"  # type: ignore[arg-type]


def unparsable_text(spec: FieldSpec, value: object) -> str:
    return f"field '{spec.name}': {_short(value)} is not {_expected(spec)}"


def id_problem(id_field: str, reason: str) -> str:
    return f"id field '{id_field}': {reason}"


def _expected(spec: FieldSpec) -> str:
    return "an integer" if spec.type == "integer" else "a number"


def _fmt(value: float) -> str:
    """A number as a person writes it: 3 rather than 3.0 or np.float64(3.0)."""
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def _short(value: object, limit: int = 20) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
