"""The one input validator, shared by batch, online and streaming.

Strict by design: a boolean is not a number, 10.7 is not an integer, a JSON string is not a
number, and null, NaN and infinity are refused unless the field is optional. A popular model
server quietly coerces such values and changes the prediction; refusing them is the point.

CSV is the one exception to "a string is not a number": a CSV file has no types, so its cells
arrive as text and are parsed (`text_input=True`); a cell that does not parse is refused.

Validation is columnar: typed columns (Parquet, pandas) are checked with vectorised operations,
and only columns of mixed Python objects (JSON) are walked value by value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from scoring.errors import InvalidInput
from scoring.model.record_ids import canonical_ids

FIELD_TYPES = ("integer", "number", "string")
MAX_EXACT_INTEGER = 2**53


@dataclass(frozen=True)
class FieldSpec:
    """One input field of a model: its name, type, whether it must be present, and bounds."""

    name: str
    type: str
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> FieldSpec:
        if raw.get("type") not in FIELD_TYPES:
            raise ValueError(
                f"input field {raw.get('name')!r} has type {raw.get('type')!r}; expected one of {FIELD_TYPES}"
            )
        return cls(
            name=str(raw["name"]),
            type=str(raw["type"]),
            required=bool(raw.get("required", True)),
            minimum=None if raw.get("minimum") is None else float(raw["minimum"]),  # type: ignore[arg-type]
            maximum=None if raw.get("maximum") is None else float(raw["maximum"]),  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "type": self.type, "required": self.required}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass(frozen=True)
class ValidationResult:
    """Rows that passed, with clean dtypes, and rows that did not, with a reason each.

    Both keep the input's index, so a caller can find the raw record behind every rejection.
    """

    valid: pd.DataFrame
    rejected: pd.Series  # index: the input rows; values: the reason text

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)


@dataclass(frozen=True)
class InputSchema:
    """The fields a model reads, plus the optional id field that names each record."""

    fields: tuple[FieldSpec, ...]
    id_field: str | None = None

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def validate_frame(
        self,
        frame: pd.DataFrame,
        *,
        require_id: bool = False,
        text_input: bool = False,
        absent: dict[str, np.ndarray] | None = None,
    ) -> ValidationResult:
        """Split a frame into valid rows (typed, schema columns only) and rejected rows with reasons.

        `absent` marks, per field, the rows whose record lacked the key (JSON), so that a missing
        field is told apart from an explicit null.
        """
        wanted = [*self.field_names, *([self.id_field] if self.id_field else [])]
        columns = {name: frame[name] for name in wanted if name in frame.columns}
        return self._validate_columns(columns, frame.index, require_id, text_input, absent)

    def _validate_columns(
        self,
        given: dict[str, pd.Series | np.ndarray],
        index: pd.Index,
        require_id: bool,
        text_input: bool,
        absent: dict[str, np.ndarray] | None,
    ) -> ValidationResult:
        # Columns are typed Series (frames) or object arrays of JSON values (records). Reasons are kept
        # as plain object arrays (None = fine) and become one Series at the end: per-field pandas
        # objects cost more than the checks themselves on a 100-record request.
        rows = len(index)
        reasons: list[np.ndarray] = []
        columns: dict[str, object] = {}
        for spec in self.fields:
            values, problems = _check_field(given.get(spec.name), rows, index, spec, text_input)
            if absent is not None and spec.required and spec.name in absent and absent[spec.name].any():
                problems[absent[spec.name]] = f"missing required field '{spec.name}'"
            columns[spec.name] = values
            reasons.append(problems)
        if self.id_field is not None:
            ids, problems = _check_id(given.get(self.id_field), rows, index, self.id_field, require_id)
            columns[self.id_field] = ids
            reasons.append(problems)
        reason = _join_reasons(reasons, rows)
        bad = pd.notna(reason)
        valid = pd.DataFrame(columns, index=index)
        return ValidationResult(
            valid=valid[~bad] if bad.any() else valid, rejected=pd.Series(reason[bad], index=index[bad], dtype=object)
        )

    def validate_records(self, records: list[object]) -> ValidationResult:
        """Validate JSON-decoded records (online and streaming); a non-object record is rejected alone."""
        not_objects = {
            i: f"record is {_type_name(r)}, not an object" for i, r in enumerate(records) if not isinstance(r, dict)
        }
        rows = [r if isinstance(r, dict) else {} for r in records]
        # Object columns keep True a bool and 10 an int (and 2**53 + 1 exact): the checks need the JSON types as sent.
        wanted = [*self.field_names, *([self.id_field] if self.id_field else [])]
        present = [key for key in wanted if any(key in row for row in rows)]
        columns: dict[str, pd.Series | np.ndarray] = {
            key: _object_array([row.get(key) for row in rows]) for key in present
        }
        absent = {name: np.array([name not in row for row in rows], dtype=bool) for name in self.field_names}
        result = self._validate_columns(columns, pd.RangeIndex(len(rows)), False, False, absent)
        if not not_objects:
            return result
        reasons = result.rejected.copy()
        for i, text in not_objects.items():
            reasons.loc[i] = text
        reasons = reasons.sort_index()
        return ValidationResult(valid=result.valid.drop(index=list(not_objects), errors="ignore"), rejected=reasons)

    def require_valid(self, records: list[object]) -> pd.DataFrame:
        """All records valid, or InvalidInput naming each bad record and field."""
        result = self.validate_records(records)
        if result.rejected_count:
            problems = [
                (int(i), _record_id(records[int(i)], self.id_field), str(r)) for i, r in result.rejected.items()
            ]
            first = problems[0]
            raise InvalidInput(f"record {first[0]}: {first[2]}", problems)
        return result.valid


def _record_id(record: object, id_field: str | None) -> object:
    if id_field and isinstance(record, dict):
        return record.get(id_field)
    return None


def _type_name(value: object) -> str:
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


def _object_array(values: list[object]) -> np.ndarray:
    """A 1-d object array that keeps each value as given (np.array would nest lists and cast numbers)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _join_reasons(reasons: list[np.ndarray], rows: int) -> np.ndarray:
    joined = np.full(rows, None, dtype=object)
    for problems in reasons:
        has = pd.notna(problems)
        if not has.any():
            continue
        joined[has] = [a if c is None else f"{c}; {a}" for c, a in zip(joined[has], problems[has], strict=True)]
    return joined


