"""Partition keys and the Hive-style layout that maps them onto directories.

{input_root}/{dataset}/dt=2026-01-01/hour=03/   hourly, key "2026-01-01T03"
{input_root}/{dataset}/dt=2026-01-01/           daily,  key "2026-01-01"
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from scoring.errors import InvalidPartitionKey

# The one definition of a partition key's syntax: the DAGs' trigger form checks it with this pattern
# (JSON Schema), and parse() below adds what a pattern cannot say (a real date, an hour below 24).
# Plain groups only: the form's browser-side check reads it as an ECMAScript regex.
PARTITION_KEY_PATTERN = r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}))?$"
_PARTITION_KEY = re.compile(PARTITION_KEY_PATTERN)


@dataclass(frozen=True, order=True)
class PartitionKey:
    """One partition: a day, or an hour of a day."""

    day: date
    hour: int | None = None

    @classmethod
    def parse(cls, text: str) -> PartitionKey:
        """'2026-01-01T03' (hourly) or '2026-01-01' (daily); anything else is InvalidPartitionKey saying what is wrong."""
        text = text.strip()
        match = _PARTITION_KEY.match(text)
        if not match:
            raise InvalidPartitionKey(
                f"partition key {text[:40]!r} is neither YYYY-MM-DD (daily) nor YYYY-MM-DDTHH (hourly)"
            )
        year, month, day = (int(group) for group in match.groups()[:3])
        hour = None if match.group(4) is None else int(match.group(4))
        if year < 1:
            raise InvalidPartitionKey(f"partition key {text!r} names year 0000; years start at 0001")
        if not 1 <= month <= 12:
            raise InvalidPartitionKey(f"partition key {text!r} names month {month}; months run from 01 to 12")
        days = calendar.monthrange(year, month)[1]
        if not 1 <= day <= days:
            raise InvalidPartitionKey(
                f"partition key {text!r} names day {day} of {year:04d}-{month:02d}, which has {days} days"
            )
        if hour is not None and hour > 23:
            raise InvalidPartitionKey(f"partition key {text!r} names hour {hour}; hours run from 00 to 23")
        return cls(date(year, month, day), hour)

    @classmethod
    def for_run(cls, logical_date: datetime | None, run_after: datetime, *, hourly: bool) -> PartitionKey:
        """The hour (or day) a DAG run scores: the one starting at its logical date, once it has closed.

        A scheduled or backfill run's logical date is the start of its data interval, so this is that
        interval. A manual run at logical date 04:00 therefore scores 04:00-05:00, the hour of
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
