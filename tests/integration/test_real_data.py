"""Real data in batch: TLC-shaped files without an id, derived record ids, the id and dataset options."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from scoring import cli
from scoring.batch.partitions import PartitionKey
from scoring.errors import ConfigError, InvalidInput
from scoring.model.predict import Predictor
from tests.conftest import make_rides
from tests.integration.batch_helpers import HOUR, JOB, plan_for, rejects, run, runs, stored
from tests.support.tlc import tlc_table, write_tlc_csv, write_tlc_parquet

pytestmark = pytest.mark.postgres

DAY = PartitionKey.parse("2026-03-01")


def _hour_dir(root: Path, hour: int = 5, dataset: str = "rides") -> Path:
    return root / dataset / "dt=2026-03-01" / f"hour={hour:02d}"


def _count(engine: sa.Engine, key: PartitionKey = HOUR) -> int:
    with engine.connect() as conn:
        query = sa.text("SELECT count(*) FROM predictions WHERE job = :job AND partition_key = :key")
        return conn.execute(query, {"job": JOB, "key": str(key)}).scalar_one()


@pytest.mark.parametrize(
    ("kind", "writer", "name"),
    [
        ("green", write_tlc_parquet, "green_tripdata.parquet"),
        ("yellow", write_tlc_parquet, "yellow_tripdata.parquet"),
        ("green", write_tlc_csv, "green_tripdata.csv"),
        ("yellow", write_tlc_csv, "yellow_tripdata.csv"),
    ],
)
def test_a_tlc_file_without_ids_scores_with_zero_rejects_and_a_rerun_leaves_one_copy(
    pg_engine, predictor, tmp_path, kind, writer, name
):
    # Given a file with exactly a TLC trip file's columns and dtypes (no ride_id, nullable floats, an
    # all-null column, microsecond timestamps) dropped into the hour's folder
    writer(_hour_dir(tmp_path / "in") / name, kind, 1_000)
    # When the hour is scored, in chunks smaller than the file
    summary = run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    # Then every row is scored, none rejected, each named by its file and its row in it
    assert (summary.input_rows, summary.scored_rows, summary.rejected_rows) == (1_000, 1_000, 0)
    assert sorted(stored(pg_engine)["record_id"]) == sorted(f"{name}:{row}" for row in range(1_000))
    # When the same hour is scored again
    run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"))
    # Then the table holds one copy of each row, not two
    assert _count(pg_engine) == 1_000
    assert list(runs(pg_engine)["status"]) == ["published", "published"]


def test_derived_ids_are_the_rows_positions_and_predict_as_with_an_id_column(pg_engine, predictor, tmp_path):
    # Given the same trips twice: one file with an id column, one without
    table = tlc_table("green", 300)
    with_ids = table.append_column("ride_id", pa.array(range(300), pa.int64()))
    _write(with_ids, _hour_dir(tmp_path / "a") / "trips.parquet")
    _write(table, _hour_dir(tmp_path / "b") / "trips.parquet")
    # When each is scored
    run(predictor, pg_engine, str(tmp_path / "a"), str(tmp_path / "stage"))
    by_id = stored(pg_engine).set_index("record_id")["prediction"]
    run(predictor, pg_engine, str(tmp_path / "b"), str(tmp_path / "stage"))
    by_row = stored(pg_engine).set_index("record_id")["prediction"]
    # Then row n of the file without ids is "trips.parquet:n", predicted exactly as the row with id n
    assert len(by_row) == 300
    for row in (0, 96, 97, 299):  # either side of the 97-row chunk boundary
        assert by_row[f"trips.parquet:{row}"] == by_id[str(row)]


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_a_daily_partition_keeps_the_hour_folder_in_derived_ids(pg_engine, predictor, tmp_path):
    # Given a day whose two hours each hold a file of the same name, without ids
    for hour in (3, 4):
        write_tlc_parquet(_hour_dir(tmp_path / "in", hour) / "part-0.parquet", "green", 50, seed=hour)
    # When the day is scored
    summary = run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"), key=DAY)
    # Then both files' rows are kept apart by their hour folder: 100 distinct ids, no duplicate rejected
    assert (summary.scored_rows, summary.rejected_rows) == (100, 0)
    ids = set(stored(pg_engine, DAY)["record_id"])
    assert {"hour=03/part-0.parquet:0", "hour=04/part-0.parquet:49"} <= ids and len(ids) == 100


def test_rejected_rows_of_a_file_without_ids_carry_their_derived_id(pg_engine, predictor, tmp_path):
    # Given a TLC file whose row 7 has a negative distance
    table = tlc_table("yellow", 100)
    distance = table.column("trip_distance").to_pylist()
    distance[7] = -1.0
    table = table.set_column(table.schema.get_field_index("trip_distance"), "trip_distance", pa.array(distance))
    _write(table, _hour_dir(tmp_path / "in") / "y.parquet")
    # When it is scored
    run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"), reject_threshold=0.5)
    # Then the rejected row is named like a scored one would be
    assert list(rejects(pg_engine)["record_id"]) == ["y.parquet:7"]


def test_a_file_with_the_id_column_still_refuses_null_ids(pg_engine, predictor, tmp_path):
    # Given a file that has the id column, with one null id
    rides = make_rides(50).astype({"ride_id": "float64"})
    rides.loc[3, "ride_id"] = None
    _write(pa.Table.from_pandas(rides, preserve_index=False), _hour_dir(tmp_path / "in") / "r.parquet")
    # When it is scored
    run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"), reject_threshold=0.5)
    # Then that row is rejected for its null id (no id is made up for it), the rest named by their ids
    assert list(rejects(pg_engine)["reason"]) == ["id field 'ride_id': is null"]
    assert "3" not in set(stored(pg_engine)["record_id"]) and len(stored(pg_engine)) == 49


def test_a_required_id_fails_a_file_without_it_naming_column_and_file(engine_sqlite_or_pg, predictor, tmp_path):
    # Given a TLC file without ride_id, and a bundle whose manifest demands the id column
    write_tlc_parquet(_hour_dir(tmp_path / "in") / "green.parquet", "green", 20)
    manifest = replace(predictor.bundle.manifest, id_required=True)
    strict = Predictor(replace(predictor.bundle, manifest=manifest))
    # When the hour is scored
    with pytest.raises(InvalidInput) as refused:
        run(strict, engine_sqlite_or_pg, str(tmp_path / "in"), str(tmp_path / "stage"))
    # Then the run fails on one line naming the column and the file, and publishes nothing
    message = str(refused.value)
    assert "'ride_id'" in message and "green.parquet" in message and "\n" not in message
    assert _count(engine_sqlite_or_pg) == 0
    assert list(runs(engine_sqlite_or_pg)["status"]) == ["failed"]


@pytest.fixture(params=["postgresql", "sqlite"])
def engine_sqlite_or_pg(request):
    return request.getfixturevalue("pg_engine" if request.param == "postgresql" else "sqlite_engine")


def test_the_run_option_names_another_id_column(pg_engine, predictor, tmp_path):
    # Given trips with their own id column, trip_id, and no ride_id
    table = tlc_table("green", 40).append_column("trip_id", pa.array([f"T{n:03d}" for n in range(40)]))
    _write(table, _hour_dir(tmp_path / "in") / "g.parquet")
    # When the run names trip_id as its id field
    run(predictor, pg_engine, str(tmp_path / "in"), str(tmp_path / "stage"), id_field="trip_id")
    # Then the rows are named by it
    assert list(stored(pg_engine)["record_id"]) == [f"T{n:03d}" for n in range(40)]


@pytest.mark.parametrize(
    ("id_field", "reason"),
    [
        ("../etc/passwd", "must be a column name"),
        ("a/b", "must be a column name"),
        (".hidden", "must be a column name"),
        ("trip id\nFAKE LOG LINE", "must be a column name"),
        ("x" * 129, "longer than 128 characters"),
        ("PULocationID", "is an input of"),
    ],
)
def test_a_bad_id_field_is_refused_before_planning(predictor, tmp_path, id_field, reason):
    write_tlc_parquet(_hour_dir(tmp_path / "in") / "g.parquet", "green", 5)
    with pytest.raises(ConfigError) as refused:
        plan_for(predictor, tmp_path, id_field=id_field)
    assert reason in str(refused.value) and "\n" not in str(refused.value)
    assert "FAKE" not in str(refused.value) and "passwd" not in str(refused.value)
    assert not (tmp_path / "stage").exists()


@pytest.mark.parametrize(
    "dataset",
    ["..", ".", "../rides", "/etc", "rides/../../etc", "s3://bucket/rides", "a\\b", "", "d" * 129, "rides\n"],
)
def test_a_dataset_that_is_not_one_plain_folder_name_is_refused(predictor, tmp_path, dataset):
    # Given rides where a traversal would find them (the input root's parent) and in the real place
    write_tlc_parquet(_hour_dir(tmp_path / "in") / "g.parquet", "green", 5)
    # When a run is planned with a hostile dataset name, Then it is one ConfigError line that does not echo it
    with pytest.raises(ConfigError) as refused:
        plan_for(predictor, tmp_path, dataset=dataset)
    message = str(refused.value)
    assert message.startswith("dataset ") and "\n" not in message
    assert not dataset or len(dataset) < 3 or dataset.strip() not in message


# --- the CLI --------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch, tmp_path, demo_bundle_dir):
    monkeypatch.setenv("SCORING_MODEL_URI", str(demo_bundle_dir))
    monkeypatch.setenv("SCORING_STAGING_ROOT", str(tmp_path / "stage"))
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert cli.main(["db", "upgrade", "--database", database]) == 0
    return tmp_path, database


def _score(cli_env, *extra: str) -> list[str]:
    root, database = cli_env
    argv = ["score", "--job", JOB, "--partition", "2026-03-01T05", "--input", str(root / "in"), "--database", database]
    return [*argv, *extra]


def test_the_cli_scores_another_dataset_folder(cli_env, capsys):
    # Given green-taxi trips in a dataset folder of their own
    root, _ = cli_env
    write_tlc_parquet(_hour_dir(root / "in", dataset="green_taxi") / "g.parquet", "green", 30)
    # When `scoring score --dataset green_taxi` runs
    code = cli.main(_score(cli_env, "--dataset", "green_taxi"))
    # Then it scores them
    assert code == 0
    assert "30 scored, 0 rejected of 30 rows" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--dataset", "../in/rides"], "error: dataset must be one folder name under the input root"),
        (["--dataset", "s3://other-bucket/x"], "error: dataset must be one folder name under the input root"),
        (["--id-field", "a/../b"], "error: id field must be a column name"),
        (["--require-id"], "error: "),
    ],
)
def test_the_cli_refuses_bad_run_options_in_one_line(cli_env, capsys, extra, expected):
    # Given trips without ride_id
    root, _ = cli_env
    write_tlc_parquet(_hour_dir(root / "in") / "g.parquet", "green", 10)
    # When scored with a hostile or demanding option
    code = cli.main(_score(cli_env, *extra))
    err = capsys.readouterr().err
    # Then one error line, no traceback, nothing staged left behind
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith(expected), err
    assert "Traceback" not in err
    if extra == ["--require-id"]:
        assert "'ride_id'" in lines[0] and "g.parquet" in lines[0]
    assert not any((root / "stage").rglob("*.parquet"))
