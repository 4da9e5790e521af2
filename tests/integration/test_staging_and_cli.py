"""Staging cleanup and sweep (local and S3 on moto), and the CLI's one-line errors for hostile input."""

from __future__ import annotations

import os
import struct
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from scoring import cli
from scoring.batch.partitions import PartitionKey
from scoring.batch.staging import shard_prefix
from tests.conftest import make_rides
from tests.integration.batch_helpers import JOB, head_revision, plan_for, run, runs, stored, write_rides

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)


def _stage_run(root: str, run_id: str, *, partition: str = "2026-03-01T05", shards: int = 2) -> list[str]:
    """Files laid out as shards of one run leave them."""
    from scoring import storage

    written = []
    for index in range(shards):
        prefix = shard_prefix(root, JOB, partition, run_id, index)
        for kind in ("predictions", "rejected"):
            storage.write_bytes(f"{prefix}.{kind}.parquet", b"x" * 10)
            written.append(f"{prefix}.{kind}.parquet")
    return written


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_sweep_removes_runs_older_than_the_age_and_keeps_fresh_ones(tmp_path):
    # Given two staged runs, one last written 30 hours ago and one just now, and a file that is not staging
    root = tmp_path / "stage"
    old = _stage_run(str(root), "old-run")
    fresh = _stage_run(str(root), "fresh-run")
    (root / "README.txt").write_text("not ours")
    thirty_hours_ago = NOW.timestamp() - 30 * 3600
    for path in old:
        os.utime(path, (thirty_hours_ago, thirty_hours_ago))
    for path in fresh:
        os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    # When staging older than 24 hours is swept
    from scoring.batch.staging import sweep_staging

    swept = sweep_staging(str(root), max_age_hours=24, now=NOW)
    # Then only the old run's files are gone, with its directory
    assert (swept.runs, swept.files, swept.bytes) == (1, 4, 40)
    assert not any("old-run" in f for f in _files(root))
    assert sum("fresh-run" in f for f in _files(root)) == 4 and "README.txt" in _files(root)
    assert not (root / JOB / "2026-03-01T05" / "old-run").exists()


def test_sweep_keeps_a_run_with_any_recent_file(tmp_path):
    # A run still writing its later shards must not lose its earlier ones
    root = tmp_path / "stage"
    files = _stage_run(str(root), "busy-run", shards=3)
    long_ago = NOW.timestamp() - 48 * 3600
    for path in files[:-1]:
        os.utime(path, (long_ago, long_ago))
    os.utime(files[-1], (NOW.timestamp(), NOW.timestamp()))
    from scoring.batch.staging import sweep_staging

    assert sweep_staging(str(root), max_age_hours=24, now=NOW).runs == 0
    assert len(_files(root)) == 6


@pytest.mark.aws
def test_s3_staging_is_removed_after_a_run_and_swept_when_stale(aws, sqlite_engine, predictor, tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="stage-clean")
    # Given a run staged on S3
    write_rides(str(tmp_path / "in"), make_rides(120), files=2)
    summary = run(predictor, sqlite_engine, str(tmp_path / "in"), "s3://stage-clean/staging")
    # Then its staging is gone once it has published
    assert summary.scored_rows == 120
    assert s3.list_objects_v2(Bucket="stage-clean").get("KeyCount") == 0
    # And stale staging left by a killed run is swept, fresh staging kept
    from scoring.batch.staging import sweep_staging

    _stage_run("s3://stage-clean/staging", "killed-run")
    _stage_run("s3://stage-clean/other", "not-under-the-root")
    assert sweep_staging("s3://stage-clean/staging", max_age_hours=24, now=datetime.now(timezone.utc)).runs == 0
    later = datetime.now(timezone.utc) + timedelta(hours=25)
    swept = sweep_staging("s3://stage-clean/staging", max_age_hours=24, now=later)
    assert (swept.runs, swept.files) == (1, 4)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="stage-clean").get("Contents", [])]
    assert keys and all(k.startswith("other/") for k in keys)


