"""A run's options that come from a person (CLI flags, the DAG's trigger form): checked before they touch a path.

The dataset becomes a folder under the input root and the id field a column name looked up in
every file, so both are held to a plain name: no '/', no '..', no s3:// prefix, no control
character. This module imports nothing heavy: the DAG files read its patterns for the form.
"""

from __future__ import annotations

import re

from scoring.errors import ConfigError

# The trigger form checks the same pattern in the browser, as an ECMAScript regex in v mode, where a
# '-' in a class must be escaped. A first character that is not '.' keeps out '.', '..' and hidden
# folders; no '/' or '\\' anywhere.
PLAIN_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
_PLAIN_NAME = re.compile(PLAIN_NAME_PATTERN)
# A dataset is one folder name; an id field is at most as long as an id may be (scoring.model.record_ids).
MAX_DATASET_LENGTH = 128
MAX_ID_FIELD_LENGTH = 128


def validate_dataset(name: str) -> str:
    """`name` if it is one plain folder name under the input root, else ConfigError saying why."""
    return _plain_name(name, "dataset", MAX_DATASET_LENGTH, "one folder name under the input root")


def validate_id_field(name: str) -> str:
    """`name` if it is a plain column name, else ConfigError saying why."""
    return _plain_name(name, "id field", MAX_ID_FIELD_LENGTH, "a column name")


def _plain_name(name: str, what: str, longest: int, meaning: str) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what} is empty; give {meaning}")
    if len(name) > longest:
        raise ConfigError(f"{what} is longer than {longest} characters")
    if not _PLAIN_NAME.fullmatch(name):
        # The name itself is not echoed: it may hold control characters or a path meant to mislead a log.
        raise ConfigError(
            f"{what} must be {meaning}: letters, digits, '_', '.' and '-', not starting with '.' "
            "(no '/', '..' or s3:// prefix)"
        )
    return name
