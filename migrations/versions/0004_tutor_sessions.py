"""tutoring sessions and their turns

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSONColumn = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tutor_sessions",
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("level", sa.String(2), nullable=False),
        sa.Column("turns", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_counts", JSONColumn, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tutor_turns",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "session_id",
            sa.String(128),
            sa.ForeignKey("tutor_sessions.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("turn", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False, unique=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("scores", JSONColumn, nullable=False),
        sa.Column("error_types", JSONColumn, nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("next_action", sa.String(32), nullable=False),
        sa.Column("level", sa.String(2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tutor_turns_session", "tutor_turns", ["session_id", "turn"])


def downgrade() -> None:
    op.drop_index("ix_tutor_turns_session", table_name="tutor_turns")
    op.drop_table("tutor_turns")
    op.drop_table("tutor_sessions")
