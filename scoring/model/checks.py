"""Column checks behind the input validator: one field's values become typed values and a reason per row.

Typed columns (Parquet, pandas) are checked with vectorised operations; object arrays of JSON values
(online, stream) are walked value by value, so that True stays a boolean and 10 an integer as sent.
How a refusal is worded is scoring.model.reasons.
"""

from __future__ import annotations

import math
import numbers
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scoring.model.reasons import (
    above_maximum,
    below_minimum,
    id_problem,
    missing_field,
    not_a_string,
    not_allowed,
    not_an_integer,
    not_finite,
    number_is_null,
    string_is_null,
    too_large_integer,
    unparsable_text,
    wrong_type,
)
from scoring.model.record_ids import canonical_ids

if TYPE_CHECKING:
    from scoring.model.schema import FieldSpec

# From 2**53 on a float64 no longer holds every integer.
MAX_EXACT_INTEGER = 2**53


def number_of(spec: FieldSpec, value: object) -> tuple[float, str | None]:
    """A JSON value of a number field as float64 (NaN for null), or NaN and the reason its type is wrong."""
    if value is None:
        return math.nan, None
    if isinstance(value, (bool, np.bool_)):
        return math.nan, wrong_type(spec, True)
    if isinstance(value, numbers.Real):
        try:
            return float(value), None
        except OverflowError:  # an integer of hundreds of digits
            return math.inf, None
    if isinstance(value, Decimal):
        # A Parquet decimal column: a number. float() rounds it to the nearest double, as a float column would
        # hold it; NaN and infinities go through the checks every number does.
        return (float(value) if not value.is_snan() else math.nan), None
    return math.nan, wrong_type(spec, value)


def is_missing(value: object) -> bool:
    """pandas' notion of a missing scalar (None, NaN, NA, NaT, a NaN Decimal); containers are values, not missing."""
    if value is None:
        return True
    if isinstance(value, (str, int, list, dict, tuple)):
        return False
    if isinstance(value, Decimal):
        return value.is_nan()  # pd.isna compares a signalling NaN, which raises InvalidOperation
    if not pd.api.types.is_scalar(value):
        return False  # an array or a Series: pd.isna would answer per element, as pd.isna of a column does not
    return bool(pd.isna(value))


def missing_mask(values: np.ndarray) -> np.ndarray:
    """is_missing of every value of an object array, vectorised unless a Decimal is among them."""
    try:
        return pd.isna(values)
    except InvalidOperation:  # a Decimal sNaN: pandas compares it, which raises; is_missing does not
        return np.fromiter((is_missing(v) for v in values), dtype=bool, count=len(values))


def check_json_value(spec: FieldSpec, value: object, present: bool) -> tuple[object, str | None]:
    """One JSON value of one field, by the rules the columnar checks apply: its typed value and the reason, if any.

    The typed value is the string, the float, or the int (integer fields); None stands for null.
    `present` is False when the record lacks the key (a required field then reads "missing required field").
    """
    if spec.type == "string":
        typed, reason = _string_value(spec, value)
    else:
        typed, reason = _number_value(spec, value)
    if not present and spec.required:
        return None, missing_field(spec.name)
    return typed, reason


def plain_rule(spec: FieldSpec) -> tuple[bool, bool, float, float, frozenset[str] | None]:
    """What a plainly valid JSON value of this field is, for check_record's shortcut over whole records:
    (a string field, an integer field, lowest, highest, allowed texts or None).

    The shortcut only ever accepts: an exact str (among the allowed texts, if any) for a string field; an exact
    int or float within the bounds and below 2**53 in size (and whole, for an integer field) for a number
    field. Every rule of check_json_value lets those through unchanged; anything else goes to it for a reason.
    """
    low = spec.minimum if spec.minimum is not None else -math.inf
    high = spec.maximum if spec.maximum is not None else math.inf
    allowed = frozenset(spec.values) if spec.values is not None else None
    return spec.type == "string", spec.type == "integer", low, high, allowed


