"""The prediction log on PostgreSQL: a bounded queue that never blocks the caller, written in batches by a
background writer (or synchronously, as the Lambda does), with psycopg2 or pg8000, surviving a database outage."""

from __future__ import annotations

import logging
import threading

import pytest
import sqlalchemy as sa

from scoring.monitoring import prediction_log as plog
from scoring.monitoring.log_connection import connect
from scoring.monitoring.prediction_log import PredictionLog
from tests.support.prediction_log import Outcome, hide_psycopg2

pytestmark = pytest.mark.postgres


def _rides(n: int) -> tuple[list[Outcome], list[dict]]:
    outcomes = [Outcome(f"r{i}", 10.0 + i) for i in range(n)]
    records = [{"PULocationID": i, "DOLocationID": 7, "trip_distance": 1.5 * i, "ride_id": f"r{i}"} for i in range(n)]
    return outcomes, records


def _logged(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT * FROM prediction_log ORDER BY id")).all()


def test_the_background_writer_inserts_what_was_recorded(pg_engine, pg_schema_url):
    # Given a log with a background writer, keeping only the model's inputs
    log = PredictionLog.from_url(pg_schema_url, "online", fields=("PULocationID", "DOLocationID", "trip_distance"))
    outcomes, records = _rides(2500)
    # When three requests' outcomes are recorded, one of them with a rejected record (no prediction)
    log.record(outcomes[:1000], records[:1000], "ride_duration", "1")
    log.record([*outcomes[1000:], Outcome("bad", None)], [*records[1000:], {"x": 1}], "ride_duration", "1")
    log.close()
    # Then every scored record is in prediction_log with its source, model, id, inputs and prediction
    rows = _logged(pg_engine)
    assert (log.written, log.dropped, log.failed) == (2500, 0, 0)
    assert len(rows) == 2500
    first = rows[0]
    assert (first.source, first.model_name, first.model_version, first.record_id) == (
        "online",
        "ride_duration",
        "1",
        "r0",
    )
    assert first.inputs == {"PULocationID": 0, "DOLocationID": 7, "trip_distance": 0.0}
    assert [r.prediction for r in rows] == [o.prediction for o in outcomes]
    assert first.logged_at.tzinfo is not None and first.label is None


def test_a_full_queue_drops_and_counts_instead_of_waiting(pg_schema_url):
    # Given a log whose queue holds 5 records and whose writer has not run
    log = PredictionLog.from_url(pg_schema_url, "online", capacity=5, background=False)
    outcomes, records = _rides(8)
    # When 8 are recorded
    log.record(outcomes, records, "m", "1")
    # Then 5 wait and 3 are dropped and counted
    assert (log.queued, log.dropped) == (5, 3)


def test_recording_never_waits_for_a_slow_database(pg_engine, pg_schema_url):
    # Given a log whose writer is stuck opening its connection until the test lets it through
    release, connected = threading.Event(), threading.Event()

    def slow_connect():
        release.wait(60)
        connected.set()
        return connect(pg_schema_url)

    log = PredictionLog(slow_connect, "online", capacity=100_000, interval=0.01)
    outcomes, records = _rides(1000)
    # When 20 requests of 1,000 records are recorded meanwhile (in a thread, so a wait would show as a hang)
    requests = threading.Thread(target=lambda: [log.record(outcomes, records, "m", "1") for _ in range(20)])
    requests.start()
    requests.join(30)  # a guard against a hang, not a timing threshold
    # Then every call returned while the writer still had no connection: recording never waited for it
    assert not requests.is_alive() and not connected.is_set()
    release.set()
    log.close()
    assert log.written == 20_000 and len(_logged(pg_engine)) == 20_000


def test_a_database_outage_loses_the_batch_not_the_request(caplog, pg_schema_url):
    # Given a log pointing at a port where no database listens
    log = PredictionLog.from_url("postgresql://postgres@127.0.0.1:1/test", "stream", background=False)
    outcomes, records = _rides(3)
    log.record(outcomes, records, "m", "1")
    # When it flushes
    with caplog.at_level(logging.WARNING, logger=plog.__name__):
        inserted = log.flush()
    # Then nothing raised: the records are counted as failed and one warning names the error in one line
    assert (inserted, log.failed, log.written) == (0, 3, 0)
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("prediction log: 3 records not written (") and "\n" not in warning
    # And the next batch does not hammer the dead database: until RETRY_AFTER has passed it is counted as
    # failed without another connection attempt
    attempts = []
    log._writer._connect = lambda: attempts.append(1) or connect("postgresql://postgres@127.0.0.1:1/test")
    log.record(outcomes, records, "m", "1")
    log.flush()
    assert attempts == [] and log.failed == 6


def test_pg8000_writes_the_same_rows_as_psycopg2(pg_engine, pg_schema_url, monkeypatch):
    # Given the same records logged once through psycopg2 and once through pg8000 (the Lambda's driver)
    pytest.importorskip("pg8000")
    outcomes, records = _rides(3)
    records[0]["trip_distance"] = float("nan")
    records[1]["note"] = "a\x00b"
    via_psycopg2 = PredictionLog.from_url(pg_schema_url, "stream", background=False)
    via_psycopg2.record(outcomes, records, "m", "1")
    via_psycopg2.close()
    hide_psycopg2(monkeypatch)
    via_pg8000 = PredictionLog.from_url(pg_schema_url, "stream", background=False)
    via_pg8000.record(outcomes, records, "m", "1")
    via_pg8000.close()
    monkeypatch.undo()
    # Then both wrote three identical rows (NaN logged as null, a NUL character replaced)
    rows = _logged(pg_engine)
    assert (via_psycopg2.written, via_pg8000.written) == (3, 3)
    strip = [(r.source, r.record_id, r.inputs, r.prediction) for r in rows]
    assert strip[:3] == strip[3:]
    assert strip[0][2]["trip_distance"] is None and strip[1][2]["note"] == "a\ufffdb"
