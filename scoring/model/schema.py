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

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from scoring.model.checks import (
    MAX_EXACT_INTEGER,
    check_field,
    check_id,
    check_json_value,
    plain_rule,
)
from scoring.model.reasons import id_problem, type_name
from scoring.model.record_ids import MAX_ID_LENGTH, canonical_id

FIELD_TYPES = ("integer", "number", "string")


@dataclass(frozen=True)
class FieldSpec:
    """One input field of a model: its name, type, whether it must be present, bounds, and allowed text values."""

    name: str
    type: str
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    # For a string input: the only values it may take (None: any text).
    values: tuple[str, ...] | None = None

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
            values=_allowed_values(raw),
        )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "type": self.type, "required": self.required}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.values is not None:
            out["values"] = list(self.values)
        return out


def _allowed_values(raw: Mapping[str, object]) -> tuple[str, ...] | None:
    """The `values` of a string input: a non-empty list of strings, or None when absent."""
    values = raw.get("values")
    if values is None:
        return None
    if raw.get("type") != "string":
        raise ValueError(f"input field {raw.get('name')!r}: 'values' is allowed only for a string input")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"input field {raw.get('name')!r}: 'values' must be a non-empty list of strings")
    return tuple(dict.fromkeys(values))


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
    ) -> ValidationResult:
        """Split a frame (batch: Parquet or CSV) into valid rows (typed, schema columns only) and rejected rows.

        `require_id` refuses rows without an id; `text_input` parses number cells sent as text (CSV).
        """
        wanted = [*self.field_names, *([self.id_field] if self.id_field else [])]
        columns = {name: frame[name] for name in wanted if name in frame.columns}
        return self._validate_columns(columns, frame.index, require_id, text_input, None, None)

    def _validate_columns(
        self,
        given: dict[str, pd.Series | np.ndarray],
        index: pd.Index,
        require_id: bool,
        text_input: bool,
        absent: dict[str, np.ndarray] | None,
        not_objects: np.ndarray | None,
    ) -> ValidationResult:
        """The shared core: `absent` marks, per field, the JSON records that lacked the key, so that a
        missing field is told apart from an explicit null (a frame has no such difference); `not_objects`
        holds the reason of each record that is not an object (None elsewhere), which stands alone."""
        # Columns are typed Series (frames) or object arrays of JSON values (records). Reasons are kept
        # as plain object arrays (None = fine) and become one Series at the end: per-field pandas
        # objects cost more than the checks themselves on a 100-record request.
        rows = len(index)
        reasons: list[np.ndarray] = []
        columns: dict[str, object] = {}
        for spec in self.fields:
            values, problems = check_field(given.get(spec.name), rows, index, spec, text_input)
            if absent is not None and spec.required and spec.name in absent and absent[spec.name].any():
                problems[absent[spec.name]] = f"missing required field '{spec.name}'"
            columns[spec.name] = values
            reasons.append(problems)
        if self.id_field is not None:
            ids, problems = check_id(given.get(self.id_field), rows, index, self.id_field, require_id)
            columns[self.id_field] = ids
            reasons.append(problems)
        reason = _join_reasons(reasons, rows)
        if not_objects is not None:
            reason = np.where(pd.notna(not_objects), not_objects, reason)
        bad = pd.notna(reason)
        valid = pd.DataFrame(columns, index=index)
        return ValidationResult(
            valid=valid[~bad] if bad.any() else valid, rejected=pd.Series(reason[bad], index=index[bad], dtype=object)
        )

    @cached_property
    def _plain_rules(self) -> tuple[tuple[str, bool, bool, float, float, frozenset[str] | None], ...]:
        return tuple((spec.name, *plain_rule(spec)) for spec in self.fields)

    def check_record(self, record: object) -> tuple[dict[str, object] | None, str | None, str | None]:
        """One JSON-decoded record by exactly the rules of validate_records, without pandas (the small-request path).

        Returns (typed values by field name, or None when refused; the id's canonical text or None; the reason or None).
        Integers come back as int, numbers as float, strings as str, null as None.
        """
        values = self._plain_values(record)
        if values is None:
            return self._check_each_field(record)
        record_id, refused = self._record_id(record)  # type: ignore[arg-type]
        if refused is not None:
            return None, record_id, refused
        return values, record_id, None

    def _plain_values(self, record: object) -> dict[str, object] | None:
        """The typed values of a record whose every field is plainly valid (checks.plain_rule); else None.

        Most records are, and one loop without a call per field checks them in a fraction of the time.
        """
        if type(record) is not dict:
            return None
        values: dict[str, object] = {}
        for name, is_string, integer, low, high, allowed in self._plain_rules:
            value = record.get(name)
            kind = type(value)
            if is_string:
                if kind is not str or (allowed is not None and value not in allowed):
                    return None
            elif kind is float or kind is int:
                if not (low <= value <= high and -MAX_EXACT_INTEGER < value < MAX_EXACT_INTEGER):  # type: ignore[operator]
                    return None  # out of bounds, or NaN, or an infinity
                if integer:
                    if kind is float:
                        if not value.is_integer():  # type: ignore[union-attr]
                            return None
                        value = int(value)  # type: ignore[arg-type]
                elif kind is int:
                    value = float(value)  # type: ignore[arg-type]
            else:
                return None
            values[name] = value
        return values

    def _check_each_field(self, record: object) -> tuple[dict[str, object] | None, str | None, str | None]:
        """check_record for any record: every field through check_json_value, every reason joined."""
        if not isinstance(record, dict):
            return None, None, f"record is {type_name(record)}, not an object"
        values: dict[str, object] = {}
        reasons: list[str] = []
        for spec in self.fields:
            values[spec.name], reason = check_json_value(spec, record.get(spec.name), spec.name in record)
            if reason is not None:
                reasons.append(reason)
        record_id, refused = self._record_id(record)
        if refused is not None:
            reasons.append(refused)
        if reasons:
            return None, record_id, "; ".join(reasons)
        return values, record_id, None

    def _record_id(self, record: dict) -> tuple[str | None, str | None]:
        """The id's canonical text, and the reason it is refused (named by field), as check_id gives them."""
        if self.id_field is None:
            return None, None
        raw = record.get(self.id_field)
        if type(raw) is int:
            text = str(raw)
            if len(text) <= MAX_ID_LENGTH:
                return text, None
        if raw is None or raw is pd.NA:
            return None, None
        record_id, refused = canonical_id(raw)
        return record_id, id_problem(self.id_field, refused) if refused is not None else None

    def validate_records(self, records: list[object]) -> ValidationResult:
        """Validate JSON-decoded records (online and streaming); a non-object record is rejected alone."""
        rows = [r if isinstance(r, dict) else {} for r in records]
        not_objects = None
        if any(not isinstance(r, dict) for r in records):
            not_objects = _object_array(
                [None if isinstance(r, dict) else f"record is {type_name(r)}, not an object" for r in records]
            )
        # Object columns keep True a bool and 10 an int (and 2**53 + 1 exact): the checks need the JSON types as sent.
        wanted = [*self.field_names, *([self.id_field] if self.id_field else [])]
        present = [key for key in wanted if any(key in row for row in rows)]
        columns: dict[str, pd.Series | np.ndarray] = {
            key: _object_array([row.get(key) for row in rows]) for key in present
        }
        absent = {name: np.array([name not in row for row in rows], dtype=bool) for name in self.field_names}
        # Their reasons join the others as one array, before any Series exists: appending them to the rejected
        # Series by label (.loc) broke when the rejected rows were evenly spaced. pandas 3.1 then holds that index
        # as a stepped RangeIndex, and appending to one built an index longer than its values ("Length of values
        # (3) does not match length of index (4)", found by the small-path property test).
        return self._validate_columns(columns, pd.RangeIndex(len(rows)), False, False, absent, not_objects)


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
