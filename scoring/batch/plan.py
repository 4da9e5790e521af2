"""A run's plan: which partition, which files, which model, and where its shards stage their output.

The plan is fixed once, before any shard is scored, and travels as plain data (an Airflow XCom), so
every shard of a run, on any worker, scores the same files with the same bundle.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from scoring.batch.options import validate_id_field
from scoring.batch.partitions import PartitionKey
from scoring.batch.pieces import Piece, pack_shards, whole_files
from scoring.batch.reader import file_layout, list_partition_files, partition_uri
from scoring.batch.record_names import RecordNaming, name_in_partition
from scoring.batch.staging import remove_staged_run, shard_prefix
from scoring.batch.store.tables import predictions, scoring_runs
from scoring.batch.store.writes import RunRecord
from scoring.errors import BundleChanged, ConfigError, InvalidJobName
from scoring.model.manifest import Manifest

# Job names become a column value and a staging folder: a safe character set, no '.' or '..', and
# no longer than the narrowest `job` column.
JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_JOB_LENGTH = min(predictions.c.job.type.length, scoring_runs.c.job.type.length)  # type: ignore[attr-defined]
# The rows a shard is packed to unless the run says otherwise (SCORING_SHARD_ROWS; see Settings.shard_rows).
DEFAULT_SHARD_ROWS = 500_000
MAX_RUN_ID_LENGTH: int = scoring_runs.c.run_id.type.length  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RunPlan:
    """What one run will score: the partition, its files, the bundle, and where shards stage their output."""

    run_id: str
    job: str
    partition_key: str
    source_uri: str
    files: list[str]
    staging_root: str
    started_at: str
    # The bundle every shard must use; a shard that loads another sha256 refuses to score. Name and
    # version are kept so a failed run is recorded from the plan alone, without reading the bundle again.
    # The defaults only let a plan made by older code be read back; such a plan is refused (check_model).
    model_uri: str = ""
    model_sha256: str = ""
    model_name: str = ""
    model_version: str = ""
    # Shards refuse a file that leads out of it; empty in plans made before it was carried.
    input_root: str = ""
    # The run's id options: another id column than the bundle's (None: the bundle's), and whether a
    # file without the id column fails the run (the bundle's id_required demands it too).
    id_field: str | None = None
    require_id: bool = False
    # Each shard's pieces (Piece.to_dict), packed to about shard_rows rows; empty in plans made before
    # shards were sized by work, which score one shard per file.
    shards: list[list[dict]] = field(default_factory=list)

    def run_record(
        self, manifest: Manifest | None, *, input_rows: int, rejected_rows: int, status: str, message: str | None = None
    ) -> RunRecord:
        """This run's scoring_runs row: the model is the manifest's when one was read, else the one planned."""
        return RunRecord(
            run_id=self.run_id,
            job=self.job,
            partition_key=self.partition_key,
            model_name=manifest.name if manifest else self.model_name,
            model_version=manifest.version if manifest else self.model_version,
            model_sha256=manifest.sha256 if manifest else self.model_sha256,
            input_rows=input_rows,
            scored_rows=input_rows - rejected_rows,
            rejected_rows=rejected_rows,
            source_uri=self.source_uri,
            started_at=datetime.fromisoformat(self.started_at),
            finished_at=datetime.now(timezone.utc),
            status=status,
            message=message,
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> RunPlan:
        return cls(**raw)

    def shard_count(self) -> int:
        """How many shards the run has (each one task, one staged pair of files)."""
        return len(self.shards) if self.shards else len(self.files)

    def pieces(self, index: int) -> list[Piece]:
        """The pieces shard `index` scores, in order."""
        if not self.shards:
            return whole_files(len(self.files))[index]
        return [Piece.from_dict(raw) for raw in self.shards[index]]

    def describe_shard(self, index: int) -> str:
        """The shard's input as a person reads it: its file, row groups, or how many files it groups."""
        pieces = self.pieces(index)
        first = pieces[0]
        name = self.file_name(first.file)
        if first.row_groups is not None and len(pieces) == 1:
            return f"{name} row groups {first.row_groups[0]}-{first.row_groups[1] - 1}"
        return name if len(pieces) == 1 else f"{name} and {len(pieces) - 1} more piece(s)"

    def shard_prefix(self, index: int) -> str:
        return shard_prefix(self.staging_root, self.job, self.partition_key, self.run_id, index)

    def record_naming(self, manifest: Manifest) -> RecordNaming:
        """The id column this run reads and whether a file must have it: the run's options over the bundle's."""
        id_field = self.id_field or manifest.id_field
        return RecordNaming(id_field=id_field, required=self.require_id or manifest.id_required)

    def file_name(self, index: int) -> str:
        """File `index` of the plan as its derived record ids name it: its path below the partition folder."""
        return name_in_partition(self.files[index], self.source_uri)

    def inputs_root(self) -> str:
        """The folder every input file must lie in; an older plan without it is held to its partition."""
        return self.input_root or self.source_uri


