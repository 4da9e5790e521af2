"""Hostile input and faults in the batch path, on the real PostgreSQL (and SQLite, the embedded default).

One bad row is quarantined, never the whole partition; a failed run always leaves its record;
messages never carry the raw row.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from scoring.batch.rejects import raw_record_json
from scoring.errors import PublishError, UnreadableInput
from tests.conftest import make_rides
from tests.integration.batch_helpers import plan_for, rejects, run, runs, stored, write_rides

pytestmark = pytest.mark.postgres

LONG_ID = "r" * 5000


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request):
    return request.getfixturevalue("pg_engine" if request.param == "postgresql" else "sqlite_engine")


def _raw(value: object) -> dict:
    return value if isinstance(value, dict) else json.loads(str(value))


def _partition_dir(root) -> object:
    return root / "rides" / "dt=2026-03-01" / "hour=05"


def test_unstorable_ids_and_cells_are_quarantined_and_the_rest_published(engine, predictor, tmp_path):
    # Given a partition with string ids where one id holds a NUL, one is 5,000 characters long, and a
    # row rejected for its distance carries a NUL in another cell (a free-text note)
    rides = make_rides(300)
    rides["ride_id"] = rides["ride_id"].astype(str)
    rides["note"] = "ok"
    rides.loc[3, "ride_id"] = "12\x0034"
    rides.loc[5, "ride_id"] = LONG_ID
    rides.loc[8, "trip_distance"] = -1.0
    rides.loc[8, "note"] = "bad\x00note"
    write_rides(str(tmp_path / "in"), rides, files=1)
    # When it is scored
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"), reject_threshold=0.05)
    # Then the 297 good rows are published and the three bad ones quarantined
    assert (summary.input_rows, summary.scored_rows, summary.rejected_rows) == (300, 297, 3)
    assert len(stored(engine)) == 297
    bad = rejects(engine)
    # And a refused id is stored as null, never as its raw unstorable text; a good id stays canonical
    ids = [v if isinstance(v, str) else None for v in bad["record_id"]]
    assert sorted(ids, key=lambda v: (v is not None, v)) == [None, None, rides.loc[8, "ride_id"]]
    # And every raw record is JSON the store accepted, with NUL replaced by U+FFFD
    raws = {str(_raw(r)["ride_id"])[:10]: _raw(r) for r in bad["raw_record"]}
    assert raws["12\ufffd34"]["note"] == "ok"
    assert raws[rides.loc[8, "ride_id"]]["note"] == "bad\ufffdnote"
    assert raws["r" * 10]["ride_id"] == LONG_ID
    assert sorted(bad["reason"]) == sorted(
        [
            "id field 'ride_id': contains a control character",
            "id field 'ride_id': is longer than 128 characters",
            "field 'trip_distance': -1 is below the minimum 0",
        ]
    )


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"a": "x\x00y"}, {"a": "x\ufffdy"}),
        ({"a\x00": 1}, {"a\ufffd": 1}),
        ({"a": "\ud800z"}, {"a": "\ufffdz"}),
        ({"a": ["\x00", {"b": "\udfff"}]}, {"a": ["\ufffd", {"b": "\ufffd"}]}),
        ({"a": float("nan"), "b": -float("inf")}, {"a": "NaN", "b": "-Infinity"}),
        ({"a": Decimal("1.25")}, {"a": "1.25"}),
    ],
)
def test_raw_records_are_made_storable(record, expected):
    text = raw_record_json(record)
    assert json.loads(text) == expected
    assert "\\u0000" not in text and "\\ud8" not in text and "\\udf" not in text


def test_raw_records_with_nul_and_surrogates_go_into_jsonb(pg_engine):
    # PostgreSQL's JSONB refuses \u0000 and lone surrogates: the cleaned text must load
    text = raw_record_json({"note": "a\x00b\ud800", "nested": {"k\x00": ["\udc00"]}})
    with pg_engine.connect() as conn:
        value = conn.execute(sa.text("SELECT CAST(:raw AS jsonb)"), {"raw": text}).scalar()
    assert value == {"note": "a\ufffdb\ufffd", "nested": {"k\ufffd": ["\ufffd"]}}


def test_a_duplicate_id_reject_keeps_the_raw_row_of_the_repeated_copy(engine, predictor, tmp_path):
    # Given a partition whose second file repeats an id of the first, with a different distance
    rides = make_rides(300)
    rides.loc[250, "ride_id"] = rides.loc[10, "ride_id"]
    rides.loc[250, "trip_distance"] = 12.5
    write_rides(str(tmp_path / "in"), rides, files=2)
    # When it is scored
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    # Then the repeated copy is rejected with its own raw row, not just its id
    assert (summary.scored_rows, summary.rejected_rows) == (299, 1)
    raw = _raw(rejects(engine)["raw_record"].iloc[0])
    assert raw["ride_id"] == int(rides.loc[10, "ride_id"])
    assert raw["trip_distance"] == 12.5 and raw["PULocationID"] == int(rides.loc[250, "PULocationID"])
    assert stored(engine).set_index("record_id").loc[str(rides.loc[10, "ride_id"]), "prediction"] == pytest.approx(
        predictor.predict(predictor.schema.validate_frame(rides.loc[[10]]).valid)[0]
    )


def test_a_decimal_column_is_a_number(engine, predictor, tmp_path):
    # Given a Parquet partition whose trip_distance is decimal128 (Python Decimal objects in pandas)
    rides = make_rides(200)
    table = pa.Table.from_pandas(rides, preserve_index=False)
    index = table.schema.get_field_index("trip_distance")
    decimals = pa.array([Decimal(f"{v:.2f}") for v in rides["trip_distance"]], pa.decimal128(10, 2))
    table = table.set_column(index, pa.field("trip_distance", pa.decimal128(10, 2)), decimals)
    directory = _partition_dir(tmp_path / "in")
    directory.mkdir(parents=True)
    pq.write_table(table, directory / "part-0.parquet")
    # When it is scored
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    # Then every row is scored, with the same predictions as the float column gives
    assert (summary.scored_rows, summary.rejected_rows) == (200, 0)
    expected = predictor.predict(predictor.schema.validate_frame(rides).valid)
    table = stored(engine).set_index("record_id")
    assert table.loc[rides["ride_id"].astype(str), "prediction"].tolist() == expected.tolist()


def test_a_database_error_at_publish_records_a_failed_run_and_keeps_the_published_rows(pg_engine, predictor, tmp_path):
    # Given a partition published once
    root = str(tmp_path / "in")
    write_rides(root, make_rides(200))
    first = run(predictor, pg_engine, root, str(tmp_path / "stage"))
    # And a database that now refuses every write to predictions (a real server-side error)
    with pg_engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'predictions are read-only today'; END $$"
            )
        )
        conn.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON predictions EXECUTE FUNCTION refuse()"))
    # When the partition is scored again
    with pytest.raises(PublishError, match="predictions are read-only today") as failure:
        run(predictor, pg_engine, root, str(tmp_path / "stage"))
    # Then the error is one line, the run is recorded as failed with the reason, the old rows are intact
    assert "\n" not in str(failure.value)
    history = runs(pg_engine)
    assert history["status"].tolist() == ["published", "failed"]
    assert "predictions are read-only today" in history["message"].iloc[1]
    assert set(stored(pg_engine)["run_id"]) == {first.run_id} and len(stored(pg_engine)) == 200
    # And neither run left staging behind
    assert [p for p in (tmp_path / "stage").rglob("*") if p.is_file()] == []


def test_a_shard_error_in_the_cli_path_records_a_failed_run(engine, predictor, tmp_path):
    # Given a partition with one good file and one that is not Parquet at all
    root = tmp_path / "in"
    write_rides(str(root), make_rides(100), files=1)
    (_partition_dir(root) / "part-00009.parquet").write_bytes(b"PAR1 this is not parquet")
    # When it is scored
    with pytest.raises(UnreadableInput, match="not a readable Parquet file"):
        run(predictor, engine, str(root), str(tmp_path / "stage"))
    # Then a failed run names the file, nothing is published, and no staging is left
    history = runs(engine)
    assert history["status"].tolist() == ["failed"]
    assert "part-00009.parquet is not a readable Parquet file" in history["message"].iloc[0]
    assert stored(engine).empty
    assert [p for p in (tmp_path / "stage").rglob("*") if p.is_file()] == []


def test_database_errors_do_not_print_the_row(pg_engine):
    # Given a row carrying a secret, too long for its column
    from scoring.batch.store.tables import scoring_runs

    secret = "s3cr3t-" + "x" * 30
    row = {
        "run_id": "r1",
        "job": "j",
        "partition_key": "p",
        "model_name": "m",
        "model_version": "v",
        "model_sha256": "0",
        "input_rows": 0,
        "scored_rows": 0,
        "rejected_rows": 0,
        "source_uri": secret,
        "started_at": sa.func.now(),
        "finished_at": sa.func.now(),
        "status": secret,
    }
    # When the database refuses it
    with pytest.raises(sa.exc.DBAPIError) as failure, pg_engine.begin() as conn:
        conn.execute(sa.insert(scoring_runs).values(**row))
    # Then the error names the problem but not the row's values
    assert "too long" in str(failure.value) and secret not in str(failure.value)


def test_a_published_run_removes_its_staging(engine, predictor, tmp_path):
    write_rides(str(tmp_path / "in"), make_rides(150), files=3)
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    assert summary.scored_rows == 150
    assert [p for p in (tmp_path / "stage").rglob("*") if p.is_file()] == []


def test_a_failed_run_removes_its_staging(engine, predictor, tmp_path):
    rides = make_rides(100)
    rides.loc[:20, "trip_distance"] = np.nan
    write_rides(str(tmp_path / "in"), rides, files=2)
    with pytest.raises(Exception, match="above the threshold"):
        run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    assert [p for p in (tmp_path / "stage").rglob("*") if p.is_file()] == []
    assert runs(engine)["status"].tolist() == ["failed"]


def test_publish_of_a_plan_whose_staging_is_gone_says_so(engine, predictor, tmp_path):
    # Given a scored plan whose staging was cleaned up (a cleared publish task after the cleanup task)
    from scoring.batch import publish_run, remove_run_staging, score_shard
    from scoring.errors import StagingGone

    write_rides(str(tmp_path / "in"), make_rides(50), files=1)
    plan = plan_for(predictor, tmp_path)
    shards = [score_shard(predictor, plan, 0, chunk_rows=50)]
    remove_run_staging(plan)
    # When it is published
    # (StagingGone: a PublishError no retry can fix, so Airflow fails it at once)
    with pytest.raises(StagingGone, match="staged output .* is gone"):
        publish_run(engine, plan, shards, predictor.bundle.manifest, reject_threshold=0.01)
    # Then the failure is recorded
    assert runs(engine)["status"].tolist() == ["failed"]


def test_a_failed_run_is_recorded_from_its_plan_when_the_bundle_can_no_longer_be_read(
    engine, predictor, demo_bundle, demo_bundle_dir, tmp_path
):
    # Given a run planned with a bundle (its name, version and sha256 kept in the plan) that is then deleted
    import shutil

    from scoring.batch import record_failed_run

    bundle = tmp_path / "bundle"
    shutil.copytree(demo_bundle_dir, bundle)
    manifest = demo_bundle.manifest
    write_rides(str(tmp_path / "in"), make_rides(10), files=1)
    plan = plan_for(predictor, tmp_path, run_id="manual__gone.try1", model_uri=str(bundle), model=manifest)
    shutil.rmtree(bundle)
    # When the failure is recorded without a manifest
    record_failed_run(engine, plan, None, "shard 0 (part-00000.parquet): it broke")
    # Then the record names the planned model and the reason, with zero counts
    history = runs(engine)
    row = history.iloc[0]
    assert history["status"].tolist() == ["failed"] and row["message"] == "shard 0 (part-00000.parquet): it broke"
    assert (row["model_name"], row["model_version"], row["model_sha256"]) == (
        manifest.name,
        manifest.version,
        manifest.sha256,
    )
    assert (row["input_rows"], row["scored_rows"], row["rejected_rows"]) == (0, 0, 0)


def test_a_shard_of_a_plan_made_with_another_bundle_is_a_bundle_changed_error(predictor, tmp_path):
    from scoring.batch import score_shard
    from scoring.errors import BundleChanged

    write_rides(str(tmp_path / "in"), make_rides(10), files=1)
    plan = replace(plan_for(predictor, tmp_path), model_sha256="0" * 64)
    with pytest.raises(BundleChanged, match="the bundle changed mid-run"):
        score_shard(predictor, plan, 0, chunk_rows=50)


def test_a_plan_that_names_no_model_is_refused_by_shard_and_publish(engine, predictor, tmp_path):
    from scoring.batch import publish_run, score_shard
    from scoring.errors import BundleChanged

    # Given a run scored with its bundle, and the same plan without its model sha256 (a plan made by
    # older code, or edited in an XCom)
    write_rides(str(tmp_path / "in"), make_rides(10), files=1)
    plan = plan_for(predictor, tmp_path)
    shards = [score_shard(predictor, plan, 0, chunk_rows=50)]
    blank = replace(plan, model_sha256="")
    # Then neither a shard nor the publish skips the model check: both refuse it
    with pytest.raises(BundleChanged, match="names no model sha256"):
        score_shard(predictor, blank, 0, chunk_rows=50)
    with pytest.raises(BundleChanged, match="names no model sha256"):
        publish_run(engine, blank, shards, predictor.bundle.manifest, reject_threshold=0.01)
    # And nothing was published; the refusal is recorded as the run's failure
    assert stored(engine).empty
    assert runs(engine)["status"].tolist() == ["failed"]
