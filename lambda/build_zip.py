"""Build the Lambda deployment zip: the handler, the scoring package and the streaming path's dependencies.

    .venv/bin/python lambda/build_zip.py [--python-version 3.11] [--out build/lambda.zip] [--bundle DIR]

Lambda unpacks a zip into at most 250 MB, and numpy + scipy + scikit-learn + pandas alone come
close. So the zip carries only what streaming imports: pyproject's dependencies minus pyarrow,
SQLAlchemy, alembic and psycopg2 (batch and store only) and minus boto3 and its kin (the Lambda
runtime ships them). Wheels are the manylinux builds the runtime's glibc can load; test folders,
C sources, type stubs and console scripts are dropped. Shared libraries are left as they are:
auditwheel patched them, and stripping patched libraries breaks them.

Lambda's /var/task is read-only, so bytecode cannot be cached there at run time: without .pyc
files every cold start would compile scipy, scikit-learn and pandas again. Compiling every module
would cost ~70 MB, so the build cold-starts the staged handler in an interpreter that sees nothing
else, records which modules it imports while answering a 500-ride event, and precompiles those
(unchecked-hash .pyc, valid whatever timestamps the unzip gives). It then runs the handler again
from the compiled tree and checks that it answers exactly as the development environment does.
That check needs this interpreter to be the runtime's version; for another version the zip ships
without bytecode and untested, and says so.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes: the documented 250 MB
# The Lambda Python runtimes include boto3; resolving with it keeps shared dependencies compatible with it.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3"}
# python3.11 runs on Amazon Linux 2 (glibc 2.26); python3.12 and later on Amazon Linux 2023 (glibc 2.34).
PLATFORMS = {
    "3.11": ["manylinux2014_x86_64"],
    "default": [f"manylinux_2_{minor}_x86_64" for minor in range(34, 16, -1)] + ["manylinux2014_x86_64"],
}
PRUNED_SUFFIXES = (".pyx", ".pxd", ".pxi", ".c", ".h", ".cpp", ".hpp", ".pyi")

STAGED_RUN = """
import importlib.util, json, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("lambda_function", sys.argv[1] + "/lambda_function.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
cold_start = time.perf_counter() - started
response = module.lambda_handler(json.load(open(sys.argv[2])), None)
import numpy, pandas, scipy, sklearn
versions = {m.__name__: m.__version__ for m in (numpy, scipy, pandas, sklearn)}
files = sorted({f for m in list(sys.modules.values()) if (f := getattr(m, "__file__", None)) and f.endswith(".py")})
print(json.dumps({"versions": versions, "response": response, "files": files, "cold_start": cold_start}))
"""


def normalized(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


# Beyond the core: pyproject's `stream` extra (the prediction log's PostgreSQL driver, pg8000: pure Python,
# about a megabyte with scramp and asn1crypto, where psycopg2-binary would bring its own libpq and OpenSSL).
# lambda/Dockerfile installs the same extra.
STREAMING_EXTRA = "stream"


def streaming_requirements() -> list[str]:
    """The installed project's core dependencies and its STREAMING_EXTRA's (pyproject's): all the streaming path needs."""
    wanted = []
    for dependency in importlib.metadata.requires("ride-scoring") or []:
        requirement, _, marker = (part.strip() for part in dependency.partition(";"))
        extras = re.findall(r"extra\s*==\s*[\"']([^\"']+)[\"']", marker)
        if not extras or extras == [STREAMING_EXTRA]:
            wanted.append(requirement)
    return wanted


def lock_path(python_version: str) -> Path:
    """The pinned resolution for a runtime: the wheels that load on its glibc, which differ from development's."""
    return REPO / "lambda" / f"constraints-py{python_version}.txt"


def pip_command(requirements: list[str], python_version: str, *options: str) -> list[str]:
    """pip install for the function's runtime: its Python, its glibc's wheels, binaries only."""
    platforms = PLATFORMS.get(python_version, PLATFORMS["default"])
    command = [sys.executable, "-m", "pip", "install", "--quiet", *options]
    command += [f"--platform={p}" for p in platforms]
    command += ["--implementation", "cp", "--python-version", python_version, "--only-binary=:all:", *requirements]
    return command


def pip_install(stage: Path, requirements: list[str], python_version: str) -> None:
    lock = lock_path(python_version)
    pinned = ["--constraint", str(lock)] if lock.exists() else []
    if not pinned:
        print(f"no {lock.name}: resolving the newest wheels for python{python_version} (make lambda-lock pins them)")
    command = pip_command(requirements, python_version, "--no-compile", "--target", str(stage), *pinned)
    subprocess.run(command, check=True)


def write_lock(python_version: str) -> Path:
    """Resolve the streaming requirements for the runtime afresh and pin the result beside this file."""
    with tempfile.TemporaryDirectory() as work:
        report = Path(work, "report.json")
        options = ("--dry-run", "--ignore-installed", "--target", work, "--report", str(report))
        subprocess.run(pip_command(streaming_requirements(), python_version, *options), check=True)
        installs = json.loads(report.read_text())["install"]
    pins = sorted(f"{item['metadata']['name']}=={item['metadata']['version']}" for item in installs)
    lock = lock_path(python_version)
    header = f"# The Lambda python{python_version} runtime's resolution (make lambda-lock); build_zip.py and lambda/Dockerfile install with it.\n"
    lock.write_text(header + "\n".join(pins) + "\n")
    return lock


def remove_distribution(stage: Path, name: str) -> None:
    """Delete an installed distribution's files, as listed in its RECORD."""
    for info in stage.glob("*.dist-info"):
        if normalized(info.name.removesuffix(".dist-info").rsplit("-", 1)[0]) != name:
            continue
        for line in (info / "RECORD").read_text().splitlines():
            path = stage / line.split(",", 1)[0]
            if path.is_file():
                path.unlink()
        shutil.rmtree(info, ignore_errors=True)
    for directory in sorted((d for d in stage.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def prune(stage: Path) -> None:
    """Drop what never runs in Lambda: tests and their data, C sources, type stubs, console scripts."""
    for tests in [d for d in stage.rglob("tests") if d.is_dir()]:
        for path in tests.rglob("*"):
            # Library code sometimes imports a helper from its tests (numpy.testing does): keep those modules.
            helper = path.suffix == ".py" and not path.name.startswith(("test_", "conftest"))
            if path.is_file() and not helper:
                path.unlink()
    shutil.rmtree(stage / "bin", ignore_errors=True)
    for path in stage.rglob("*"):
        if path.is_file() and path.suffix in PRUNED_SUFFIXES:
            path.unlink()


def add_project(stage: Path, bundle: str | None) -> None:
    shutil.copytree(REPO / "scoring", stage / "scoring", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "lambda" / "lambda_function.py", stage / "lambda_function.py")
    if bundle:
        # Then set SCORING_MODEL_URI=/var/task/model on the function.
        shutil.copytree(bundle, stage / "model")


def write_zip(stage: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(stage.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(stage))


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


class StagedCheck:
    """A 500-ride Kinesis event, a demo bundle, and what the development environment answers for them."""

    def __init__(self, work: Path):
        sys.path.insert(0, str(REPO))
        from scoring.demo.synthetic import generate_rides
        from scoring.demo.training import train_demo_bundle
        from scoring.stream.wire import kinesis_event_record

        self.bundle, self.event_path = work / "bundle", work / "event.json"
        train_demo_bundle(str(self.bundle))
        rides = generate_rides(500, start=datetime(2026, 4, 1, tzinfo=timezone.utc), span=timedelta(hours=1), seed=3)
        records = []
        for position, ride in enumerate(rides.itertuples()):
            features = {"PULocationID": int(ride.PULocationID), "DOLocationID": int(ride.DOLocationID)}
            payload = {"ride": {**features, "trip_distance": float(ride.trip_distance)}, "ride_id": int(ride.ride_id)}
            raw = {"PartitionKey": "k", "SequenceNumber": str(position + 1), "Data": json.dumps(payload).encode()}
            records.append(kinesis_event_record(raw, "shardId-000000000000", "arn:local", "us-east-1"))
        self.event_path.write_text(json.dumps({"Records": records}))
        self.expected = _develop_answer(self.bundle, self.event_path)

    def run(self, stage: Path) -> dict:
        """Cold-start the staged handler where nothing else is importable; its answer, versions and modules."""
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("SCORING_", "PYTHON"))}
        environment.update(SCORING_MODEL_URI=str(self.bundle), PYTHONDONTWRITEBYTECODE="1")
        run = subprocess.run(
            [sys.executable, "-S", "-c", STAGED_RUN, str(stage), str(self.event_path)],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        if run.returncode != 0:
            sys.exit(f"the staged handler does not start:\n{run.stderr[-3000:]}")
        result = json.loads(run.stdout.splitlines()[-1])
        if result["response"] != self.expected:
            sys.exit("the zip's libraries predict differently from the development environment")
        return result


def _develop_answer(bundle: Path, event_path: Path) -> dict:
    from scoring.model import BundleTrust, Predictor, load_bundle
    from scoring.stream.events import handle_event

    predictor = Predictor(load_bundle(str(bundle), BundleTrust.of_bundle(str(bundle))))
    return handle_event(predictor, json.loads(event_path.read_text()), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python-version", default="3.11", help="the function's runtime, e.g. 3.11 (python3.11)")
    parser.add_argument("--out", default=str(REPO / "build" / "lambda.zip"))
    parser.add_argument(
        "--bundle", help="a bundle directory to bake in as model/ (else use SCORING_MODEL_URI=s3://...)"
    )
    parser.add_argument("--lock", action="store_true", help="only pin the runtime's resolution, build nothing")
    args = parser.parse_args()
    if args.lock:
        lock = write_lock(args.python_version)
        print(f"{lock}: {len(lock.read_text().splitlines()) - 1} pinned packages for python{args.python_version}")
        return 0

    out = Path(args.out)
    stage = out.with_suffix("")
    shutil.rmtree(stage, ignore_errors=True)
    requirements = streaming_requirements()
    print(f"installing for python{args.python_version}: {' '.join(requirements)}")
    pip_install(stage, requirements, args.python_version)
    for name in sorted(RUNTIME_PROVIDED):
        remove_distribution(stage, name)
    prune(stage)
    add_project(stage, args.bundle)
    runtime = f"{sys.version_info.major}.{sys.version_info.minor}" == args.python_version
    if runtime:
        with tempfile.TemporaryDirectory() as work:
            check = StagedCheck(Path(work))
            imported = check.run(stage)["files"]
            for path in imported:
                py_compile.compile(path, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            compiled = check.run(stage)
        print(f"precompiled the {len(imported)} modules a cold start and an invocation import")
        print(f"checked: 500 rides answered exactly as in development; the zip carries {compiled['versions']}")
        print(f"cold start of the staged handler here: {compiled['cold_start']:.2f} s")
    else:
        print(f"NOT checked and no bytecode: this is python{sys.version_info.major}.{sys.version_info.minor}")
    write_zip(stage, out)
    unzipped, zipped = tree_bytes(stage), out.stat().st_size
    print(f"{out}: {zipped / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped (Lambda's limit: 262.1 MB unzipped)")
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        sys.exit(f"{out} unpacks to {unzipped} bytes, over Lambda's {LAMBDA_UNZIPPED_LIMIT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