def test_sweep_command_prints_one_line(tmp_path, capsys, monkeypatch):
    root = tmp_path / "stage"
    files = _stage_run(str(root), "old-run")
    long_ago = time.time() - 3 * 3600
    for path in files:
        os.utime(path, (long_ago, long_ago))
    monkeypatch.setenv("SCORING_STAGING_ROOT", str(root))
    # The setting (24 h) keeps a 3-hour-old run; --older-than-hours 2 sweeps it
    assert cli.main(["staging", "sweep"]) == 0
    assert len(_files(root)) == 4
    assert cli.main(["staging", "sweep", "--older-than-hours", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2
    assert out[-1] == f"swept 1 staged run(s), 4 file(s), 40 bytes older than 2 hours from {root}"
    assert _files(root) == []


# --- the CLI: one `error:` line, never a traceback, never the raw row or a password -----------------


def _score(capsys, tmp_path, *extra: str, database: str | None = None, model: str | None = None) -> tuple[int, str]:
    """`scoring score` of the test partition; without `database`, into a SQLite file migrated first, as a deploy does."""
    if database is None:
        database = f"sqlite:///{tmp_path / 'db.sqlite'}"
        assert cli.main(["db", "upgrade", "--database", database]) == 0
    argv = ["score", "--job", JOB, "--partition", "2026-03-01T05", "--input", str(tmp_path / "in")]
    argv += ["--database", database]
    if model:
        argv += ["--model", model]
    code = cli.main([*argv, *extra])
    return code, capsys.readouterr().err


@pytest.fixture
def cli_env(monkeypatch, tmp_path, demo_bundle_dir):
    monkeypatch.setenv("SCORING_MODEL_URI", str(demo_bundle_dir))
    monkeypatch.setenv("SCORING_STAGING_ROOT", str(tmp_path / "stage"))
    return tmp_path


def _assert_one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_corrupt_parquet_is_one_error_line(cli_env, capsys):
    directory = cli_env / "in" / "rides" / "dt=2026-03-01" / "hour=05"
    write_rides(str(cli_env / "in"), make_rides(100), files=1)
    good = (directory / "part-00000.parquet").read_bytes()
    # Valid footer, damaged data pages: the file opens, then fails while being read
    footer_start = len(good) - 8 - struct.unpack("<I", good[-8:-4])[0]
    damaged = good[:4] + bytes(b ^ 0x5A for b in good[4:footer_start]) + good[footer_start:]
    (directory / "part-00000.parquet").write_bytes(damaged)
    code, err = _score(capsys, cli_env)
    assert code == 1
    line = _assert_one_error_line(err)
    assert "part-00000.parquet" in line


def test_unreachable_postgres_is_one_line_naming_the_database_without_its_password(cli_env, capsys):
    write_rides(str(cli_env / "in"), make_rides(10), files=1)
    code, err = _score(capsys, cli_env, database="postgresql://scorer:hunter2@127.0.0.1:1/predictions")
    assert code == 1
    line = _assert_one_error_line(err)
    assert "127.0.0.1:1/predictions" in line and "scorer" in line
    assert "hunter2" not in err


def test_score_refuses_a_database_behind_the_code_and_says_what_to_run(cli_env, capsys):
    # Given a partition and a predictions database nobody has migrated yet
    write_rides(str(cli_env / "in"), make_rides(10), files=1)
    database = f"sqlite:///{cli_env / 'fresh.sqlite'}"
    argv = ["score", "--job", JOB, "--partition", "2026-03-01T05", "--input", str(cli_env / "in")]
    # When it is scored into it
    code = cli.main([*argv, "--database", database])
    # Then the run stops before scoring, naming the revisions and the exact command, and migrates nothing
    line = _assert_one_error_line(capsys.readouterr().err)
    head = head_revision()
    assert code == 1
    assert line == (
        f"error: the predictions database at {database} is at no revision (no tables yet), this code needs "
        f"revision {head}: run `scoring db upgrade --database {database}` (with the real password) where the "
        "code is deployed"
    )
    assert not (cli_env / "stage").exists()
    # And once the deploy step has run, the same command scores
    assert cli.main(["db", "upgrade", "--database", database]) == 0
    assert cli.main([*argv, "--database", database]) == 0


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        ("", "is empty"),
        (".", "must start with a letter, a digit or '_'"),
        ("..", "must start with a letter, a digit or '_'"),
        ("a/../../etc", "may hold only letters, digits"),
        ("j" * 201, "is longer than 200 characters"),
        ("j" * 300, "is longer than 200 characters"),
    ],
)
def test_bad_job_names_are_refused_before_any_work(cli_env, capsys, job, reason):
    write_rides(str(cli_env / "in"), make_rides(10), files=1)
    argv = ["score", "--job", job, "--partition", "2026-03-01T05", "--input", str(cli_env / "in")]
    code = cli.main([*argv, "--database", f"sqlite:///{cli_env / 'db.sqlite'}"])
    line = _assert_one_error_line(capsys.readouterr().err)
    assert code == 1 and reason in line
    assert not (cli_env / "stage").exists() and not (cli_env / "db.sqlite").exists()


