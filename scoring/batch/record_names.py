"""How a run names its records: by the id column, or, for a file without one, by file and row.

A derived id is `<path of the file below the partition folder>:<row in the file, from 0>`, e.g.
`hour=03/part-00000.parquet:41`. It is deterministic, so scoring the same files again replaces
their rows instead of adding copies, and the path below the partition keeps the hour folders of a
daily partition apart. The row is the row's place in its FILE, whatever piece of it a shard reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scoring import storage
from scoring.errors import InvalidInput
from scoring.model.storable import clean_text


@dataclass(frozen=True)
class RecordNaming:
    """The run's id column (None: the bundle names none) and whether a file without it is refused."""

    id_field: str | None
    required: bool

    def file_has_id(self, columns: list[str], uri: str) -> bool:
        """Whether the file carries the id column; InvalidInput naming column and file when it must and does not."""
        has = self.id_field is not None and self.id_field in columns
        if self.required and not has:
            raise InvalidInput(
                f"{uri} has no id column '{self.id_field}', which this run requires "
                "(the bundle's id_required or the run's require-id option)"
            )
        return has


def name_in_partition(uri: str, partition_uri: str) -> str:
    """The file's path below its partition folder (`hour=03/part-0.parquet`), '/'-separated, local or s3://.

    A file that is not below the folder (never listed so) is named by its base name alone.
    """
    if storage.is_s3(uri) or storage.is_s3(partition_uri):
        prefix = partition_uri.rstrip("/") + "/"
        relative = uri[len(prefix) :] if uri.startswith(prefix) else PurePosixPath(uri).name
    else:
        path, folder = PurePath(uri), PurePath(partition_uri)
        relative = path.relative_to(folder).as_posix() if folder in path.parents else path.name
    # A file name may hold bytes no text column can: they become U+FFFD, the rest stays as listed.
    return clean_text(relative)


def derived_ids(file_name: str, rows: np.ndarray) -> pa.Array:
    """`<file_name>:<row>` for each row position, built in Arrow (no Python call per row)."""
    numbers = pc.cast(pa.array(np.asarray(rows, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(f"{file_name}:", numbers, "")
