"""Partition keys as batch uses them, and the Hive-style layout that maps them onto directories.

{input_root}/{dataset}/dt=2026-01-01/hour=03/   hourly, key "2026-01-01T03"
{input_root}/{dataset}/dt=2026-01-01/           daily,  key "2026-01-01"

The keys' syntax is defined once, in scoring/partition_keys.py, below batch and monitoring alike;
PartitionKey.path_segments() gives the folders above.
"""

from __future__ import annotations

from scoring.partition_keys import (
    DAY_KEY_PATTERN,
    HOUR_KEY_PATTERN,
    PARTITION_KEY_PATTERN,
    PartitionKey,
    key_pattern,
)

__all__ = ["DAY_KEY_PATTERN", "HOUR_KEY_PATTERN", "PARTITION_KEY_PATTERN", "PartitionKey", "key_pattern"]
