"""analysis_runs, llm_calls and contexts

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONColumn = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "analysis_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("context_id", sa.String(128), nullable=False, index=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
        sa.Column("request", JSONColumn, nullable=False),
        sa.Column("result", JSONColumn),
        sa.Column("worker_statuses", JSONColumn),
        sa.Column("errors", JSONColumn),
        sa.Column("traceparent", sa.String(64)),
        sa.Column("origin", JSONColumn),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("launched_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("duration_ms", sa.Float),
    )
    op.create_table(
        "llm_calls",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("analysis_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False, index=True),
        sa.Column("worker", sa.String(32), nullable=False),
        sa.Column("prompt_ref", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("output", JSONColumn),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_llm_calls_run_worker", "llm_calls", ["run_id", "worker"])
    op.create_table(
        "contexts",
        sa.Column("context_id", sa.String(128), primary_key=True),
        sa.Column("language", sa.String(35)),
        sa.Column("segments", JSONColumn, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("contexts")
    op.drop_index("ix_llm_calls_run_worker", table_name="llm_calls")
    op.drop_table("llm_calls")
    op.drop_table("analysis_runs")
