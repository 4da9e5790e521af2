"""partition_metrics, traffic_metrics and prediction_log (monitoring)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _metrics_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column("partition_key", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(100), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("threshold", sa.Float(precision=53), nullable=True),
        sa.Column("drifted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("job", "partition_key", "feature", "metric", name=f"pk_{name}"),
    )


def upgrade() -> None:
    # A partition's metrics, written in the publish transaction beside its predictions.
    _metrics_table("partition_metrics")
    # The same metrics per hour of logged traffic (job 'online' or 'stream', partition_key the hour).
    _metrics_table("traffic_metrics")
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("record_id", sa.Text, nullable=True),
        sa.Column("inputs", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("prediction", sa.Float(precision=53), nullable=False),
        sa.Column("label", sa.Text, nullable=True),
        sa.CheckConstraint("source IN ('online', 'stream')", name="ck_prediction_log_source"),
    )
    # The hourly traffic DAG reads one source's closed hour at a time.
    op.create_index("ix_prediction_log_source_logged_at", "prediction_log", ["source", "logged_at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_source_logged_at", table_name="prediction_log")
    op.drop_table("prediction_log")
    op.drop_table("traffic_metrics")
    op.drop_table("partition_metrics")
