"""The zip builder's choices that can be checked without building: what goes in, what stays out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BUILD_ZIP = Path(__file__).resolve().parents[2] / "lambda" / "build_zip.py"


@pytest.fixture(scope="module")
def build_zip():
    spec = importlib.util.spec_from_file_location("build_zip", BUILD_ZIP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zip_carries_the_model_stack_and_not_the_batch_only_dependencies(build_zip):
    names = {build_zip.normalized(requirement) for requirement in build_zip.streaming_requirements()}
    assert {"scikit-learn", "numpy", "scipy", "pandas"} <= names
    assert not names & {"pyarrow", "sqlalchemy", "alembic", "psycopg2-binary", "flask", "apache-airflow"}


@pytest.mark.parametrize(
    ("python_version", "expected"),
    [("3.11", ["manylinux2014_x86_64"]), ("3.12", ["manylinux_2_34_x86_64", "manylinux_2_28_x86_64"])],
)
def test_wheels_match_the_runtimes_glibc(build_zip, python_version, expected):
    # python3.11 runs on Amazon Linux 2 (glibc 2.26): a manylinux_2_28 wheel would not load there.
    platforms = build_zip.PLATFORMS.get(python_version, build_zip.PLATFORMS["default"])
    assert all(tag in platforms for tag in expected)
    assert python_version != "3.11" or not any(tag.startswith("manylinux_2_2") for tag in platforms)


def test_prune_keeps_helpers_that_library_code_imports_from_its_tests(build_zip, tmp_path):
    tests = tmp_path / "numpy" / "_core" / "tests"
    tests.mkdir(parents=True)
    for name in ("_natype.py", "test_umath.py", "conftest.py", "data.npy"):
        (tests / name).write_text("x")
    (tmp_path / "scipy.pyx").write_text("x")
    build_zip.prune(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["_natype.py"]


def test_the_default_runtime_installs_from_its_own_lock(build_zip):
    # The zip and the image install with the runtime's pins, which are older than development's where the
    # runtime's glibc takes no newer wheels; every streaming requirement is pinned there.
    lock = build_zip.lock_path("3.11")
    pins = dict(line.split("==") for line in lock.read_text().splitlines() if "==" in line)
    wanted = {build_zip.normalized(r) for r in build_zip.streaming_requirements()}
    assert wanted <= {build_zip.normalized(name) for name in pins}
    command = build_zip.pip_command(["scikit-learn"], "3.11", "--constraint", str(lock))
    assert "--only-binary=:all:" in command and "--platform=manylinux2014_x86_64" in command