def test_csv_parse_error_names_file_and_line_but_not_the_row(cli_env, capsys):
    directory = cli_env / "in" / "rides" / "dt=2026-03-01" / "hour=05"
    write_rides(str(cli_env / "in"), make_rides(20), files=1, file_format="csv")
    path = directory / "part-00000.csv"
    lines = path.read_text().splitlines()
    lines[5] += ",secret-token-9f2"
    path.write_text("\n".join(lines) + "\n")
    code, err = _score(capsys, cli_env)
    line = _assert_one_error_line(err)
    assert code == 1 and "part-00000.csv" in line and "line 6" in line and "15 columns" in line
    assert "secret-token" not in err


def test_a_symlink_out_of_the_input_root_is_not_followed(cli_env, capsys, caplog):
    # Given a partition with a good file and a symlink to a file outside the input root
    outside = cli_env / "outside.csv"
    outside.write_text("ride_id,PULocationID\nroot:x:0:0:root,/root\n")
    write_rides(str(cli_env / "in"), make_rides(30), files=1)
    directory = cli_env / "in" / "rides" / "dt=2026-03-01" / "hour=05"
    (directory / "part-00001.csv").symlink_to(outside)
    # When it is scored
    code, err = _score(capsys, cli_env, "--reject-threshold", "0")
    # Then the symlink is skipped with a warning and the good file published
    assert code == 0, err
    assert "skipping" in caplog.text and "part-00001.csv" in caplog.text
    assert "root:x" not in err + caplog.text
    from scoring.batch.store.engines import make_engine

    engine = make_engine(f"sqlite:///{cli_env / 'db.sqlite'}")
    assert len(stored(engine)) == 30 and runs(engine)["input_rows"].tolist() == [30]


def test_a_symlinked_partition_directory_out_of_the_root_is_not_followed(tmp_path):
    from scoring.batch.reader import list_partition_files
    from scoring.errors import PartitionNotFound

    elsewhere = tmp_path / "elsewhere"
    write_rides(str(elsewhere), make_rides(5), files=1)
    (tmp_path / "in" / "rides" / "dt=2026-03-01").mkdir(parents=True)
    (tmp_path / "in" / "rides" / "dt=2026-03-01" / "hour=05").symlink_to(
        elsewhere / "rides" / "dt=2026-03-01" / "hour=05"
    )
    with pytest.raises(PartitionNotFound):
        list_partition_files(str(tmp_path / "in"), "rides", PartitionKey.parse("2026-03-01T05"))


