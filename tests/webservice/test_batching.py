"""Request coalescing: concurrent callers share one scoring call, and each gets back exactly its own outcomes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from scoring.model.records import score_records
from tests.conftest import predict_valid
from webservice.batching import RequestCoalescer

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.5}


class GatedScorer:
    """score_records behind a gate: the first call holds until released, so others can queue up behind it."""

    def __init__(self, predictor, fail_on: object = None):
        self.predictor = predictor
        self.fail_on = fail_on
        self.calls: list[int] = []
        self.first_started = threading.Event()
        self.release = threading.Event()

    def __call__(self, records):
        self.calls.append(len(records))
        if len(self.calls) == 1:
            self.first_started.set()
            assert self.release.wait(10)
        if self.fail_on is not None and self.fail_on in records:
            raise ValueError("scoring blew up")
        return score_records(self.predictor, records)


def run_queued(coalescer: RequestCoalescer, scorer: GatedScorer, first: list, queued: list[list]) -> list:
    """Submit `first`, queue `queued` behind it while it is held, release; each caller's result or exception."""
    results: list = [None] * (1 + len(queued))

    def call(index: int, records: list) -> None:
        try:
            results[index] = coalescer.score(records)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=call, args=(0, first))]
    threads[0].start()
    assert scorer.first_started.wait(10)
    for index, records in enumerate(queued, start=1):
        threads.append(threading.Thread(target=call, args=(index, records)))
        threads[-1].start()
    deadline = time.monotonic() + 10
    while len(coalescer._pending) < len(queued) and time.monotonic() < deadline:
        time.sleep(0.001)
    scorer.release.set()
    for thread in threads:
        thread.join(10)
    return results


def test_a_lone_caller_is_scored_at_once_and_alone(predictor):
    scorer = GatedScorer(predictor)
    scorer.release.set()
    records = [RIDE, {**RIDE, "trip_distance": 9.0}]
    assert RequestCoalescer(scorer, max_records=100).score(records) == score_records(predictor, records)
    assert scorer.calls == [2]


def test_queued_callers_share_one_call_and_get_their_own_outcomes(predictor):
    # Given one caller being scored and three more arriving meanwhile, one of them with a bad record
    scorer = GatedScorer(predictor)
    coalescer = RequestCoalescer(scorer, max_records=100)
    first = [RIDE]
    queued = [
        [{**RIDE, "ride_id": 7}, {**RIDE, "trip_distance": 1.25}],
        [{**RIDE, "trip_distance": True, "ride_id": "bad"}],
        [{**RIDE, "PULocationID": 3}, {**RIDE, "DOLocationID": 4}, {**RIDE, "trip_distance": 30.0}],
    ]
    # When the first call finishes
    results = run_queued(coalescer, scorer, first, queued)
    # Then the three queued callers were scored in one call, and each got what scoring alone would give
    assert scorer.calls == [1, 6]
    for records, outcomes in zip([first, *queued], results, strict=True):
        assert outcomes == score_records(predictor, records)


def test_the_record_cap_splits_the_queue_in_arrival_order(predictor):
    scorer = GatedScorer(predictor)
    coalescer = RequestCoalescer(scorer, max_records=4)
    results = run_queued(coalescer, scorer, [RIDE], [[RIDE] * 3, [RIDE] * 2, [RIDE] * 2])
    assert scorer.calls == [1, 3, 4]
    assert [len(outcomes) for outcomes in results] == [1, 3, 2, 2]


def test_a_caller_whose_records_break_scoring_fails_alone(predictor):
    scorer = GatedScorer(predictor, fail_on="poison")
    coalescer = RequestCoalescer(scorer, max_records=100)
    results = run_queued(coalescer, scorer, [RIDE], [[RIDE, "poison"], [RIDE]])
    assert isinstance(results[1], ValueError)
    assert results[2] == score_records(predictor, [RIDE])
    assert scorer.calls == [1, 3, 2, 1]  # the shared call failed, then each caller was retried alone


def test_concurrent_requests_through_the_app_get_their_own_answers(client, predictor):
    # Given 160 distinct rides posted from 8 threads at once
    rides = [
        {"PULocationID": i % 40, "DOLocationID": i // 4, "trip_distance": 0.5 + i, "ride_id": i} for i in range(160)
    ]
    expected = predict_valid(predictor, rides)

    def post(ride):
        return client.post("/predict", json={"records": [ride]}).get_json()["predictions"][0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, rides))
    # Then every ride got its own prediction back, under its own id
    assert answers == [{"duration": value, "ride_id": i} for i, value in enumerate(expected)]


@pytest.mark.parametrize("size", [0, 1])
def test_tiny_requests(predictor, size):
    coalescer = RequestCoalescer(lambda records: score_records(predictor, records), max_records=10)
    assert len(coalescer.score([RIDE] * size)) == size
