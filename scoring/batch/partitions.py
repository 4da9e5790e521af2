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
    def for_run(cls, logical_date: datetime | None, run_after: datetime, *, hourly: bool) -> PartitionKey:
        """The hour (or day) a DAG run scores: the one starting at its logical date, once it has closed.

        Scheduled and backfill runs have logical date = start of the interval that just closed, so this
        is their interval. A manual run at logical date 04:00 therefore scores 04:00-05:00, the hour of
        the scheduled run it stands in for, never the hour before (that one belongs to the 03:00 run).
        A manual run whose hour has not closed yet (logical date "now", or none) scores the last
        closed one instead of a partial hour.
        """
        period = timedelta(hours=1) if hourly else timedelta(days=1)
        closed_by = _floor(run_after, hourly)
        start = _floor(logical_date, hourly) if logical_date is not None else closed_by
        if start + period > closed_by:
            start = closed_by - period
        return cls(start.date(), start.hour if hourly else None)

    def path_segments(self) -> list[str]:
        segments = [f"dt={self.day.isoformat()}"]
        if self.hour is not None:
            segments.append(f"hour={self.hour:02d}")
        return segments

    def __str__(self) -> str:
        return self.day.isoformat() if self.hour is None else f"{self.day.isoformat()}T{self.hour:02d}"


def _floor(moment: datetime, hourly: bool) -> datetime:
    utc = moment.astimezone(timezone.utc)
    return (
        utc.replace(minute=0, second=0, microsecond=0)
        if hourly
        else utc.replace(hour=0, minute=0, second=0, microsecond=0)
    )
