"""What the prediction log's queue holds and costs the caller: no database needed."""

from __future__ import annotations

import gc
import weakref

from scoring.monitoring.prediction_log import PredictionLog
from tests.support.prediction_log import Outcome


class Record(dict):
    """A dict a weak reference can point at, to see whether the log kept it."""


def test_a_queued_record_keeps_only_the_declared_fields_values():
    # Given a log keeping only "amount", and a record carrying a megabyte of extra keys
    log = PredictionLog(lambda: None, "stream", background=False, fields=["amount"])
    record = Record(amount=1.0, junk="x" * 1_000_000)
    alive = weakref.ref(record)
    # When it is recorded and the caller lets go of it
    log.record([Outcome("a", 1.0)], [record], "m", "1")
    del record
    gc.collect()
    # Then the queue holds no reference to the record (nor its megabyte), only the declared value
    assert alive() is None
    [entry] = list(log._queue)
    assert entry[4] == [(1.0,)] and log.queued == 1


def test_a_record_missing_a_declared_field_is_queued_without_it():
    # Given a log keeping "amount" and "country", and a call whose second record has no country
    log = PredictionLog(lambda: None, "stream", background=False, fields=["amount", "country"])
    records = [{"amount": 1.0, "country": "US", "x": 1}, {"amount": 2.0}]
    # When it is recorded
    log.record([Outcome("a", 1.0), Outcome("b", 2.0)], records, "m", "1")
    # Then each record keeps the declared fields it has, and nothing else
    [entry] = list(log._queue)
    assert entry[4] == [{"amount": 1.0, "country": "US"}, {"amount": 2.0}]


def test_a_full_queue_counts_only_the_scored_records_it_drops():
    # Given a log with room for two records
    log = PredictionLog(lambda: None, "online", capacity=2, background=False)
    outcomes = [Outcome("a", 1.0), Outcome("b", 2.0), Outcome("c", None), Outcome("d", 4.0)]
    # When a call of four records, one of them not scored, is recorded, and then another one
    log.record(outcomes, [{}] * 4, "m", "1")
    log.record(outcomes[:1], [{}], "m", "1")
    # Then two are queued; dropped counts the scored one of the rest (not the unscored) and the next call's one
    assert (log.queued, log.dropped) == (2, 2)
