"""The syntax of partition keys: a day "2026-01-01" or an hour "2026-01-01T03" (UTC), defined once.

Batch partitions, monitoring's traffic hours and the Airflow forms all name periods with these keys, so
they live below every layer that uses them (batch adds the directory layout, scoring/batch/partitions.py).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from scoring.errors import InvalidPartitionKey

# The one definition of a key's syntax, used by parse() below and by the DAGs' trigger forms (JSON Schema
# "pattern"), so a form refuses inline what a run would refuse: month 13, day 32, hour 24. What a pattern
# cannot say (Feb 30, year 0000) parse() refuses with its reason. The browser reads it as an ECMAScript
# regex: plain and non-capturing groups only, and [0-9], not \d, which in Python also matches non-ASCII digits.
_DAY = r"([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_HOUR = r"T([01][0-9]|2[0-3])"
PARTITION_KEY_PATTERN = rf"^{_DAY}(?:{_HOUR})?$"
# Each cadence's own keys: an hourly job must be given an hour, a daily job a day.
DAY_KEY_PATTERN = rf"^{_DAY}$"
HOUR_KEY_PATTERN = rf"^{_DAY}{_HOUR}$"
_PARTITION_KEY = re.compile(PARTITION_KEY_PATTERN)
# Only to explain a refusal: the key's shape with any two-digit month, day and hour, so the message can
# name the field that is out of range instead of calling a well-shaped key malformed.
_PARTITION_KEY_SHAPE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2}))?$")


def key_pattern(*, hourly: bool) -> str:
    """The pattern of one cadence's keys: YYYY-MM-DDTHH for hourly, YYYY-MM-DD for daily."""
    return HOUR_KEY_PATTERN if hourly else DAY_KEY_PATTERN


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
            raise InvalidPartitionKey(f"partition key {text[:40]!r} {_refusal(text)}")
        year, month, day = (int(group) for group in match.groups()[:3])
        hour = None if match.group(4) is None else int(match.group(4))
        if year < 1:
            raise InvalidPartitionKey(f"partition key {text!r} names year 0000; years start at 0001")
        days = calendar.monthrange(year, month)[1]
        if day > days:
            raise InvalidPartitionKey(
                f"partition key {text!r} names day {day} of {year:04d}-{month:02d}, which has {days} days"
            )
        return cls(date(year, month, day), hour)

    @classmethod
    def parse_hour(cls, text: str) -> PartitionKey:
        """An hour's key, YYYY-MM-DDTHH; a day or anything else is InvalidPartitionKey saying what is wrong."""
        key = cls.parse(text)
        if key.hour is None:
            raise InvalidPartitionKey(f"partition key {text.strip()!r} names a day; give an hour, e.g. {key}T00")
        return key

    @classmethod
    def of_hour(cls, moment: datetime) -> PartitionKey:
        """The key of the UTC hour that `moment` falls in."""
        start = _floor(moment, hourly=True)
        return cls(start.date(), start.hour)

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

    def start(self) -> datetime:
        """The first instant (UTC) of the key's day or hour."""
        return datetime(self.day.year, self.day.month, self.day.day, self.hour or 0, tzinfo=timezone.utc)

    def path_segments(self) -> list[str]:
        """The key's Hive-style folders below a dataset: dt=YYYY-MM-DD, and hour=HH for an hour."""
        segments = [f"dt={self.day.isoformat()}"]
        if self.hour is not None:
            segments.append(f"hour={self.hour:02d}")
        return segments

    def __str__(self) -> str:
        return self.day.isoformat() if self.hour is None else f"{self.day.isoformat()}T{self.hour:02d}"


def _refusal(text: str) -> str:
    """Why a key the pattern refused is wrong: the field out of range, or its shape."""
    shape = _PARTITION_KEY_SHAPE.match(text)
    if not shape:
        return "is neither YYYY-MM-DD (daily) nor YYYY-MM-DDTHH (hourly)"
    month, day = int(shape.group(2)), int(shape.group(3))
    if not 1 <= month <= 12:
        return f"names month {month}; months run from 01 to 12"
    if day < 1:
        return f"names day {day}; days run from 01"
    if day > 31:
        return f"names day {day}; no month has more than 31 days"
    return f"names hour {int(shape.group(4))}; hours run from 00 to 23"


def _floor(moment: datetime, hourly: bool) -> datetime:
    utc = moment.astimezone(timezone.utc)
    return (
        utc.replace(minute=0, second=0, microsecond=0)
        if hourly
        else utc.replace(hour=0, minute=0, second=0, microsecond=0)
    )
