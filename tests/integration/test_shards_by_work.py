"""Shards sized by work: pieces of files packed to about shard_rows rows, scored as if the files were whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from scoring.batch import publish_run, score_shard
from scoring.batch.partitions import PartitionKey
from scoring.batch.pieces import FileLayout, Piece, pack_shards
from scoring.batch.staging import ShardResult
from scoring.errors import UnreadableInput
from tests.conftest import make_rides
from tests.integration.batch_helpers import HOUR, plan_for, run, runs, stored

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request):
    return request.getfixturevalue("pg_engine" if request.param == "postgresql" else "sqlite_engine")


def partition_dir(tmp_path: Path, key: PartitionKey = HOUR) -> Path:
    directory = Path(tmp_path, "in", "rides", *key.path_segments())
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_parquet(path: Path, rides: pd.DataFrame, group_rows: int) -> None:
    pq.write_table(pa.Table.from_pandas(rides, preserve_index=False), path, row_group_size=group_rows)


def mixed_partition(tmp_path: Path) -> pd.DataFrame:
    """Three small Parquet files, a 4,000-row Parquet file in 1,000-row groups, and a CSV; ids derived (no ride_id)."""
    rides = make_rides(7_500).drop(columns=["ride_id"])
    directory = partition_dir(tmp_path)
    for number in range(3):
        write_parquet(directory / f"a-small-{number}.parquet", rides.iloc[number * 1000 : (number + 1) * 1000], 1000)
    write_parquet(directory / "b-large.parquet", rides.iloc[3000:7000], 1000)
    rides.iloc[7000:].to_csv(directory / "c-last.csv", index=False)
    return rides


def test_small_files_group_and_a_large_parquet_splits_at_its_row_groups(predictor, tmp_path):
    # Given small Parquet files, a large one of 4 row groups and a CSV
    mixed_partition(tmp_path)
    # When the run is planned with shards of 2,000 rows
    plan = plan_for(predictor, tmp_path, shard_rows=2000)
    # Then the small files share shards, the large file is cut only at row-group boundaries, the CSV stays whole
    names = [Path(f).name for f in plan.files]
    shards = [[(names[p.file], p.row_groups) for p in plan.pieces(i)] for i in range(plan.shard_count())]
    assert shards == [
        [("a-small-0.parquet", (0, 1)), ("a-small-1.parquet", (0, 1))],
        [("a-small-2.parquet", (0, 1)), ("b-large.parquet", (0, 1))],
        [("b-large.parquet", (1, 3))],
        [("b-large.parquet", (3, 4)), ("c-last.csv", None)],
    ]
    # And every row group of the large file is in exactly one piece
    groups = [g for i in range(plan.shard_count()) for p in plan.pieces(i) if p.file == 3 for g in range(*p.row_groups)]
    assert groups == [0, 1, 2, 3]


def test_the_issue_shapes_a_daily_demo_partition_is_one_shard_and_a_2m_file_is_four():
    # Given the demo's day (48 files of 10,000 rows) and a TLC month (2M rows in 250k-row groups)
    day = [FileLayout(group_rows=(10_000,)) for _ in range(48)]
    month = [FileLayout(group_rows=(250_000,) * 8)]
    # When they are packed to 500,000 rows a shard
    # Then the day is one shard and the month four, each of two whole row groups
    assert len(pack_shards(day, 500_000)) == 1
    assert pack_shards(month, 500_000) == [
        [Piece(0, 0, 2, 500_000)],
        [Piece(0, 2, 4, 500_000)],
        [Piece(0, 4, 6, 500_000)],
        [Piece(0, 6, 8, 500_000)],
    ]


def test_a_real_parquet_file_splits_into_four_shards_from_its_footer(predictor, tmp_path):
    # Given one Parquet file of 20,000 rows in 2,500-row groups (the 2M/250k shape, scaled down)
    write_parquet(partition_dir(tmp_path) / "month.parquet", make_rides(20_000), 2_500)
    # When planned at 5,000 rows a shard
    plan = plan_for(predictor, tmp_path, shard_rows=5_000)
    # Then it is four shards of two row groups each
    assert [plan.pieces(i)[0].row_groups for i in range(plan.shard_count())] == [(0, 2), (2, 4), (4, 6), (6, 8)]


def test_split_and_whole_runs_store_identical_predictions_and_derived_ids(engine, predictor, tmp_path):
    # Given the mixed partition, whose files carry no id column (ids are derived from file and row)
    rides = mixed_partition(tmp_path)
    root, stage = str(tmp_path / "in"), str(tmp_path / "stage")
    # When it is scored whole (one shard per run) and split (shards of 1,500 rows)
    whole = run(predictor, engine, root, stage, shard_rows=10**9)
    whole_rows = stored(engine).set_index("record_id")["prediction"]
    split = run(predictor, engine, root, stage, shard_rows=1_500)
    split_rows = stored(engine).set_index("record_id")["prediction"]
    # Then both store the same ids, named by the row's place in its FILE, with identical predictions
    assert (whole.scored_rows, split.scored_rows) == (len(rides), len(rides))
    pd.testing.assert_series_equal(whole_rows.sort_index(), split_rows.sort_index())
    assert {"b-large.parquet:0", "b-large.parquet:3999", "c-last.csv:499"} <= set(split_rows.index)
    assert "b-large.parquet:4000" not in split_rows.index
    # And the predictions are the model's for those rows
    expected = predictor.predict(predictor.schema.validate_frame(rides.iloc[3000:7000].reset_index(drop=True)).valid)
    assert np.array_equal(split_rows[[f"b-large.parquet:{i}" for i in range(4000)]].to_numpy(), expected)


def test_a_rerun_of_a_split_partition_keeps_one_copy(engine, predictor, tmp_path):
    # Given a partition scored in shards of 1,000 rows
    mixed_partition(tmp_path)
    root, stage = str(tmp_path / "in"), str(tmp_path / "stage")
    # When it is scored three times
    summaries = [run(predictor, engine, root, stage, shard_rows=1_000) for _ in range(3)]
    # Then one copy of each row is stored, from the last run, and every run's counts reconcile
    table = stored(engine)
    assert len(table) == 7_500 and table["record_id"].is_unique
    assert set(table["run_id"]) == {summaries[-1].run_id}
    history = runs(engine)
    assert list(history["input_rows"]) == [7_500] * 3


def test_a_killed_shards_retry_scores_only_its_own_pieces(engine, predictor, tmp_path, monkeypatch):
    # Given a run of four shards over one split file
    write_parquet(partition_dir(tmp_path) / "month.parquet", make_rides(8_000), 1_000)
    plan = plan_for(predictor, tmp_path, shard_rows=2_000)
    assert plan.shard_count() == 4
    # And shard 2 is killed half way through
    import scoring.batch.shard as shard_module

    real_read = shard_module.read_chunks

    def dying(*args, **kwargs):
        for number, chunk in enumerate(real_read(*args, **kwargs)):
            if number == 5:
                raise KeyboardInterrupt("worker killed")
            yield chunk

    results: dict[int, ShardResult] = {}
    for index in (0, 1, 3):
        results[index] = score_shard(predictor, plan, index, chunk_rows=100)
    monkeypatch.setattr(shard_module, "read_chunks", dying)
    with pytest.raises(KeyboardInterrupt):
        score_shard(predictor, plan, 2, chunk_rows=100)
    monkeypatch.setattr(shard_module, "read_chunks", real_read)
    untouched = {i: Path(results[i].predictions_uri).stat().st_mtime_ns for i in (0, 1, 3)}
    # When only shard 2 is retried
    read: list[int] = []
    results[2] = score_shard(predictor, plan, 2, chunk_rows=100, on_rows=read.append)
    # Then the retry read exactly its two row groups, the other shards' staging stayed as it was
    assert sum(read) == 2_000
    assert {i: Path(results[i].predictions_uri).stat().st_mtime_ns for i in (0, 1, 3)} == untouched
    # And the publish stores every row once
    summary = publish_run(engine, plan, [results[i] for i in range(4)], predictor.bundle.manifest, reject_threshold=0)
    table = stored(engine)
    assert summary.scored_rows == 8_000 and len(table) == 8_000 and table["record_id"].is_unique


def test_a_file_whose_row_groups_changed_after_planning_fails_its_shard(predictor, tmp_path):
    # Given a plan that split a file into two shards
    path = partition_dir(tmp_path) / "month.parquet"
    write_parquet(path, make_rides(4_000), 1_000)
    plan = plan_for(predictor, tmp_path, shard_rows=2_000)
    # When the file is rewritten with fewer row groups before shard 1 runs
    write_parquet(path, make_rides(1_000), 1_000)
    # Then the shard fails naming the change, instead of scoring rows it was not planned for
    with pytest.raises(UnreadableInput, match="changed after planning"):
        score_shard(predictor, plan, 1, chunk_rows=100)


def test_duplicate_ids_across_files_of_one_shard_keep_the_first_copy(engine, predictor, tmp_path):
    # Given two small files in one shard, the second repeating an id of the first
    rides = make_rides(200)
    directory = partition_dir(tmp_path)
    write_parquet(directory / "a.parquet", rides.iloc[:100], 100)
    again = rides.iloc[100:].copy()
    again.iloc[10, again.columns.get_loc("ride_id")] = rides["ride_id"].iloc[5]
    write_parquet(directory / "b.parquet", again, 100)
    # When the partition is scored in one shard with a threshold that allows one reject
    summary = run(predictor, engine, str(tmp_path / "in"), str(tmp_path / "stage"), reject_threshold=0.01)
    # Then the first copy is stored, the second rejected, and the counts say so
    assert (summary.scored_rows, summary.rejected_rows) == (199, 1)
    with engine.connect() as conn:
        reason = conn.execute(sa.text("SELECT reason FROM rejected_records")).scalar()
    assert "duplicate record id" in reason
    assert len(stored(engine)) == 199
