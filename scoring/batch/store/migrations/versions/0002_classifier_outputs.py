"""predictions gains a classifier's label and class probabilities

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, without defaults: PostgreSQL adds such columns without rewriting the table.
    with op.batch_alter_table("predictions") as table:
        table.add_column(sa.Column("label", sa.Text, nullable=True))
        table.add_column(sa.Column("probabilities", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as table:
        table.drop_column("probabilities")
        table.drop_column("label")
