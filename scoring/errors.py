"""Plain exception types shared by every adapter; none of them knows about HTTP, Airflow or Lambda."""

from __future__ import annotations

from collections.abc import Sequence


class ScoringError(Exception):
    """Base class: every error this package raises on purpose derives from it."""


class ConfigError(ScoringError):
    """A setting is missing or malformed."""


class ModelLoadError(ScoringError):
    """A model bundle cannot be found, read or trusted."""


class BundleIntegrityError(ModelLoadError):
    """The artifact's sha256 does not match its manifest; it is refused before unpickling."""


class UntrustedBundle(ModelLoadError):
    """A bundle lies outside the trusted model roots, or lacks the signature the bundle key requires."""


class BundleUnreachable(ScoringError):
    """A bundle file cannot be read right now (the network, S3 throttling or a 5xx, a failing disk): a retry may
    succeed. Not a ModelLoadError, which says the bundle itself is missing, malformed or untrusted."""


class UnknownRecipe(ScoringError):
    """A manifest or command names a feature recipe that does not exist."""


class InvalidInput(ScoringError):
    """Input records fail the bundle's schema.

    `problems` holds one entry per rejected record: (position, record id or None, reason).
    """

    def __init__(self, message: str, problems: Sequence[tuple[int, object, str]] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class PartitionNotFound(ScoringError):
    """The input partition does not exist or holds no data files."""


class RejectThresholdExceeded(ScoringError):
    """Too many rows of a partition failed validation; nothing was published."""


class PublishError(ScoringError):
    """The store refused a publish (counts do not reconcile, or the transaction failed)."""


class StagingGone(PublishError):
    """A shard's staged output is no longer there (cleaned up or swept); only scoring the partition again helps."""


class BundleChanged(PublishError):
    """The bundle's sha256 differs from the one the run was planned with; only a new run helps."""


class InvalidPartitionKey(ScoringError):
    """A partition key that is neither YYYY-MM-DD nor YYYY-MM-DDTHH with a real date and hour."""


class InvalidJobName(ScoringError):
    """A job name that cannot be a column value and a folder name."""


class UnreadableInput(ScoringError):
    """An input file that cannot be read as what its name says (corrupt Parquet, malformed CSV, a link out of the root)."""


class MalformedEvent(ScoringError):
    """A stream event that is not a Kinesis or SQS batch at all (not an object, no Records list)."""


class DatabaseUnavailable(ScoringError):
    """The predictions database cannot be reached (down, wrong host or port, refused credentials)."""


class DatabaseBehind(ScoringError):
    """The predictions database's schema is older than this code; `scoring db upgrade` brings it up to date."""


class DuplicateRecordIds(Exception):
    """The partition holds a record id twice; the publisher deduplicates and publishes again (never reaches a user)."""
