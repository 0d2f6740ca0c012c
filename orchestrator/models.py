"""SQLAlchemy models: the tables users query and audit.

JSON columns are JSONB on PostgreSQL and JSON text on SQLite, so the embedded
mode runs the same models and migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONColumn = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class AnalysisRun(Base):
    """One row per event: its input, merged result and how each worker fared."""

    __tablename__ = "analysis_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    context_id: Mapped[str] = mapped_column(String(128), index=True, nullable=False)
    #: kafka, api or cli
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    #: pending until the aggregate callback (or the chord's error path) runs;
    #: then ok, partial or failed.
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    #: 1 for the original delivery; a replayed dead letter re-opens a failed
    #: run with the next number (so one replay analyses it once).
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    #: What was analysed: language, prompt_ids and the segments snapshot.
    request: Mapped[dict[str, Any]] = mapped_column(JSONColumn, nullable=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    worker_statuses: Mapped[dict[str, str] | None] = mapped_column(JSONColumn)
    errors: Mapped[dict[str, str] | None] = mapped_column(JSONColumn)
    #: W3C trace context of the request or message that started the run.
    traceparent: Mapped[str | None] = mapped_column(String(64))
    #: Kafka coordinates of the message that started the run, for dead letters.
    origin: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    #: When the current attempt was claimed; duration_ms counts from here.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    #: Set once the chord has been handed to the broker.
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[float | None] = mapped_column(Float)


class LlmCall(Base):
    """One row per model call attempt, successful or not: the audit trail."""

    __tablename__ = "llm_calls"
    __table_args__ = (Index("ix_llm_calls_run_worker", "run_id", "worker"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("analysis_runs.id", ondelete="CASCADE"), nullable=False)
    event_id: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    worker: Mapped[str] = mapped_column(String(32), nullable=False)
    prompt_ref: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    #: ok, error or timeout
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    #: The validated output of a successful call; lets a redelivered worker
    #: task reuse it instead of calling the model again.
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class Context(Base):
    """The latest segments of a context, so later requests may omit them."""

    __tablename__ = "contexts"

    context_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(35))
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSONColumn, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