def test_a_symlink_inside_the_input_root_is_read(tmp_path):
    from scoring.batch.reader import list_partition_files

    write_rides(str(tmp_path / "in"), make_rides(5), files=1, key=PartitionKey.parse("2026-03-01T04"))
    target = tmp_path / "in" / "rides" / "dt=2026-03-01" / "hour=04" / "part-00000.parquet"
    link_dir = tmp_path / "in" / "rides" / "dt=2026-03-01" / "hour=05"
    link_dir.mkdir(parents=True)
    (link_dir / "part-00000.parquet").symlink_to(target)
    files = list_partition_files(str(tmp_path / "in"), "rides", PartitionKey.parse("2026-03-01T05"))
    assert files == [str(link_dir / "part-00000.parquet")]


def test_a_failed_cli_run_is_recorded(cli_env, capsys):
    rides = make_rides(100)
    rides.loc[:9, "trip_distance"] = -1.0
    write_rides(str(cli_env / "in"), rides, files=1)
    code, err = _score(capsys, cli_env)
    assert code == 1 and "above the threshold" in _assert_one_error_line(err)
    from scoring.batch.store.engines import make_engine

    engine = make_engine(f"sqlite:///{cli_env / 'db.sqlite'}")
    assert runs(engine)["status"].tolist() == ["failed"] and stored(engine).empty
    assert [p for p in (cli_env / "stage").rglob("*") if p.is_file()] == []


# --- symlinks swapped in after planning ------------------------------------------------------------


def test_a_planned_file_swapped_for_a_symlink_out_of_the_root_is_refused_by_the_shard(predictor, tmp_path):
    from scoring.batch import score_shard
    from scoring.errors import UnreadableInput

    # Given a planned CSV partition whose first file is then replaced by a link to a file outside the input root
    outside = tmp_path / "outside.csv"
    outside.write_text("ride_id,PULocationID\nroot:x:0:0:root,/root\n")
    planned = write_rides(str(tmp_path / "in"), make_rides(20), files=1, file_format="csv")
    plan = plan_for(predictor, tmp_path)
    Path(planned[0]).unlink()
    Path(planned[0]).symlink_to(outside)
    # When the shard scores it
    with pytest.raises(UnreadableInput) as refused:
        score_shard(predictor, plan, 0, chunk_rows=50)
    # Then it is refused in one line naming the file, and nothing of the outside file is staged
    message = str(refused.value)
    assert "part-00000.csv" in message and "outside the input root" in message and "\n" not in message
    assert "root:x" not in message
    assert [p for p in (tmp_path / "stage").rglob("*") if p.is_file()] == []


def test_a_planned_file_swapped_for_a_symlink_inside_the_root_is_still_read(predictor, tmp_path):
    from scoring.batch import score_shard

    # Given a planned file replaced by a link to another file of the input root
    other = write_rides(str(tmp_path / "in"), make_rides(7), files=1, key=PartitionKey.parse("2026-03-01T04"))
    planned = write_rides(str(tmp_path / "in"), make_rides(20), files=1)
    plan = plan_for(predictor, tmp_path)
    Path(planned[0]).unlink()
    Path(planned[0]).symlink_to(other[0])
    # Then the shard reads the linked file
    assert score_shard(predictor, plan, 0, chunk_rows=50).input_rows == 7


def test_removing_a_run_does_not_delete_through_a_symlinked_job_folder(tmp_path):
    from scoring.batch.staging import remove_staged_run

    # Given staging/<job> is a link to a folder outside the staging root holding shard-shaped files
    outside = tmp_path / "outside"
    victims = _stage_run(str(outside), "run1")
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / JOB).symlink_to(outside / JOB)
    # When that run's staging is removed
    removed = remove_staged_run(str(tmp_path / "stage"), JOB, "2026-03-01T05", "run1")
    # Then nothing outside the staging root was deleted
    assert removed == 0
    assert all(Path(v).is_file() for v in victims) and len(victims) == 4