def _no_reasons(rows: int) -> np.ndarray:
    return np.full(rows, None, dtype=object)


def _check_field(
    column: pd.Series | np.ndarray | None, rows: int, index: pd.Index, spec: FieldSpec, text_input: bool
) -> tuple[object, np.ndarray]:
    if column is None:
        missing = np.full(rows, None, dtype=object) if spec.type == "string" else np.full(rows, np.nan)
        if spec.required:
            return missing, np.full(rows, f"missing required field '{spec.name}'", dtype=object)
        return missing, _no_reasons(rows)
    if spec.type == "string":
        return _check_string(column, index, spec)
    return _check_number(column, spec, text_input)


def _check_string(column: pd.Series | np.ndarray, index: pd.Index, spec: FieldSpec) -> tuple[pd.Series, np.ndarray]:
    reasons = _no_reasons(len(column))
    values = column if isinstance(column, np.ndarray) else column.to_numpy(dtype=object)
    is_null = pd.isna(values)
    not_str = np.fromiter((not isinstance(v, str) for v in values), dtype=bool, count=len(values)) & ~is_null
    if not_str.any():
        reasons[not_str] = [f"field '{spec.name}': expected a string, got {_type_name(v)}" for v in values[not_str]]
    if spec.required and is_null.any():
        reasons[is_null] = f"field '{spec.name}': is null"
    # A Series keeps dtype=object: from a bare array pandas would infer its string dtype and turn None into NaN.
    return pd.Series(values, index=index, dtype=object).where(~is_null, None), reasons


