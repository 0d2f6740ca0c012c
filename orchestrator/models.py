"""SQLAlchemy models: the tables users query and audit.

JSON columns are JSONB on PostgreSQL and JSON text on SQLite, so the embedded
mode runs the same models and migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
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
    #: The sweeper looks for pending runs by launch time.
    __table_args__ = (Index("ix_analysis_runs_pending", "status", "launched_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    context_id: Mapped[str] = mapped_column(String(128), index=True, nullable=False)
    #: Which pipeline analyses it (``analysis``, ``tutor``, ...).
    pipeline: Mapped[str] = mapped_column(String(32), nullable=False, default="analysis")
    #: kafka, api or cli
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    #: pending until the aggregate callback (or the chord's error path) runs;
    #: then ok, partial or failed.
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    #: 1 for the original delivery; a replayed dead letter re-opens a failed
    #: run with the next number (so one replay analyses it once).
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    #: What was analysed: the pipeline's input (for analysis: language and the
    #: segments snapshot) and prompt_ids.
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
    #: Set once the chord has been handed to the broker (by its launcher, or
    #: by the first worker task to start, whichever comes first).
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Who may launch the current attempt: each launch gets a new token, and
    #: worker tasks carrying another token are stale and do nothing.
    claim_token: Mapped[str | None] = mapped_column(String(36))
    #: Until when the owner of ``claim_token`` may launch; afterwards an
    #: unlaunched claim may be taken over.
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: How many times the sweeper relaunched a lost chord of this attempt.
    relaunches: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[float | None] = mapped_column(Float)


#: ``llm_calls`` statuses of an attempt that produced the worker's output.
ANSWERED_CALL_STATUSES = ("ok", "cached")


class LlmCall(Base):
    """One row per model call attempt, successful or not: the audit trail."""

    __tablename__ = "llm_calls"
    __table_args__ = (Index("ix_llm_calls_run_worker", "run_id", "worker"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("analysis_runs.id", ondelete="CASCADE"), nullable=False)
    event_id: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    pipeline: Mapped[str] = mapped_column(String(32), nullable=False, default="analysis")
    worker: Mapped[str] = mapped_column(String(32), nullable=False)
    prompt_ref: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    #: ok, cached (answered from the response cache: no tokens), error or timeout
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    #: US dollars, from MODEL_PRICES: 0 for the builtin model and cached answers,
    #: null when the model has no price or the call reported no tokens.
    cost_usd: Mapped[float | None] = mapped_column(Float)
    #: The level of the degradation chain that was asked: 0 the model, then its
    #: fallback model, then the builtin analyser.
    level: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: True for the one repair attempt after an answer that was not the worker's JSON.
    repair: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
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


class DeadLetterOutbox(Base):
    """Dead letters decided but not yet acknowledged by Kafka.

    Written in the same transaction that stores the failed run, so a letter
    survives any restart; deleted once Kafka acknowledged it.
    """

    __tablename__ = "dead_letter_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    event_id: Mapped[str | None] = mapped_column(String(128))
    #: The Kafka message exactly as it will be sent.
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    #: ``[[name, base64 value], ...]``
    headers: Mapped[list[list[str]]] = mapped_column(JSONColumn, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    #: Failed publish attempts so far, and the last error.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class TutorSession(Base):
    """A learner's tutoring session: the running estimate of their level, and what they keep getting wrong."""

    __tablename__ = "tutor_sessions"

    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: CEFR level, A1..C2: first the learner profile's, then as the turns show.
    level: Mapped[str] = mapped_column(String(2), nullable=False)
    turns: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: How often each error type (ERRANT's) occurred in the session.
    error_counts: Mapped[dict[str, int]] = mapped_column(JSONColumn, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class TutorTurn(Base):
    """One analysed sentence of a session: its scores, error types, and what the tutor chose to do."""

    __tablename__ = "tutor_turns"
    __table_args__ = (Index("ix_tutor_turns_session", "session_id", "turn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("tutor_sessions.session_id", ondelete="CASCADE"), nullable=False)
    #: 1 for the session's first turn.
    turn: Mapped[int] = mapped_column(Integer, nullable=False)
    run_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    #: fluency, grammar, vocabulary, overall (0..1; null when that worker failed)
    scores: Mapped[dict[str, Any]] = mapped_column(JSONColumn, nullable=False)
    error_types: Mapped[list[str]] = mapped_column(JSONColumn, nullable=False)
    strategy: Mapped[str] = mapped_column(String(32), nullable=False)
    next_action: Mapped[str] = mapped_column(String(32), nullable=False)
    #: The session's level estimate after this turn.
    level: Mapped[str] = mapped_column(String(2), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