def _string_value(spec: FieldSpec, value: object) -> tuple[object, str | None]:
    if isinstance(value, str):
        if spec.values is not None and value not in spec.values:
            return None, not_allowed(spec, value)
        return value, None
    if is_missing(value):
        return None, string_is_null(spec) if spec.required else None
    return None, not_a_string(spec, value)


def _number_value(spec: FieldSpec, value: object) -> tuple[object, str | None]:
    # Each later rule overwrites an earlier one's reason, exactly as the columnar checks assign them in turn.
    number, reason = number_of(spec, value)
    if reason is not None:
        return None, reason
    if math.isnan(number):
        return None, number_is_null(spec) if spec.required else None
    if math.isinf(number):
        return None, not_finite(spec)
    if spec.type == "integer":
        if not number.is_integer():
            reason = not_an_integer(spec, number)
        elif abs(number) >= MAX_EXACT_INTEGER:
            reason = too_large_integer(spec)
    if spec.minimum is not None and number < spec.minimum:
        reason = below_minimum(spec, number)
    if spec.maximum is not None and number > spec.maximum:
        reason = above_maximum(spec, number)
    if reason is not None:
        return None, reason
    return (int(number) if spec.type == "integer" else number), None


def _no_reasons(rows: int) -> np.ndarray:
    return np.full(rows, None, dtype=object)


def check_field(
    column: pd.Series | np.ndarray | None, rows: int, index: pd.Index, spec: FieldSpec, text_input: bool
) -> tuple[object, np.ndarray]:
    """One input column as its typed values, plus a reason (or None) per row; None for a column not sent."""
    if column is None:
        missing = np.full(rows, None, dtype=object) if spec.type == "string" else np.full(rows, np.nan)
        if spec.required:
            return missing, np.full(rows, missing_field(spec.name), dtype=object)
        return missing, _no_reasons(rows)
    if spec.type == "string":
        return _check_string(column, index, spec)
    return _check_number(column, spec, text_input)


def _check_string(column: pd.Series | np.ndarray, index: pd.Index, spec: FieldSpec) -> tuple[pd.Series, np.ndarray]:
    reasons = _no_reasons(len(column))
    values = column if isinstance(column, np.ndarray) else column.to_numpy(dtype=object)
    is_null = missing_mask(values)
    not_str = np.fromiter((not isinstance(v, str) for v in values), dtype=bool, count=len(values)) & ~is_null
    if not_str.any():
        reasons[not_str] = [not_a_string(spec, v) for v in values[not_str]]
    if spec.required and is_null.any():
        reasons[is_null] = string_is_null(spec)
    if spec.values is not None:
        outside = ~pd.Series(values, dtype=object).isin(spec.values).to_numpy() & ~is_null & ~not_str
        if outside.any():
            reasons[outside] = [not_allowed(spec, v) for v in values[outside]]
    # A Series keeps dtype=object: from a bare array pandas would infer its string dtype and turn None into NaN.
    return pd.Series(values, index=index, dtype=object).where(~is_null, None), reasons