def _check_number(column: pd.Series | np.ndarray, spec: FieldSpec, text_input: bool) -> tuple[object, np.ndarray]:
    numeric, reasons = _as_float(column, spec, text_input)
    typed_ok = pd.isna(reasons)
    is_nan = np.isnan(numeric) & typed_ok
    if spec.required and is_nan.any():
        reasons[is_nan] = f"field '{spec.name}': is null or NaN"
    is_inf = np.isinf(numeric) & typed_ok
    if is_inf.any():
        reasons[is_inf] = f"field '{spec.name}': is not finite"
    finite = np.isfinite(numeric) & typed_ok
    if spec.type == "integer":
        fractional = finite & (np.floor(numeric) != numeric)
        if fractional.any():
            reasons[fractional] = [f"field '{spec.name}': {_fmt(v)} is not an integer" for v in numeric[fractional]]
        # From 2**53 on a float64 no longer holds every integer (2**53 + 1 reads as 2**53), so the value
        # could have changed already: refuse the whole range rather than store a neighbour.
        too_large = finite & ~fractional & (np.abs(numeric) >= MAX_EXACT_INTEGER)
        if too_large.any():
            reasons[too_large] = f"field '{spec.name}': is too large for an integer (it must be below 2**53)"
    if spec.minimum is not None:
        below = finite & (numeric < spec.minimum)
        if below.any():
            reasons[below] = [
                f"field '{spec.name}': {_fmt(v)} is below the minimum {_fmt(spec.minimum)}" for v in numeric[below]
            ]
    if spec.maximum is not None:
        above = finite & (numeric > spec.maximum)
        if above.any():
            reasons[above] = [
                f"field '{spec.name}': {_fmt(v)} is above the maximum {_fmt(spec.maximum)}" for v in numeric[above]
            ]
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
        problem[column.notna().to_numpy()] = f"field '{spec.name}': expected {_expected(spec)}, got a boolean"
        return np.full(rows, np.nan), problem
    if pd.api.types.is_numeric_dtype(dtype):
        return column.to_numpy(dtype=float, na_value=np.nan), _no_reasons(rows)
    if text_input:
        return _parse_text(column, spec)
    return _classify_objects(column.to_numpy(dtype=object), spec)


def _expected(spec: FieldSpec) -> str:
    return "an integer" if spec.type == "integer" else "a number"


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
        problem[position] = f"field '{spec.name}': {_short(value)} is not {_expected(spec)}"
    return parsed, problem


def _classify_objects(values: np.ndarray, spec: FieldSpec) -> tuple[np.ndarray, np.ndarray]:
    out = np.full(len(values), np.nan)
    problem = _no_reasons(len(values))
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            problem[i] = f"field '{spec.name}': expected {_expected(spec)}, got a boolean"
        elif isinstance(v, numbers.Real):
            try:
                out[i] = float(v)
            except OverflowError:  # an integer of hundreds of digits
                out[i] = math.inf
        elif isinstance(v, Decimal):
            # A Parquet decimal column: a number. float() rounds it to the nearest double, as a float column would
            # hold it; NaN and infinities go through the checks every number does.
            out[i] = float(v) if not v.is_snan() else math.nan
        else:
            problem[i] = f"field '{spec.name}': expected {_expected(spec)}, got {_type_name(v)}"
    return out, problem


def _fmt(value: float) -> str:
    """A number as a person writes it: 3 rather than 3.0 or np.float64(3.0)."""
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def _short(value: object, limit: int = 20) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_id(
    column: pd.Series | np.ndarray | None, rows: int, index: pd.Index, id_field: str, required: bool
) -> tuple[object, np.ndarray]:
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
        reasons[has_reason] = [f"id field '{id_field}': {reason}" for reason in refused[has_reason]]
    if required:
        missing = ids.isna().to_numpy() & ~has_reason
        if missing.any():
            reasons[missing] = f"id field '{id_field}': is null"
    return ids, reasons
