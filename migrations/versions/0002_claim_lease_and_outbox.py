"""claim leases on analysis_runs; the dead-letter outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONColumn = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("analysis_runs") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(36)))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("relaunches", sa.Integer, nullable=False, server_default="0"))
    # The sweeper looks for pending runs only.
    op.create_index("ix_analysis_runs_pending", "analysis_runs", ["status", "launched_at"])
    op.create_table(
        "dead_letter_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), index=True),
        sa.Column("event_id", sa.String(128)),
        sa.Column("key", sa.LargeBinary),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONColumn, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("dead_letter_outbox")
    op.drop_index("ix_analysis_runs_pending", table_name="analysis_runs")
    with op.batch_alter_table("analysis_runs") as batch:
        batch.drop_column("relaunches")
        batch.drop_column("lease_expires_at")
        batch.drop_column("claim_token")