def _check_number(column: pd.Series | np.ndarray, spec: FieldSpec, text_input: bool) -> tuple[object, np.ndarray]:
    numeric, reasons = _as_float(column, spec, text_input)
    typed_ok = pd.isna(reasons)
    is_nan = np.isnan(numeric) & typed_ok
    if spec.required and is_nan.any():
        reasons[is_nan] = number_is_null(spec)
    is_inf = np.isinf(numeric) & typed_ok
    if is_inf.any():
        reasons[is_inf] = not_finite(spec)
    finite = np.isfinite(numeric) & typed_ok
    if spec.type == "integer":
        # Only finite values are floored: a signalling NaN's payload would warn "invalid value".
        whole = np.where(finite, numeric, 0.0)
        fractional = finite & (np.floor(whole) != whole)
        if fractional.any():
            reasons[fractional] = [not_an_integer(spec, v) for v in numeric[fractional]]
        # From 2**53 on a float64 no longer holds every integer (2**53 + 1 reads as 2**53), so the value
        # could have changed already: refuse the whole range rather than store a neighbour.
        too_large = finite & ~fractional & (np.abs(numeric) >= MAX_EXACT_INTEGER)
        if too_large.any():
            reasons[too_large] = too_large_integer(spec)
    if spec.minimum is not None:
        below = finite & (numeric < spec.minimum)
        if below.any():
            reasons[below] = [below_minimum(spec, v) for v in numeric[below]]
    if spec.maximum is not None:
        above = finite & (numeric > spec.maximum)
        if above.any():
            reasons[above] = [above_maximum(spec, v) for v in numeric[above]]
    if spec.type != "integer":
        return numeric, reasons
    usable = pd.isna(reasons) & np.isfinite(numeric)
    if spec.required:
        # Rejected rows are dropped by the caller; zero-fill them so the int64 cast cannot fail.
        return np.where(usable, numeric, 0).astype(np.int64), reasons
    return pd.array(np.where(usable, numeric, np.nan), dtype="Float64").astype("Int64"), reasons


def _as_float(column: pd.Series | np.ndarray, spec: FieldSpec, text_input: bool) -> tuple[np.ndarray, np.ndarray]:
    """The column as float64, plus a reason (or None) per value: the type problems."""
    if isinstance(column, np.ndarray):  # JSON values as sent
        return _classify_objects(column, spec)
    dtype = column.dtype
    rows = len(column)
    if pd.api.types.is_bool_dtype(dtype):
        problem = _no_reasons(rows)
        problem[column.notna().to_numpy()] = wrong_type(spec, True)
        return np.full(rows, np.nan), problem
    if pd.api.types.is_numeric_dtype(dtype):
        return column.to_numpy(dtype=float, na_value=np.nan), _no_reasons(rows)
    if text_input:
        return _parse_text(column, spec)
    return _classify_objects(column.to_numpy(dtype=object), spec)


def _parse_text(column: pd.Series, spec: FieldSpec) -> tuple[np.ndarray, np.ndarray]:
    text = column.to_numpy(dtype=object)
    parsed = pd.to_numeric(column.astype(object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    problem = _no_reasons(len(text))
    unparsable = np.isnan(parsed) & column.notna().to_numpy()
    # "nan" and "" parse to NaN but are nulls, not bad text; anything else that failed is bad text.
    for position in np.flatnonzero(unparsable):
        value = text[position]
        if isinstance(value, str) and value.strip().lower() in ("", "nan", "null", "none"):
            continue
        problem[position] = unparsable_text(spec, value)
    return parsed, problem


def _classify_objects(values: np.ndarray, spec: FieldSpec) -> tuple[np.ndarray, np.ndarray]:
    out = np.full(len(values), np.nan)
    problem = _no_reasons(len(values))
    for i, v in enumerate(values):
        out[i], problem[i] = number_of(spec, v)
    return out, problem


def check_id(
    column: pd.Series | np.ndarray | None, rows: int, index: pd.Index, id_field: str, required: bool
) -> tuple[object, np.ndarray]:
    """The id column as canonical text (scoring.model.record_ids), plus a reason (or None) per row."""
    if column is None:
        ids = np.full(rows, None, dtype=object)
        if required:
            return ids, np.full(rows, f"missing id field '{id_field}'", dtype=object)
        return ids, _no_reasons(rows)
    # JSON values arrive as an object array: there a NaN was sent on purpose; in a typed column it means null.
    from_json = isinstance(column, np.ndarray)
    series = pd.Series(column, index=index, dtype=object) if from_json else column
    ids, refused = canonical_ids(series, nan_is_null=not from_json)
    reasons = _no_reasons(rows)
    has_reason = pd.notna(refused)
    if has_reason.any():
        reasons[has_reason] = [id_problem(id_field, reason) for reason in refused[has_reason]]
    if required:
        missing = ids.isna().to_numpy() & ~has_reason
        if missing.any():
            reasons[missing] = id_problem(id_field, "is null")
    return ids, reasons
