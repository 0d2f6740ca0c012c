"""the pipeline of each run and model call

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every run and call before this revision was of the analysis pipeline.
    for table in ("analysis_runs", "llm_calls"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("pipeline", sa.String(32), nullable=False, server_default="analysis"))


def downgrade() -> None:
    for table in ("llm_calls", "analysis_runs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("pipeline")
