"""The batch engine against the machine's real PostgreSQL (and SQLite, the embedded default)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from scoring.batch.partitions import PartitionKey
from scoring.errors import PartitionNotFound, RejectThresholdExceeded
from tests.conftest import make_rides
from tests.integration.batch_helpers import head_revision, plan_for, rejects, run, runs, stored, write_rides

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request):
    """Both stores must give the same semantics."""
    return request.getfixturevalue("pg_engine" if request.param == "postgresql" else "sqlite_engine")


def test_scoring_a_partition_three_times_keeps_exactly_one_copy(engine, predictor, tmp_path):
    # Given an hourly partition of 1000 rides in two files
    rides = make_rides(1000)
    write_rides(str(tmp_path / "in"), rides)
    # When it is scored three times
    summaries = [run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage")) for _ in range(3)]
    # Then one copy of each ride is stored, carrying the last run's id, and the counts reconcile
    table = stored(engine)
    assert len(table) == 1000 and table["record_id"].is_unique
    assert set(table["run_id"]) == {summaries[-1].run_id}
    history = runs(engine)
    assert len(history) == 3 and (history["status"] == "published").all()
    assert (history["input_rows"] == history["scored_rows"] + history["rejected_rows"]).all()
    # And the stored predictions are the predictor's, exactly
    expected = predictor.predict(predictor.schema.validate_frame(rides).valid)
    by_id = dict(zip(rides["ride_id"].astype(str), expected, strict=True))
    assert np.array_equal(table["prediction"].to_numpy(), np.array([by_id[i] for i in table["record_id"]]))


def test_poison_rows_are_quarantined_with_reasons_and_good_rows_published(engine, predictor, tmp_path):
    # Given a CSV partition whose rows include nulls, text in numbers and a boolean-ish string
    rides = make_rides(400).astype(object)
    rides.loc[3, "trip_distance"] = None
    rides.loc[7, "PULocationID"] = "downtown"
    rides.loc[11, "DOLocationID"] = 10.5
    write_rides(str(tmp_path / "in"), rides, files=1, file_format="csv")
    # When it is scored with a threshold above 3/400
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"), reject_threshold=0.05)
    # Then 397 rows are published and the 3 bad ones are kept with reasons and their raw record
    assert (summary.input_rows, summary.scored_rows, summary.rejected_rows) == (400, 397, 3)
    assert len(stored(engine)) == 397
    bad = rejects(engine).set_index("record_id")
    ids = rides["ride_id"].astype(str)
    assert bad.loc[ids[3], "reason"] == "field 'trip_distance': is null or NaN"
    assert bad.loc[ids[7], "reason"] == "field 'PULocationID': 'downtown' is not an integer"
    assert bad.loc[ids[11], "reason"] == "field 'DOLocationID': 10.5 is not an integer"
    raw = bad.loc[ids[7], "raw_record"]
    raw = raw if isinstance(raw, dict) else __import__("json").loads(raw)
    assert raw["PULocationID"] == "downtown" and raw["ride_id"] == ids[7]


def test_reject_rate_above_threshold_publishes_nothing_and_says_why(engine, predictor, tmp_path):
    # Given a partition already published once
    root = str(tmp_path / "in")
    write_rides(root, make_rides(200))
    first = run(predictor, engine, root, str(tmp_path / "stage"))
    # When a new version of it arrives with 10% of distances missing
    spoiled = make_rides(200)
    spoiled.loc[spoiled.index[:20], "trip_distance"] = np.nan
    write_rides(root, spoiled)
    with pytest.raises(RejectThresholdExceeded) as failure:
        run(predictor, engine, root, str(tmp_path / "stage"))
    # Then the error says how many and why, and the previous rows are untouched
    message = str(failure.value)
    assert "20 of 200 rows (10.00%)" in message and "field 'trip_distance': is null or NaN (20)" in message
    assert set(stored(engine)["run_id"]) == {first.run_id} and len(stored(engine)) == 200
    history = runs(engine)
    assert history["status"].tolist() == ["published", "failed"]


def test_partition_with_a_file_missing_a_column_is_refused_whole(engine, predictor, tmp_path):
    root = str(tmp_path / "in")
    write_rides(root, make_rides(100).drop(columns=["trip_distance"]), files=1)
    with pytest.raises(RejectThresholdExceeded, match="missing required field 'trip_distance' \\(100\\)"):
        run(predictor, engine, root, str(tmp_path / "stage"))
    assert stored(engine).empty


def test_duplicate_ids_across_files_keep_the_first_and_reject_the_rest(engine, predictor, tmp_path):
    rides = make_rides(300)
    rides.loc[250, "ride_id"] = rides.loc[10, "ride_id"]  # second file repeats an id from the first
    write_rides(str(tmp_path / "in"), rides, files=2)
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    assert (summary.scored_rows, summary.rejected_rows) == (299, 1)
    duplicate = rejects(engine)
    assert duplicate["reason"].str.startswith("duplicate record id").tolist() == [True]
    assert len(stored(engine)) == 299


def test_missing_partition_names_the_path(engine, predictor, tmp_path):
    with pytest.raises(PartitionNotFound, match=r"rides/dt=2026-03-01/hour=05"):
        run(predictor, engine, str(tmp_path / "nothing"), str(tmp_path / "stage"))


def test_daily_partition_reads_every_hour_below_it(engine, predictor, tmp_path):
    root = str(tmp_path / "in")
    for hour, seed in ((1, 1), (2, 2)):
        rides = make_rides(50, seed=seed)
        rides["ride_id"] += hour * 1000
        write_rides(root, rides, key=PartitionKey.parse(f"2026-03-01T{hour:02d}"))
    day = PartitionKey.parse("2026-03-01")
    summary = run(predictor, engine, root, str(tmp_path / "stage"), key=day)
    assert summary.scored_rows == 100
    assert len(stored(engine, day)) == 100


def test_empty_partition_file_publishes_zero_rows(engine, predictor, tmp_path):
    write_rides(str(tmp_path / "in"), make_rides(5).iloc[:0], files=1)
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    assert (summary.input_rows, summary.scored_rows) == (0, 0)


def test_values_are_stored_without_loss(pg_engine, predictor, tmp_path):
    # Floats go through CSV for COPY: they must come back bit for bit.
    rides = make_rides(500)
    write_rides(str(tmp_path / "in"), rides)
    run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    table = stored(pg_engine)
    expected = pd.Series(
        predictor.predict(predictor.schema.validate_frame(rides).valid), index=rides["ride_id"].astype(str)
    )
    assert table["prediction"].tolist() == expected.loc[table["record_id"]].tolist()


def test_a_row_whose_prediction_overflows_is_quarantined(engine, predictor, tmp_path):
    rides = make_rides(300)
    rides.loc[5, "trip_distance"] = 1e308
    write_rides(str(tmp_path / "in"), rides, files=1)
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    assert (summary.scored_rows, summary.rejected_rows) == (299, 1)
    assert "not finite" in rejects(engine)["reason"].iloc[0]


def test_a_rejected_row_holding_infinity_or_nan_is_kept_and_the_rest_published(engine, predictor, tmp_path):
    # PostgreSQL's JSONB refuses bare NaN/Infinity tokens: the raw record must still be storable.
    rides = make_rides(400)
    rides.loc[0, "trip_distance"] = np.inf
    rides.loc[1, "fare_amount"] = np.nan
    rides.loc[1, "trip_distance"] = -3.0
    write_rides(str(tmp_path / "in"), rides, files=1)
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    assert (summary.scored_rows, summary.rejected_rows) == (398, 2)
    raws = [r if isinstance(r, dict) else __import__("json").loads(r) for r in rejects(engine)["raw_record"]]
    assert sorted(str(r["trip_distance"]) for r in raws) == ["-3.0", "Infinity"]
    assert len(stored(engine)) == 398


def test_publishing_the_same_plan_again_replaces_its_own_record(engine, predictor, tmp_path):
    # Given a run that failed its threshold (a retried or cleared publish task re-publishes the same plan)
    from scoring.batch import publish_run, score_shard

    rides = make_rides(100)
    rides.loc[:4, "trip_distance"] = np.nan
    root = str(tmp_path / "in")
    write_rides(root, rides, files=1)
    plan = plan_for(predictor, tmp_path, run_id="manual__x.try1")
    shards = [score_shard(predictor, plan, 0, chunk_rows=50)]
    with pytest.raises(RejectThresholdExceeded):
        publish_run(engine, plan, shards, predictor.bundle.manifest, reject_threshold=0.01)
    # When the operator raises the threshold and the same plan is published, twice
    for _ in range(2):
        summary = publish_run(engine, plan, shards, predictor.bundle.manifest, reject_threshold=0.10)
    # Then it is published once, with one run record and its five rejects
    assert summary.scored_rows == 95 and len(stored(engine)) == 95
    assert runs(engine)[["run_id", "status"]].values.tolist() == [["manual__x.try1", "published"]]
    assert len(rejects(engine)) == 5


def test_a_shard_that_fails_leaves_no_staging_behind(predictor, tmp_path):
    from scoring.batch import score_shard
    from scoring.batch.partitions import PartitionKey
    from scoring.errors import UnreadableInput

    key = PartitionKey.parse("2026-03-01T05")
    partition_dir = tmp_path / "in" / "rides" / "dt=2026-03-01" / "hour=05"
    partition_dir.mkdir(parents=True)
    (partition_dir / "part-0.parquet").write_bytes(b"not parquet at all")
    plan = plan_for(predictor, tmp_path, key, job="j")
    with pytest.raises(UnreadableInput, match="not a readable Parquet file"):
        score_shard(predictor, plan, 0, chunk_rows=50)
    assert [p for p in (tmp_path / "stage").rglob("*") if p.is_file()] == []


def test_concurrent_reruns_of_a_partition_keep_one_copy(pg_engine, predictor, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    # Given an hourly partition, and four runs of it started at once (a retry racing a backfill)
    rides = make_rides(800)
    write_rides(str(tmp_path / "in"), rides)
    with ThreadPoolExecutor(max_workers=4) as pool:
        summaries = list(
            pool.map(lambda n: run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / f"stage{n}")), range(4))
        )
    # Then every run published, and one copy of each ride is stored, from one of them
    table = stored(pg_engine)
    assert len(table) == 800 and table["record_id"].is_unique
    assert len(set(table["run_id"])) == 1 and table["run_id"][0] in {s.run_id for s in summaries}
    assert (runs(pg_engine)["status"] == "published").sum() == 4


def test_the_revision_check_names_the_upgrade_command_until_the_schema_is_migrated(pg_schema_url):
    from sqlalchemy.engine import make_url

    from scoring.batch.store.engines import describe, make_engine, require_current, upgrade
    from scoring.errors import DatabaseBehind

    # Given an empty schema, reached with a password in its URL (the local server trusts, so any is taken)
    url = make_url(pg_schema_url).set(password="hunter2").render_as_string(hide_password=False)
    engine = make_engine(url)
    # When a run checks it, Then it is behind, and the message says exactly what to run, password hidden
    with pytest.raises(DatabaseBehind) as behind:
        require_current(engine)
    message = str(behind.value)
    head = head_revision()
    assert message.startswith(
        f"the predictions database at {describe(engine)} is at no revision (no tables yet), this code needs revision {head}: "
        f"run `scoring db upgrade --database {describe(engine)}`"
    )
    assert "hunter2" not in message and ":***@" in message
    # And checking created nothing: the schema is still empty
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")).scalar() == 0
    # When the deploy step migrates it, Then the check passes
    upgrade(engine)
    require_current(engine)
    engine.dispose()
