"""Partition keys and the Hive-style layout that maps them onto directories.

{input_root}/{dataset}/dt=2026-01-01/hour=03/   hourly, key "2026-01-01T03"
{input_root}/{dataset}/dt=2026-01-01/           daily,  key "2026-01-01"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from scoring.errors import InvalidInput

_HOURLY = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2})$")
_DAILY = re.compile(r"^(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, order=True)
class PartitionKey:
    """One partition: a day, or an hour of a day."""

    day: date
    hour: int | None = None

    @classmethod
    def parse(cls, text: str) -> PartitionKey:
        """'2026-01-01T03' (hourly) or '2026-01-01' (daily); anything else is InvalidInput."""
        text = text.strip()
        for pattern in (_HOURLY, _DAILY):
            match = pattern.match(text)
            if not match:
                continue
            try:
                day = date.fromisoformat(match.group(1))
            except ValueError:
                break
            hour = int(match.group(2)) if pattern is _HOURLY else None
            if hour is not None and not 0 <= hour <= 23:
                break
            return cls(day, hour)
        raise InvalidInput(f"partition key {text!r} is neither YYYY-MM-DD (daily) nor YYYY-MM-DDTHH (hourly)")

    @classmethod
    def for_interval(cls, start: datetime, end: datetime) -> PartitionKey:
        """The partition a closed data interval covers: one hour or one day, in UTC."""
        start_utc = start.astimezone(timezone.utc)
        length = end - start
        if length == timedelta(hours=1):
            return cls(start_utc.date(), start_utc.hour)
        if length == timedelta(days=1) and start_utc.hour == 0:
            return cls(start_utc.date())
        raise InvalidInput(f"data interval {start.isoformat()} .. {end.isoformat()} is not one UTC hour or one UTC day")

    @property
    def is_hourly(self) -> bool:
        return self.hour is not None

    def path_segments(self) -> list[str]:
        segments = [f"dt={self.day.isoformat()}"]
        if self.hour is not None:
            segments.append(f"hour={self.hour:02d}")
        return segments

    def __str__(self) -> str:
        return self.day.isoformat() if self.hour is None else f"{self.day.isoformat()}T{self.hour:02d}"
