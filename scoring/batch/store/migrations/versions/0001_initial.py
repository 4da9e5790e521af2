"""predictions, scoring_runs and rejected_records

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column("partition_key", sa.String(32), nullable=False),
        sa.Column("record_id", sa.Text, nullable=False),
        sa.Column("prediction", sa.Float(precision=53), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("run_id", sa.String(100), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", "partition_key", "record_id", name="pk_predictions"),
    )
    op.create_table(
        "scoring_runs",
        sa.Column("run_id", sa.String(100), nullable=False),
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column("partition_key", sa.String(32), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("input_rows", sa.BigInteger, nullable=False),
        sa.Column("scored_rows", sa.BigInteger, nullable=False),
        sa.Column("rejected_rows", sa.BigInteger, nullable=False),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("message", sa.Text),
        sa.PrimaryKeyConstraint("run_id", name="pk_scoring_runs"),
    )
    op.create_index("ix_scoring_runs_job_partition", "scoring_runs", ["job", "partition_key"])
    op.create_table(
        "rejected_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(100), nullable=False),
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column("partition_key", sa.String(32), nullable=False),
        sa.Column("record_id", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw_record", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejected_records"),
    )
    op.create_index("ix_rejected_records_job_partition", "rejected_records", ["job", "partition_key"])
    op.create_index("ix_rejected_records_run", "rejected_records", ["run_id"])


def downgrade() -> None:
    op.drop_table("rejected_records")
    op.drop_table("scoring_runs")
    op.drop_table("predictions")
