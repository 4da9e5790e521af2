"""The prediction log against hostile records and a locked table, on a real PostgreSQL, with both drivers."""

from __future__ import annotations

import threading
import time

import psycopg2
import pytest
import sqlalchemy as sa

from scoring.monitoring.prediction_log import PredictionLog
from tests.support.prediction_log import Outcome, hide_psycopg2

pytestmark = pytest.mark.postgres

# What the handler may spend on a locked table: the lock timeout once, plus connecting, well under the old hang.
LOCKED_BOUND = 8.0


def _records(n: int) -> tuple[list[Outcome], list[dict]]:
    return [Outcome(f"r{i}", float(i)) for i in range(n)], [{"amount": float(i), "country": "US"} for i in range(n)]


def _count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM prediction_log")).scalar_one())


@pytest.fixture(params=["psycopg2", "pg8000"])
def driver(request, monkeypatch):
    """Run the test once with psycopg2 and once with pg8000 (the Lambda's driver), as connect() would pick."""
    if request.param == "pg8000":
        pytest.importorskip("pg8000")
        hide_psycopg2(monkeypatch)
    return request.param


def test_a_lone_surrogate_in_one_record_loses_neither_it_nor_its_batch(pg_engine, pg_schema_url, driver):
    # Given 5 good records and one whose text holds a lone surrogate (valid JSON, not storable as UTF-8)
    log = PredictionLog.from_url(pg_schema_url, "stream", background=False, fields=["amount", "country"])
    outcomes, records = _records(6)
    records[5] = {"amount": 10.0, "country": "\ud800", "k\x00": "x"}
    log.record(outcomes, records, "m", "1")
    # When the log is flushed
    inserted = log.flush()
    # Then all six rows are written, the odd text replaced, and the counters say so
    assert (inserted, log.written, log.failed) == (6, 6, 0)
    with pg_engine.connect() as connection:
        inputs = connection.execute(sa.text("SELECT inputs FROM prediction_log WHERE record_id = 'r5'")).scalar_one()
    assert inputs == {"amount": 10.0, "country": "\ufffd"}


def test_a_row_the_database_refuses_fails_alone(pg_engine, pg_schema_url, monkeypatch, driver):
    # Given a batch where one row is refused by the database (a record id longer than the column allows
    # is not possible here, so: a label PostgreSQL's text refuses, a NUL character, forced past the cleaning)
    log = PredictionLog.from_url(pg_schema_url, "stream", background=False)
    outcomes, records = _records(5)
    outcomes[2] = Outcome("r2", 2.0, label="bad\x00label")
    monkeypatch.setattr("scoring.monitoring.copy_text.clean_text", lambda text: text)
    log.record(outcomes, records, "m", "1")
    # When it is flushed
    inserted = log.flush()
    # Then the four others are written and only the refused row is counted as failed
    assert (inserted, log.written, log.failed) == (4, 4, 1)
    assert _count(pg_engine) == 4


def _lock_table(pg_schema_url: str):
    schema = pg_schema_url.rsplit("%3D", 1)[1]
    locker = psycopg2.connect(f"host=127.0.0.1 user=postgres dbname=test options=-csearch_path={schema}")
    locker.cursor().execute("LOCK TABLE prediction_log IN ACCESS EXCLUSIVE MODE")
    return locker


def _while_locked(pg_schema_url: str, call) -> tuple[bool, float, dict]:
    """Run `call` in a thread (a hang cannot hang the test) while another session holds an ACCESS EXCLUSIVE lock
    on prediction_log; whether it returned, how long it took, and what it returned (a dict)."""
    locker = _lock_table(pg_schema_url)
    try:
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(call()), daemon=True)
        started = time.perf_counter()
        worker.start()
        worker.join(30)
        elapsed = time.perf_counter() - started
    finally:
        locker.rollback()
        locker.close()
    return not worker.is_alive(), elapsed, result


def test_a_locked_table_costs_the_flush_one_timeout_not_one_per_batch(pg_engine, pg_schema_url, driver):
    # Given another session holding an ACCESS EXCLUSIVE lock on prediction_log, and three batches queued
    log = PredictionLog.from_url(pg_schema_url, "stream", background=False, capacity=100_000)
    outcomes, records = _records(2500)
    log.record(outcomes, records, "m", "1")
    # When the stream flushes at the end of its invocation, with the table locked by another session
    returned, elapsed, result = _while_locked(pg_schema_url, lambda: {"inserted": log.flush()})
    # Then it returned within the bound, with every queued record counted as failed and none left queued
    assert returned, "flush still blocked on the locked table"
    assert elapsed < LOCKED_BOUND
    assert (result["inserted"], log.written, log.failed, log.queued) == (0, 0, 2500, 0)
    # And once the lock is gone the next invocation writes again
    log.record(outcomes[:3], records[:3], "m", "1")
    assert log.flush() == 3 and _count(pg_engine) == 3


def test_the_stream_handler_returns_within_a_bound_on_a_locked_table(pg_engine, pg_schema_url, predictor, driver):
    # Given the stream handler with a prediction log, and prediction_log locked by another session
    import json

    from scoring.stream.handler import StreamHandler

    log = PredictionLog.from_url(pg_schema_url, "stream", background=False)
    handler = StreamHandler(predictor, None, None, log)
    ride = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.0}
    body = [{"ride_id": f"r{i}", **ride} for i in range(3)]
    event = {
        "Records": [{"eventSource": "aws:sqs", "messageId": f"m{i}", "body": json.dumps(b)} for i, b in enumerate(body)]
    }
    # When it handles an event while another session holds the table's lock
    returned, elapsed, result = _while_locked(pg_schema_url, lambda: handler(event))
    # Then it answered within the bound with its predictions; the log lost them, counted
    assert returned, "the handler is still blocked on the locked table"
    assert elapsed < LOCKED_BOUND
    assert len(result["predictions"]) == 3 and result["batchItemFailures"] == []
    assert log.failed == 3


def test_copy_special_characters_reach_the_table_as_they_were(pg_engine, pg_schema_url, driver):
    # Given records whose id, label, model name and inputs hold COPY's delimiter, line ends and escape character
    log = PredictionLog.from_url(pg_schema_url, "stream", background=False, fields=["amount", "country"])
    awkward = 'a\tb\nc\rd\\e"f\\N'
    outcomes = [Outcome(awkward, 1.5, label=awkward), Outcome("\\N", float("inf"))]
    records = [{"amount": 1.0, "country": awkward}, {"amount": 2.0, "country": "\\"}]
    log.record(outcomes, records, "m\\1\t", "v\n2")
    # When the log is flushed
    assert log.flush() == 2
    # Then every value reads back exactly as given, not as COPY's escapes or its NULL marker
    with pg_engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT record_id, label, model_name, model_version, inputs, prediction FROM prediction_log ORDER BY id"
            )
        ).all()
    assert rows[0] == (awkward, awkward, "m\\1\t", "v\n2", {"amount": 1.0, "country": awkward}, 1.5)
    assert rows[1] == ("\\N", None, "m\\1\t", "v\n2", {"amount": 2.0, "country": "\\"}, float("inf"))
