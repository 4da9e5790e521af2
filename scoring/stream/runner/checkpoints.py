"""Kinesis checkpoints: per stream and shard, the last sequence number fully handled, in a local JSON file."""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_CHECKPOINTS = "var/stream/checkpoints.json"


class CheckpointStore:
    """Per stream and shard, the last sequence number fully handled; kept in a local JSON file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._data: dict[str, dict[str, str]] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, stream: str, shard_id: str) -> str | None:
        """The shard's checkpoint, or None before its first."""
        return self._data.get(stream, {}).get(shard_id)

    def set(self, stream: str, shard_id: str, sequence_number: str) -> None:
        """Record the shard's checkpoint and save the file."""
        self._data.setdefault(stream, {})[shard_id] = sequence_number
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash never leaves half a checkpoint file.
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._data, indent=2, sort_keys=True))
        temporary.replace(self.path)
