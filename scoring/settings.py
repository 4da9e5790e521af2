"""One frozen Settings object, built from the environment once per composition root."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from scoring.errors import ConfigError

PREFIX = "SCORING_"
# A field's metadata key naming the variable it is read from when that is not SCORING_<FIELD>; None: not read.
ENV = "env"
DEFAULT_DATABASE_URL = "sqlite:///var/scoring.db"


@dataclass(frozen=True)
class Settings:
    """Everything an entry point may configure; each default is the embedded demo's."""

    # SQLite keeps the demo free of servers; production points this at PostgreSQL.
    database_url: str = DEFAULT_DATABASE_URL
    # Whether database_url was chosen on purpose: SCORING_DATABASE_URL set (even to the default), an
    # override, or any other URL. The web service's /ready checks the database only then.
    database_url_set: bool = field(default=False, metadata={ENV: None})
    # A bundle directory, local or s3://bucket/prefix/ (see scoring.model.bundle).
    model_uri: str = "var/models/ride_duration/1"
    # Root of the Hive-style input partitions, local or s3://.
    input_root: str = "var/data/input"
    # Where shards stage their scored rows before the one publishing transaction.
    staging_root: str = "var/staging"
    # Name of the dataset directory under input_root.
    dataset: str = "rides"
    # A run whose rejected/input ratio exceeds this publishes nothing and fails.
    reject_threshold: float = 0.01
    # Rows per read batch: bounds memory whatever the partition size.
    chunk_rows: int = 100_000
    # Rows a batch shard is packed to (small files group, Parquet splits at row groups). A shard task
    # pays ~1.5 s of Airflow start-up and scores ~250k rows/s on one core, so 500k rows keep that
    # overhead near a third of a shard's time while a 2M-row month still spreads over 4 workers.
    shard_rows: int = 500_000
    # Default threshold of every drift statistic (Evidently's default); a DAG run's param overrides it.
    drift_threshold: float = 0.1
    # When set, the web service answers 401 to requests without this key.
    api_key: str | None = None
    # Online request limits: records per request and body size in bytes.
    max_request_records: int = 1000
    max_request_bytes: int = 1_048_576
    # Streaming output: "kinesis" (output_stream) or "sqs" (output_queue_url), or unset to only return.
    stream_output: str | None = None
    output_stream: str | None = None
    output_queue_url: str | None = None
    # Streaming: where records that can never succeed (undecodable, invalid) go, with their reason.
    dead_letter_queue_url: str | None = None
    # Trusted places bundles may load from: comma-separated local folders and s3:// prefixes. Unset means
    # the folder holding the configured bundle (the parent of model_uri): the deployment's own model.
    # Fixed when the Settings are made (local roots made absolute), so a later override of model_uri (a
    # trigger form, a CLI flag) or a change of working directory never moves a root.
    model_roots: str | None = None
    # When set, a bundle must carry an HMAC-SHA256 signature made with this key at import, or it is refused.
    bundle_key: str | None = None
    # When set (a PostgreSQL URL), the web service and the stream log what they score to its prediction_log table
    # (scoring.monitoring.prediction_log), which the hourly traffic DAG turns into traffic_metrics.
    prediction_log_url: str | None = None
    # The fraction of /predict requests whose records the web service logs (1: all). Drift statistics need a
    # sample, not every record, and a busy service pays for every logged record on its own cores.
    prediction_log_sample: float = 1.0
    # Staged shards older than this many hours are swept (scoring staging sweep, the DAGs' cleanup task).
    staging_max_age_hours: float = 24.0
    # Where prometheus_client keeps each gunicorn worker's samples (gunicorn.conf.py sets it before the app is
    # imported); when set, /metrics sums every worker's. Read from the name the library itself reads.
    prometheus_multiproc_dir: str | None = field(default=None, metadata={ENV: "PROMETHEUS_MULTIPROC_DIR"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read SCORING_* variables (e.g. SCORING_DATABASE_URL); unset or empty ones keep defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = spec.metadata.get(ENV, PREFIX + spec.name.upper())
            raw = environ.get(name) if name else None
            if raw is None or raw == "":
                continue
            values[spec.name] = _parse(name, spec.type, raw)
        return cls(**values, database_url_set="database_url" in values)._checked()

    def __post_init__(self) -> None:
        if self.database_url != DEFAULT_DATABASE_URL:
            object.__setattr__(self, "database_url_set", True)
        roots = [root.strip() for root in (self.model_roots or "").split(",") if root.strip()]
        pinned = [_pinned(root) for root in roots] or [_default_root(self.model_uri)]
        object.__setattr__(self, "model_roots", ",".join(pinned))

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None values replaced (CLI flags win over the environment)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if "database_url" in given:
            given["database_url_set"] = True
        return replace(self, **given)._checked()

    def _checked(self) -> Settings:
        if not 0.0 <= self.reject_threshold <= 1.0:
            raise ConfigError(f"SCORING_REJECT_THRESHOLD must be between 0 and 1, got {self.reject_threshold}")
        if not 0.0 < self.prediction_log_sample <= 1.0:
            raise ConfigError(
                f"SCORING_PREDICTION_LOG_SAMPLE must be above 0 and at most 1, got {self.prediction_log_sample}"
            )
        if self.chunk_rows < 1:
            raise ConfigError(f"SCORING_CHUNK_ROWS must be positive, got {self.chunk_rows}")
        if self.shard_rows < 1:
            raise ConfigError(f"SCORING_SHARD_ROWS must be positive, got {self.shard_rows}")
        checked_drift_threshold(self.drift_threshold, "SCORING_DRIFT_THRESHOLD")
        if "/" in self.trusted_model_roots:
            raise ConfigError("SCORING_MODEL_ROOTS must not include the filesystem root '/': it would trust every path")
        if self.staging_max_age_hours <= 0:
            raise ConfigError(f"SCORING_STAGING_MAX_AGE_HOURS must be positive, got {self.staging_max_age_hours}")
        if self.stream_output not in (None, "kinesis", "sqs"):
            raise ConfigError(f"SCORING_STREAM_OUTPUT must be 'kinesis' or 'sqs', got {self.stream_output!r}")
        return self

    @property
    def trusted_model_roots(self) -> tuple[str, ...]:
        """The places bundles may load from: SCORING_MODEL_ROOTS, else the folder holding model_uri."""
        return tuple((self.model_roots or "").split(","))


def checked_drift_threshold(value: object, name: str = "drift threshold") -> float | None:
    """`value` as a drift threshold (None: the default), or ConfigError: it must be a finite positive number.

    One rule for the environment, the CLI and the DAGs' params: NaN compares false with every statistic and
    infinity is never passed, so either would silently switch drift detection off."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**1023:
        raise ConfigError(f"{name} must be a finite positive number, got an integer too large for a float")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        shown = value if isinstance(value, (int, float)) else type(value).__name__
        raise ConfigError(f"{name} must be a finite positive number, got {shown}")
    return float(value)


def normalize_database_url(url: str) -> str:
    """Accept what Airflow and Heroku-style tools emit: postgres:// means PostgreSQL via psycopg2."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def _pinned(root: str) -> str:
    """A root as it will be compared: s3:// prefixes as given, local folders absolute (cwd-independent)."""
    return root if root.startswith("s3://") else os.path.abspath(root)


def _default_root(uri: str) -> str:
    """The folder holding `uri` (`models/ride/1` -> `models/ride`), or the bundle itself when that folder
    would be a whole bucket or the filesystem root: a default must never trust everything."""
    trimmed = uri.rstrip("/")
    if trimmed.startswith("s3://"):
        head, _, _ = trimmed.rpartition("/")
        return head + "/" if head.count("/") >= 3 else trimmed + "/"
    folder = os.path.abspath(trimmed)
    parent = os.path.dirname(folder)
    return parent if parent != os.path.dirname(parent) else folder


def _parse(variable: str, type_name: object, raw: str) -> object:
    type_text = str(type_name)
    try:
        if type_text.startswith("int"):
            return int(raw)
        if type_text.startswith("float"):
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable} must be a {type_text}, got {raw!r}") from exc
    return raw
