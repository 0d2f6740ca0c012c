"""The tutoring sessions: what the tutor pipeline remembers of a learner, in PostgreSQL.

``TutorSessions`` is the tutor pipeline's state: before each turn is stored,
``load`` reads (and locks) its session and recent turns, so that the fan-in
can choose a strategy from the learner's history; ``save`` records the turn
and the session's new level estimate, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, desc, select, update
from sqlalchemy.dialects import postgresql, sqlite

from orchestrator.domain import JSON
from orchestrator.models import AnalysisRun, TutorSession, TutorTurn, utcnow
from orchestrator.store import RunStore

#: Turns of history the fan-in looks at.
RECENT_TURNS = 5


@dataclass(frozen=True)
class SessionHistory:
    """A session as the next turn finds it."""

    session_id: str
    #: The running estimate of the learner's level.
    level: str
    #: Turns so far.
    turns: int
    error_counts: dict[str, int] = field(default_factory=dict)
    #: The last ``RECENT_TURNS`` turns, oldest first: ``{"error_types", "scores", "level"}``.
    recent: list[JSON] = field(default_factory=list)


class TutorSessions:
    """The tutor pipeline's ``PipelineState``."""

    def __init__(self, default_level: str) -> None:
        self.default_level = default_level

    def load(self, connection: Connection, run: AnalysisRun) -> SessionHistory:
        profile = run.request.get("learner_profile") or {}
        now = utcnow()
        dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
        connection.execute(
            dialect.insert(TutorSession)
            .values(
                session_id=run.context_id,
                level=profile.get("level") or self.default_level,
                turns=0,
                error_counts={},
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["session_id"])
        )
        # Locked: two turns of one session are concluded one after the other.
        session = connection.execute(
            select(TutorSession.__table__).where(TutorSession.session_id == run.context_id).with_for_update()
        ).one()
        recent = connection.execute(
            select(TutorTurn.error_types, TutorTurn.scores, TutorTurn.level)
            .where(TutorTurn.session_id == run.context_id)
            .order_by(desc(TutorTurn.turn))
            .limit(RECENT_TURNS)
        ).all()
        return SessionHistory(
            session_id=run.context_id,
            level=session.level,
            turns=session.turns,
            error_counts=dict(session.error_counts or {}),
            recent=[{"error_types": r.error_types, "scores": r.scores, "level": r.level} for r in reversed(recent)],
        )

    def save(self, connection: Connection, run: AnalysisRun, status: str, result: JSON) -> None:
        """Record the turn (not for a run that failed: nothing was taught)."""
        turn: Any = result.get("session")
        if status == "failed" or not isinstance(turn, dict):
            return
        # A failed grammar worker leaves its field null: a turn without error types.
        grammar = (result.get("analysis") or {}).get("grammar") or {}
        error_types = [error["type"] for error in grammar.get("errors") or []]
        dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
        inserted = connection.execute(
            dialect.insert(TutorTurn)
            .values(
                session_id=run.context_id,
                turn=turn["turn"],
                run_id=run.id,
                text=(run.request or {}).get("text", ""),
                scores=result.get("score") or {},
                error_types=error_types,
                strategy=result.get("strategy") or "",
                next_action=result.get("next_action") or "",
                level=turn["level"],
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["run_id"])
        )
        if not inserted.rowcount:  # this run's turn is already recorded
            return
        counts: dict[str, int] = dict(turn.get("error_counts") or {})
        connection.execute(
            update(TutorSession)
            .where(TutorSession.session_id == run.context_id)
            .values(level=turn["level"], turns=turn["turn"], error_counts=counts, updated_at=utcnow())
        )


def read_session(store: RunStore, session_id: str, limit: int = 100) -> JSON | None:
    """A session and its last ``limit`` turns (oldest first), or None if there is none."""
    with store.engine.connect() as connection:
        session = connection.execute(
            select(TutorSession.__table__).where(TutorSession.session_id == session_id)
        ).one_or_none()
        if session is None:
            return None
        turns = connection.execute(
            select(TutorTurn.__table__)
            .where(TutorTurn.session_id == session_id)
            .order_by(desc(TutorTurn.turn))
            .limit(limit)
        ).all()
    return {
        "session_id": session.session_id,
        "level": session.level,
        "turns": session.turns,
        "error_counts": session.error_counts,
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
        "history": [
            {
                "turn": turn.turn,
                "run_id": turn.run_id,
                "text": turn.text,
                "score": turn.scores,
                "error_types": turn.error_types,
                "strategy": turn.strategy,
                "next_action": turn.next_action,
                "level": turn.level,
                "at": turn.created_at.isoformat(),
            }
            for turn in reversed(turns)
        ],
    }
