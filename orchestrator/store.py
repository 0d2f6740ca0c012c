"""Persistence: every read and write of runs, model calls and contexts.

Idempotency lives here: ``claim_run`` inserts the run with ``ON CONFLICT DO
NOTHING`` on the unique ``event_id``, so of any number of concurrent claims
for one event exactly one creates the row (a claim, not check-then-act).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, create_engine, event, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.domain import JSON, Segment
from orchestrator.models import AnalysisRun, Context, LlmCall, utcnow


def create_db_engine(url: str) -> Engine:
    """An engine suited to the URL: pooled PostgreSQL, or SQLite in WAL mode."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets the API read while a worker thread writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # Sized for a threads pool of a few dozen workers plus the API.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40)


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming an event: its run and whether we created it."""

    run: AnalysisRun
    created: bool


@dataclass(frozen=True)
class Job:
    """What a worker task needs to analyse its part of a run."""

    run_id: str
    event_id: str
    segments: tuple[Segment, ...]
    language: str | None
    prompt_ids: dict[str, str]
    traceparent: str | None
    #: Output of an earlier successful attempt of the same worker, if any.
    previous_output: JSON | None = None


class RunStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    def ping(self) -> None:
        """Raises if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    # --- contexts -------------------------------------------------------

    def load_context(self, context_id: str) -> Context | None:
        with self.session() as session:
            return session.get(Context, context_id)

    def _upsert_context(self, session: Session, context_id: str, segments: JSON, language: str | None) -> None:
        values = {"context_id": context_id, "language": language, "segments": segments, "updated_at": utcnow()}
        statement = self._insert(Context).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["context_id"],
            set_={k: v for k, v in values.items() if k != "context_id"},
        )
        session.execute(statement)

    # --- runs -----------------------------------------------------------

    def claim_run(
        self,
        *,
        event_id: str,
        context_id: str,
        source: str,
        request: JSON,
        traceparent: str | None = None,
        origin: JSON | None = None,
        attempt: int = 1,
        save_context: bool = False,
    ) -> Claim:
        """Create the run for ``event_id`` unless one exists; return it either way.

        With ``save_context``, a newly created run also stores its segments as
        the context's latest, in the same transaction.
        """
        values: JSON = {
            "id": str(uuid.uuid4()),
            "event_id": event_id,
            "context_id": context_id,
            "source": source,
            "status": "pending",
            "attempt": attempt,
            "request": request,
            "traceparent": traceparent,
            "origin": origin,
            "created_at": utcnow(),
        }
        statement = (
            self._insert(AnalysisRun)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(AnalysisRun.id)
        )
        with self.session() as session:
            with session.begin():
                created = session.execute(statement).scalar_one_or_none() is not None
                if created and save_context:
                    self._upsert_context(session, context_id, request["segments"], request.get("language"))
            if created:
                return Claim(run=AnalysisRun(**values), created=True)
            run = session.execute(select(AnalysisRun).where(AnalysisRun.event_id == event_id)).scalar_one()
        return Claim(run=run, created=False)

    def mark_launched(self, run_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(AnalysisRun).where(AnalysisRun.id == run_id).values(launched_at=utcnow()))

    def take_over_stale_claim(self, run_id: str, older_than: timedelta) -> bool:
        """Take over a run claimed but never launched (its launcher died).

        True for exactly one caller, and only if the claim is older than
        ``older_than``: a younger claim may still be launching.
        """
        cutoff = utcnow() - older_than
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(AnalysisRun)
                .where(
                    AnalysisRun.id == run_id,
                    AnalysisRun.launched_at.is_(None),
                    AnalysisRun.created_at < cutoff,
                )
                .values(created_at=utcnow())
            )
            return bool(taken.rowcount)

    def stuck_runs(self, older_than: timedelta) -> list[AnalysisRun]:
        """Runs launched longer ago than ``older_than`` and still pending."""
        cutoff = utcnow() - older_than
        with self.session() as session:
            query = select(AnalysisRun).where(AnalysisRun.status == "pending", AnalysisRun.launched_at < cutoff)
            return list(session.execute(query.order_by(AnalysisRun.launched_at)).scalars())

    def take_over_stuck_run(self, run_id: str, older_than: timedelta) -> bool:
        """Claim the relaunch of a stuck run: True for exactly one caller."""
        cutoff = utcnow() - older_than
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(AnalysisRun)
                .where(AnalysisRun.id == run_id, AnalysisRun.status == "pending", AnalysisRun.launched_at < cutoff)
                .values(launched_at=utcnow())
            )
            return bool(taken.rowcount)

    def release_claim(self, run_id: str, reopened_from: int | None = None) -> None:
        """Undo a claim whose chord could not be launched, so a retry can claim anew.

        A new claim is deleted; a re-opened failed run (``reopened_from`` its
        previous attempt) goes back to ``failed`` at that attempt.
        """
        with self.session() as session, session.begin():
            run = session.get(AnalysisRun, run_id)
            if run is None or run.launched_at is not None or run.status != "pending":
                return
            if reopened_from is None:
                session.delete(run)
            else:
                run.status = "failed"
                run.attempt = reopened_from

    def reopen_failed_run(self, run_id: str, attempt: int, origin: JSON | None, traceparent: str | None = None) -> bool:
        """Re-open a failed run for a replayed delivery numbered ``attempt``.

        True for exactly one caller per attempt number: replaying the same
        dead letter twice analyses the event once. ``origin`` (the replayed
        message) replaces the old one, so a new dead letter carries its attempt.
        """
        with self.engine.begin() as connection:
            reopened = connection.execute(
                update(AnalysisRun)
                .where(AnalysisRun.id == run_id, AnalysisRun.status == "failed", AnalysisRun.attempt < attempt)
                .values(
                    status="pending",
                    attempt=attempt,
                    origin=origin,
                    traceparent=traceparent,
                    created_at=utcnow(),
                    launched_at=None,
                    finished_at=None,
                    duration_ms=None,
                    result=None,
                    worker_statuses=None,
                    errors=None,
                )
            )
            return bool(reopened.rowcount)

    # The worker's hot path (load_job, record_call, finish_run) uses plain
    # connections: the ORM session's unit of work was the largest CPU cost
    # of a worker task.

    def load_job(self, run_id: str, worker: str) -> Job:
        """What ``worker`` needs for the run; raises ``LookupError`` if no such run."""
        with self.engine.connect() as connection:
            run = connection.execute(
                select(AnalysisRun.event_id, AnalysisRun.request, AnalysisRun.traceparent).where(
                    AnalysisRun.id == run_id
                )
            ).one_or_none()
            if run is None:
                raise LookupError(f"run {run_id} not found")
            previous_output = connection.execute(_successful_output_query(run_id, worker)).scalar_one_or_none()
        return Job(
            run_id=run_id,
            event_id=run.event_id,
            segments=tuple(Segment.from_json(s) for s in run.request["segments"]),
            language=run.request.get("language"),
            prompt_ids=dict(run.request.get("prompt_ids") or {}),
            traceparent=run.traceparent,
            previous_output=previous_output,
        )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        result: JSON,
        worker_statuses: Mapping[str, str],
        errors: Mapping[str, str],
    ) -> AnalysisRun:
        """Store the outcome of a run; returns the run as stored (detached)."""
        with self.engine.begin() as connection:
            row = connection.execute(select(AnalysisRun.__table__).where(AnalysisRun.id == run_id)).one_or_none()
            if row is None:
                raise LookupError(f"run {run_id} not found")
            now = utcnow()
            values: JSON = {
                "status": status,
                "result": result,
                "worker_statuses": dict(worker_statuses),
                "errors": dict(errors),
                "finished_at": now,
                "duration_ms": (now - _aware(row.created_at)).total_seconds() * 1000,
            }
            connection.execute(update(AnalysisRun).where(AnalysisRun.id == run_id).values(**values))
        return AnalysisRun(**{**row._asdict(), **values})

    def pending_among(self, run_ids: Iterable[str]) -> set[str]:
        """Those of ``run_ids`` that have not finished yet."""
        with self.session() as session:
            query = select(AnalysisRun.id).where(AnalysisRun.id.in_(list(run_ids)), AnalysisRun.status == "pending")
            return set(session.execute(query).scalars())

    def get_run(self, run_or_event_id: str) -> AnalysisRun | None:
        """Look a run up by its run id or its event id."""
        with self.session() as session:
            return (
                session.get(AnalysisRun, run_or_event_id)
                or session.execute(
                    select(AnalysisRun).where(AnalysisRun.event_id == run_or_event_id)
                ).scalar_one_or_none()
            )

    # --- model calls ----------------------------------------------------

    def record_call(
        self,
        *,
        job: Job,
        worker: str,
        prompt_ref: str,
        model: str,
        attempt: int,
        status: str,
        latency_ms: float,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        error: str | None = None,
        output: JSON | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(LlmCall).values(
                    run_id=job.run_id,
                    event_id=job.event_id,
                    worker=worker,
                    prompt_ref=prompt_ref,
                    model=model,
                    attempt=attempt,
                    status=status,
                    latency_ms=latency_ms,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    error=error,
                    output=output,
                    created_at=utcnow(),
                )
            )

    def successful_output(self, run_id: str, worker: str) -> JSON | None:
        """The output of an earlier successful call of this worker in this run."""
        with self.engine.connect() as connection:
            output: JSON | None = connection.execute(_successful_output_query(run_id, worker)).scalar_one_or_none()
            return output

    def calls_for(self, run_id: str) -> list[LlmCall]:
        with self.session() as session:
            return list(session.execute(select(LlmCall).where(LlmCall.run_id == run_id).order_by(LlmCall.id)).scalars())

    def _insert(self, table: type[Any]) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT."""
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        return dialect.insert(table)


def _successful_output_query(run_id: str, worker: str) -> Select[tuple[Any]]:
    return (
        select(LlmCall.output)
        .where(LlmCall.run_id == run_id, LlmCall.worker == worker, LlmCall.status == "ok")
        .limit(1)
    )


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone=True columns.
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