def new_run_id() -> str:
    """A unique run id that sorts by start time."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def validate_job_name(job: str) -> str:
    """The job name if it is usable as a column value and a staging folder name, else InvalidJobName saying why."""
    if not job:
        raise InvalidJobName("job name is empty")
    if len(job) > MAX_JOB_LENGTH:
        raise InvalidJobName(f"job name is longer than {MAX_JOB_LENGTH} characters (the width of the job column)")
    if not JOB_NAME.match(job[0]):
        raise InvalidJobName(f"job name {job[:40]!r} must start with a letter, a digit or '_'")
    if not JOB_NAME.fullmatch(job):
        raise InvalidJobName(f"job name {job[:40]!r} may hold only letters, digits, '_', '.' and '-'")
    return job


def plan_run(
    *,
    job: str,
    partition: PartitionKey,
    input_root: str,
    dataset: str,
    staging_root: str,
    model_uri: str,
    model: Manifest,
    run_id: str | None = None,
    id_field: str | None = None,
    require_id: bool = False,
    shard_rows: int = DEFAULT_SHARD_ROWS,
) -> RunPlan:
    """List the partition's files (PartitionNotFound if there are none), pack them into shards of about
    `shard_rows` rows, and fix the run's identity and model.

    `id_field` names another id column than the bundle's for this run; `require_id` fails a file without it.
    """
    validate_job_name(job)
    if id_field is not None:
        check_id_field(id_field, model)
    if require_id and not (id_field or model.id_field):
        raise ConfigError(
            "the run requires an id column but neither the bundle nor the run names one; give an id field"
        )
    if run_id is not None and not 0 < len(run_id) <= MAX_RUN_ID_LENGTH:
        raise InvalidJobName(f"run id must be 1 to {MAX_RUN_ID_LENGTH} characters long, got {len(run_id)}")
    if shard_rows < 1:
        raise ConfigError(f"shard rows must be positive, got {shard_rows}")
    files = list_partition_files(input_root, dataset, partition)
    shards = pack_shards([file_layout(uri, input_root) for uri in files], shard_rows)
    return RunPlan(
        run_id=run_id or new_run_id(),
        job=job,
        partition_key=str(partition),
        source_uri=partition_uri(input_root, dataset, partition),
        files=files,
        shards=[[piece.to_dict() for piece in pieces] for pieces in shards],
        staging_root=staging_root,
        started_at=datetime.now(timezone.utc).isoformat(),
        model_uri=model_uri,
        model_sha256=model.sha256,
        model_name=model.name,
        model_version=model.version,
        input_root=input_root,
        id_field=id_field,
        require_id=require_id,
    )


def check_id_field(id_field: str, model: Manifest) -> str:
    """The run's id column if it is a plain column name and not one of the model's inputs, else ConfigError."""
    validate_id_field(id_field)
    if id_field in {spec.name for spec in model.inputs}:
        raise ConfigError(f"id field '{id_field}' is an input of {model.name} v{model.version}; name another column")
    return id_field


def check_model(plan: RunPlan, manifest: Manifest) -> None:
    """BundleChanged unless `manifest` is the bundle the run was planned with; a plan naming none is refused."""
    if not plan.model_sha256:
        raise BundleChanged(
            f"run {plan.run_id} names no model sha256 in its plan, so its bundle cannot be verified; plan the run again"
        )
    if manifest.sha256 != plan.model_sha256:
        raise BundleChanged(
            f"run {plan.run_id} was planned with model sha256 {plan.model_sha256[:12]} but {manifest.name} "
            f"v{manifest.version} has {manifest.sha256[:12]}: the bundle changed mid-run; rerun the partition"
        )


def remove_run_staging(plan: RunPlan) -> int:
    """Delete the run's staged shards (local or s3://); returns how many files went."""
    return remove_staged_run(plan.staging_root, plan.job, plan.partition_key, plan.run_id)
