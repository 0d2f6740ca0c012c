"""Persistence: every read and write of runs, model calls and contexts.

Idempotency lives here: ``claim_run`` inserts the run with ``ON CONFLICT DO
NOTHING`` on the unique ``event_id``, so of any number of concurrent claims
for one event exactly one creates the row (a claim, not check-then-act).
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    any_,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.dead_letters import DeadLetterMessage
from orchestrator.domain import JSON, split_stored_request
from orchestrator.errors import describe
from orchestrator.models import ANSWERED_CALL_STATUSES, AnalysisRun, Context, DeadLetterOutbox, LlmCall, utcnow


def database_engine_url(url: str) -> URL:
    """``url`` as the service opens it: a PostgreSQL URL naming psycopg2 (as earlier versions documented) is
    opened with psycopg 3, SQLAlchemy's default driver for ``postgresql://``. psycopg 3 prepares a statement on
    the server once a connection has run it five times, so PostgreSQL stops planning the statements that every
    event repeats (psycopg2 cannot). Any other URL is left as it is."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql+psycopg2":
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_db_engine(url: str, *, pre_ping: bool = True) -> Engine:
    """An engine suited to the URL (see ``database_engine_url``): pooled PostgreSQL, or SQLite in WAL mode.

    ``pre_ping`` tests each pooled connection before use (one round trip), so
    that a database restart costs no request an error. Processes that retry
    every database error anyway (workers, the bridge) go without: the first
    use of a dead connection fails, is retried, and the pool is renewed.
    """
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
    return create_engine(database_engine_url(url), pool_pre_ping=pre_ping, pool_size=10, max_overflow=40)


class StaleLaunch(LookupError):
    """A worker task of a launch that no longer counts: its run was taken over,
    finished, or never existed. The task does nothing."""


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming an event: its run, and our claim token if we created it."""

    run: AnalysisRun
    #: Set when this caller created the run and owns its launch.
    token: str | None

    @property
    def created(self) -> bool:
        return self.token is not None


@dataclass(frozen=True)
class Job:
    """What a worker task needs to analyse its part of a run."""

    run_id: str
    event_id: str
    pipeline: str
    #: The pipeline's input, as stored with the run.
    input: JSON
    prompt_ids: dict[str, str]
    traceparent: str | None
    #: Output of an earlier successful attempt of the same worker, if any.
    previous_output: JSON | None = None
    #: False when the caller asked for fresh answers.
    use_cache: bool = True
    #: Unix time by which the run should be answered, if the caller set a deadline.
    deadline_at: float | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: its status, merged result, and each worker's status and error."""

    status: str
    result: JSON
    worker_statuses: Mapping[str, str]
    errors: Mapping[str, str]


@dataclass(frozen=True)
class ModelCallRecord:
    """One ``llm_calls`` row before it is written (it may wait in a task's retry for the database)."""

    run_id: str
    event_id: str
    pipeline: str
    worker: str
    prompt_ref: str
    model: str
    attempt: int
    status: str = "ok"
    latency_ms: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    output: JSON | None = None
    cost_usd: float | None = None
    #: Where in the degradation chain: 0 the model, 1 its fallback, … (the builtin analyser last).
    level: int = 0
    #: The repair attempt after an answer that was not the worker's JSON.
    repair: bool = False

    def to_json(self) -> JSON:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelCallRecord:
        return cls(**data)


class RunStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # The statements of every event, built once: only their parameters change.
        self._claim = (
            self._insert(AnalysisRun).on_conflict_do_nothing(index_elements=["event_id"]).returning(AnalysisRun.id)
        )
        upsert = self._insert(Context)
        self._upsert_context_statement = upsert.on_conflict_do_update(
            index_elements=["context_id"],
            set_={name: upsert.excluded[name] for name in ("language", "segments", "updated_at")},
        )
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def _autocommit(self) -> Iterator[Connection]:
        """A connection whose statements each commit by themselves, for work that is one statement or
        statements that stand alone (the hot path of every event): no BEGIN, COMMIT or ROLLBACK round trips.

        psycopg's own flag is set, not SQLAlchemy's ``isolation_level`` option: that one would cost a
        ``SET`` on the connection's every return to the pool. SQLite commits at the end instead.
        """
        with self.engine.connect() as connection:
            if not self._postgres:
                yield connection
                connection.commit()
                return
            dbapi_connection: Any = connection.connection.dbapi_connection
            dbapi_connection.autocommit = True
            try:
                yield connection
            finally:
                if not dbapi_connection.closed:  # (invalidated by a lost connection)
                    dbapi_connection.autocommit = False

    def ping(self) -> None:
        """Raises if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    # --- contexts -------------------------------------------------------

    def load_context(self, context_id: str) -> JSON | None:
        """The input last stored for ``context_id`` (``{"language", "segments"}``), or None."""
        with self.session() as session:
            context = session.get(Context, context_id)
            return None if context is None else {"language": context.language, "segments": context.segments}

    def _upsert_context(self, connection: Connection, context_id: str, context: JSON) -> None:
        values = {
            "context_id": context_id,
            "language": context.get("language"),
            "segments": context["segments"],
            "updated_at": utcnow(),
        }
        connection.execute(self._upsert_context_statement, values)

    # --- claims and launches ---------------------------------------------
    #
    # A run is launched by whoever holds its claim token while the lease is
    # valid. Every statement below that changes who may launch is a
    # compare-and-set on the token, so exactly one caller wins each race.

    def claim_run(
        self,
        *,
        event_id: str,
        context_id: str,
        source: str,
        request: JSON,
        lease: timedelta,
        pipeline: str = "analysis",
        traceparent: str | None = None,
        origin: JSON | None = None,
        attempt: int = 1,
        context: JSON | None = None,
    ) -> Claim:
        """Create the run for ``event_id`` unless one exists; return it either way.

        The creator gets a claim token and a lease of ``lease``. With
        ``context`` (``{"language", "segments"}``), a newly created run also
        stores it as the context's latest input, in the same transaction.
        """
        now = utcnow()
        values: JSON = {
            "id": str(uuid.uuid4()),
            "event_id": event_id,
            "context_id": context_id,
            "pipeline": pipeline,
            "source": source,
            "status": "pending",
            "attempt": attempt,
            "request": request,
            "traceparent": traceparent,
            "origin": origin,
            "created_at": now,
            "claim_token": str(uuid.uuid4()),
            "lease_expires_at": now + lease,
            "relaunches": 0,
        }
        if context is None:
            with self._autocommit() as connection:
                created = connection.execute(self._claim, values).scalar_one_or_none() is not None
        elif self._postgres:
            # The run and its context in one statement: atomic, and no transaction to open and commit.
            context_values = {"language": context.get("language"), "segments": context["segments"], "updated_at": now}
            with self._autocommit() as connection:
                claimed = connection.execute(_claim_with_context(tuple(values)), {**values, **context_values})
                created = claimed.scalar_one_or_none() is not None
        else:
            with self.engine.begin() as connection:
                created = connection.execute(self._claim, values).scalar_one_or_none() is not None
                if created:
                    self._upsert_context(connection, context_id, context)
        if created:
            return Claim(run=AnalysisRun(**values), token=values["claim_token"])
        with self._autocommit() as connection:
            row = connection.execute(select(AnalysisRun.__table__).where(AnalysisRun.event_id == event_id)).one()
        return Claim(run=AnalysisRun(**row._asdict()), token=None)

    def take_over_claim(self, run_id: str, lease: timedelta) -> str | None:
        """Take over a claim whose launcher did not launch within its lease.

        Returns the new token for exactly one caller, and only once the lease
        has expired: a launcher still within its lease may be launching.
        """
        now = utcnow()
        return self._new_token(
            run_id,
            (
                AnalysisRun.status == "pending",
                AnalysisRun.launched_at.is_(None),
                or_(AnalysisRun.lease_expires_at.is_(None), AnalysisRun.lease_expires_at < now),
            ),
            lease_expires_at=now + lease,
            created_at=now,
        )

    def renew_lease(self, run_id: str, token: str, lease: timedelta) -> bool:
        """Extend an unexpired lease; False if ``token`` lost it (it must not launch)."""
        now = utcnow()
        with self._autocommit() as connection:
            renewed = connection.execute(
                update(AnalysisRun)
                .where(
                    AnalysisRun.id == run_id,
                    AnalysisRun.claim_token == token,
                    AnalysisRun.launched_at.is_(None),
                    AnalysisRun.lease_expires_at > now,
                )
                .values(lease_expires_at=now + lease)
            )
        return bool(renewed.rowcount)

    def mark_launched(self, run_id: str, token: str) -> bool:
        """Record that the chord of ``token`` was handed to the broker; False if it no longer counts."""
        with self._autocommit() as connection:
            marked = connection.execute(_MARK_LAUNCHED, {"run_id": run_id, "token": token, "now": utcnow()})
        return bool(marked.rowcount)

    def release_claim(self, run_id: str, token: str, reopened_from: int | None = None) -> None:
        """Undo our claim whose chord could not be handed to the broker, so a retry can claim anew.

        Only the owner of ``token`` releases, and only an unlaunched claim.
        A new claim is deleted (unless model calls were already recorded for
        it, whose history is kept; the lease then just expires). A re-opened
        failed run (``reopened_from`` its previous attempt) goes back to
        ``failed`` at that attempt.
        """
        ours = (
            (AnalysisRun.id == run_id)
            & (AnalysisRun.claim_token == token)
            & AnalysisRun.launched_at.is_(None)
            & (AnalysisRun.status == "pending")
        )
        with self.engine.begin() as connection:
            if reopened_from is not None:
                connection.execute(update(AnalysisRun).where(ours).values(status="failed", attempt=reopened_from))
                return
            no_calls = ~exists().where(LlmCall.run_id == run_id)
            deleted = connection.execute(delete(AnalysisRun).where(ours, no_calls))
            if not deleted.rowcount:
                connection.execute(update(AnalysisRun).where(ours).values(lease_expires_at=utcnow()))

    def reopen_failed_run(
        self, run_id: str, attempt: int, origin: JSON | None, lease: timedelta, traceparent: str | None = None
    ) -> str | None:
        """Re-open a failed run for a replayed delivery numbered ``attempt``.

        Returns a claim token for exactly one caller per attempt number:
        replaying the same dead letter twice analyses the event once.
        ``origin`` (the replayed message) replaces the old one, so a new dead
        letter carries its attempt.
        """
        now = utcnow()
        return self._new_token(
            run_id,
            (AnalysisRun.status == "failed", AnalysisRun.attempt < attempt),
            status="pending",
            attempt=attempt,
            origin=origin,
            traceparent=traceparent,
            created_at=now,
            launched_at=None,
            finished_at=None,
            duration_ms=None,
            result=None,
            worker_statuses=None,
            errors=None,
            lease_expires_at=now + lease,
            relaunches=0,
        )

    def unlaunched_runs(self, lease_expired_before: datetime) -> list[AnalysisRun]:
        """Pending runs never launched whose lease expired before the given moment (their launcher died)."""
        with self.session() as session:
            query = select(AnalysisRun).where(
                AnalysisRun.status == "pending",
                AnalysisRun.launched_at.is_(None),
                AnalysisRun.lease_expires_at < lease_expired_before,
            )
            return list(session.execute(query.order_by(AnalysisRun.created_at)).scalars())

    def launched_pending_runs(self, launched_before: datetime) -> list[AnalysisRun]:
        """Runs launched before the given moment and still pending."""
        with self.session() as session:
            query = select(AnalysisRun).where(
                AnalysisRun.status == "pending", AnalysisRun.launched_at < launched_before
            )
            return list(session.execute(query.order_by(AnalysisRun.launched_at)).scalars())

    def take_over_launch(self, run_id: str, token: str | None) -> str | None:
        """Take over the launch of a pending run from ``token`` (a relaunch of a lost chord).

        Returns the new token for exactly one caller; the old token's tasks
        become stale and do nothing. Counts the relaunch.
        """
        now = utcnow()
        owner = AnalysisRun.claim_token.is_(None) if token is None else AnalysisRun.claim_token == token
        return self._new_token(
            run_id,
            (AnalysisRun.status == "pending", owner),
            launched_at=now,
            lease_expires_at=now,
            relaunches=AnalysisRun.relaunches + 1,
        )

    def _new_token(self, run_id: str, conditions: tuple[Any, ...], **values: Any) -> str | None:
        """Give the run a new claim token (and ``values``) where ``conditions`` hold: a compare-and-set.

        Returns the token to the one caller whose update matched, None to the others.
        """
        token = str(uuid.uuid4())
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(AnalysisRun).where(AnalysisRun.id == run_id, *conditions).values(claim_token=token, **values)
            )
        return token if taken.rowcount else None

    # The worker's hot path (load_job, record_call, finish_run) uses plain
    # connections: the ORM session's unit of work was the largest CPU cost
    # of a worker task.

    def load_job(self, run_id: str, worker: str, token: str) -> Job:
        """What ``worker`` needs for the run launched with ``token``.

        Raises ``StaleLaunch`` when the run does not exist, is no longer
        pending, or was taken over (another token). The first task to start
        marks an unmarked run launched, so that once any task of a launch
        runs, its claim can no longer be taken over.
        """
        parameters = {"run_id": run_id, "worker": worker, "token": token, "now": utcnow()}
        with self._autocommit() as connection:
            if self._postgres:
                # One round trip: the run as it was before this statement, and whether this statement marked it.
                run = connection.execute(_LOAD_JOB_MARKING_LAUNCH, parameters).one_or_none()
            else:
                run = connection.execute(_LOAD_JOB, parameters).one_or_none()
            if run is None or run.status != "pending" or run.claim_token != token:
                raise StaleLaunch(f"run {run_id}: launch {token} is not current")
            if run.launched_at is None:
                marked = run.marked if self._postgres else connection.execute(_MARK_LAUNCHED, parameters).rowcount
                # Not marked by us: another task of the launch marked it first, or the claim was taken over.
                if not marked and self._current_token(connection, run_id) != token:
                    raise StaleLaunch(f"run {run_id}: launch {token} was taken over")
        previous_output = run.previous_output
        run_input, options = split_stored_request(run.request)
        return Job(
            run_id=run_id,
            event_id=run.event_id,
            pipeline=run.pipeline,
            input=run_input,
            prompt_ids=options.prompt_ids,
            use_cache=options.use_cache,
            deadline_at=options.deadline_at,
            traceparent=run.traceparent,
            previous_output=previous_output,
        )

    def finish_run(
        self,
        run_id: str,
        *,
        attempt: int,
        token: str | None,
        conclude: Callable[[AnalysisRun, Connection], RunOutcome],
        dead_letter: Callable[[AnalysisRun], DeadLetterMessage | None] | None = None,
        needs_lock: Callable[[AnalysisRun], bool] = lambda run: True,
    ) -> AnalysisRun | None:
        """Store the outcome of the run's launch ``token`` at ``attempt``; return the run as stored.

        A compare-and-set on the run, its attempt, its token and ``pending``:
        a late aggregate of an older attempt or launch, or a duplicate
        aggregate, changes nothing and returns None. ``conclude`` turns the
        run into its outcome; ``dead_letter`` may turn the stored run into a
        dead letter, put in the outbox in the same transaction.

        A run that ``needs_lock`` (its pipeline keeps state across runs) is
        read, locked, concluded and stored in one transaction. Any other run
        is read and then stored by a single compare-and-set UPDATE, each
        committing by itself (two round trips instead of four): ``conclude``
        must then be a pure function of the run. One whose outcome is a dead
        letter still takes the transaction, since the letter must not be
        stored without the outcome.
        """
        if self._postgres:
            with self._autocommit() as connection:
                row = connection.execute(self._launch_to_finish(run_id, attempt, token)).one_or_none()
                if row is None:
                    return None
                run = AnalysisRun(**row._asdict())
                if not needs_lock(run):
                    values = _finished_values(conclude(run, connection), run)
                    finished = AnalysisRun(**{**row._asdict(), **values})
                    if dead_letter is None or dead_letter(finished) is None:
                        stored = connection.execute(
                            update(AnalysisRun)
                            .where(*self._launch_conditions(run_id, attempt, token))
                            .values(**values)
                            .returning(AnalysisRun.id)
                        ).scalar_one_or_none()
                        return finished if stored is not None else None
        with self.engine.begin() as connection:
            # Two aggregates of one launch must not both pass this read.
            row = connection.execute(self._launch_to_finish(run_id, attempt, token).with_for_update()).one_or_none()
            if row is None:
                return None
            values = _finished_values(conclude(AnalysisRun(**row._asdict()), connection), row)
            connection.execute(update(AnalysisRun).where(AnalysisRun.id == run_id).values(**values))
            run = AnalysisRun(**{**row._asdict(), **values})
            letter = dead_letter(run) if dead_letter is not None else None
            if letter is not None:
                connection.execute(insert(DeadLetterOutbox).values(**_outbox_values(letter, run)))
        return run

    @staticmethod
    def _launch_conditions(run_id: str, attempt: int, token: str | None) -> tuple[ColumnElement[bool], ...]:
        """The run of this launch, still pending."""
        return (
            AnalysisRun.id == run_id,
            AnalysisRun.attempt == attempt,
            AnalysisRun.status == "pending",
            AnalysisRun.claim_token.is_(None) if token is None else AnalysisRun.claim_token == token,
        )

    @staticmethod
    def _launch_to_finish(run_id: str, attempt: int, token: str | None) -> Select[Any]:
        return select(AnalysisRun.__table__).where(*RunStore._launch_conditions(run_id, attempt, token))

    def pending_among(self, run_ids: Iterable[str]) -> set[str]:
        """Those of ``run_ids`` that have not finished yet."""
        query = _PENDING_AMONG_ARRAY if self._postgres else _PENDING_AMONG
        with self._autocommit() as connection:
            return set(connection.execute(query, {"run_ids": list(run_ids)}).scalars())

    def get_run(self, run_or_event_id: str) -> AnalysisRun | None:
        """Look a run up by its run id or its event id."""
        with self.session() as session:
            return (
                session.get(AnalysisRun, run_or_event_id)
                or session.execute(
                    select(AnalysisRun).where(AnalysisRun.event_id == run_or_event_id)
                ).scalar_one_or_none()
            )

    def _current_token(self, connection: Connection, run_id: str) -> str | None:
        token: str | None = connection.execute(
            select(AnalysisRun.claim_token).where(AnalysisRun.id == run_id, AnalysisRun.status == "pending")
        ).scalar_one_or_none()
        return token

    # --- dead-letter outbox -----------------------------------------------

    def publish_outbox(self, send: Callable[[list[DeadLetterMessage]], None], limit: int = 100) -> int:
        """Hand up to ``limit`` waiting dead letters to ``send``; delete them once it returns.

        ``send`` must raise unless every letter was acknowledged; then nothing
        is deleted and each letter's attempt count and last error are
        updated. Rows are locked (``SKIP LOCKED``) so that several publishers
        never send the same letter at the same time. Returns how many were sent.
        """
        with self.engine.connect() as connection:
            with connection.begin():
                rows = connection.execute(
                    select(DeadLetterOutbox.__table__)
                    .order_by(DeadLetterOutbox.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                ).all()
                if not rows:
                    return 0
                ids = [row.id for row in rows]
                try:
                    send([_outbox_letter(row) for row in rows])
                except Exception as exc:
                    failure = exc
                else:
                    connection.execute(delete(DeadLetterOutbox).where(DeadLetterOutbox.id.in_(ids)))
                    return len(ids)
            with connection.begin():
                connection.execute(
                    update(DeadLetterOutbox)
                    .where(DeadLetterOutbox.id.in_(ids))
                    .values(attempts=DeadLetterOutbox.attempts + 1, last_error=describe(failure)[:2000])
                )
        raise failure

    def outbox_entries(self, limit: int | None = None) -> list[DeadLetterOutbox]:
        """Dead letters not yet acknowledged by Kafka, oldest first."""
        with self.session() as session:
            query = select(DeadLetterOutbox).order_by(DeadLetterOutbox.id).limit(limit)
            return list(session.execute(query).scalars())

    # --- model calls ----------------------------------------------------

    def record_call(self, record: ModelCallRecord) -> None:
        with self._autocommit() as connection:
            # The statement is built once; only its parameters change.
            # (vars, not to_json: asdict would deep-copy the output.)
            connection.execute(_INSERT_CALL, {**vars(record), "created_at": utcnow()})

    def successful_output(self, run_id: str, worker: str) -> JSON | None:
        """The output of an earlier successful call of this worker in this run."""
        with self.engine.connect() as connection:
            output: JSON | None = connection.execute(_successful_output_query(run_id, worker)).scalar_one_or_none()
            return output

    def run_call_summary(self, run_id: str) -> tuple[float | None, list[Row[float | None, str, str, float | None]]]:
        """A run's duration, and the model, status and cost of each of its calls (no outputs read), in one query."""
        with self._autocommit() as connection:
            rows = connection.execute(_CALL_SUMMARY, {"run_id": run_id}).all()
        duration_ms = rows[0].duration_ms if rows else None
        return duration_ms, [row for row in rows if row.status is not None]

    def calls_for(self, run_id: str) -> list[LlmCall]:
        with self.session() as session:
            return list(session.execute(select(LlmCall).where(LlmCall.run_id == run_id).order_by(LlmCall.id)).scalars())

    def _insert(self, table: type[Any]) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT."""
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        return dialect.insert(table)


@functools.cache
def _claim_with_context(run_columns: tuple[str, ...]) -> Select[Any]:
    """PostgreSQL: insert the run (its ``run_columns``) unless its event has one; only if it was inserted, store
    its context as the context's latest input. Returns the new run's id (no row: the event had a run already).
    Built once per set of columns."""
    runs, contexts = AnalysisRun.__table__, Context.__table__
    claimed = (
        postgresql.insert(AnalysisRun)
        .values({name: bindparam(name, type_=runs.c[name].type) for name in run_columns})
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(runs.c.id)
        .cte("claimed")
    )
    context_columns = ("context_id", "language", "segments", "updated_at")
    context = select(*(bindparam(name, type_=contexts.c[name].type) for name in context_columns)).select_from(claimed)
    upsert = postgresql.insert(Context).from_select(context_columns, context)
    upsert = upsert.on_conflict_do_update(
        index_elements=["context_id"], set_={name: upsert.excluded[name] for name in context_columns[1:]}
    )
    return select(claimed.c.id).add_cte(upsert.cte("stored_context"))


_INSERT_CALL = insert(LlmCall)
_MARK_LAUNCHED = (
    update(AnalysisRun)
    .where(
        AnalysisRun.id == bindparam("run_id"),
        AnalysisRun.claim_token == bindparam("token"),
        AnalysisRun.status == "pending",
        AnalysisRun.launched_at.is_(None),
    )
    .values(launched_at=bindparam("now"))
)
_LOAD_JOB = select(
    AnalysisRun.event_id,
    AnalysisRun.pipeline,
    AnalysisRun.request,
    AnalysisRun.traceparent,
    AnalysisRun.status,
    AnalysisRun.claim_token,
    AnalysisRun.launched_at,
    # In the same round trip: an answer kept from an earlier delivery of this task.
    select(LlmCall.output)
    .where(
        LlmCall.run_id == bindparam("run_id"),
        LlmCall.worker == bindparam("worker"),
        LlmCall.status.in_(ANSWERED_CALL_STATUSES),
    )
    .limit(1)
    .scalar_subquery()
    .label("previous_output"),
).where(AnalysisRun.id == bindparam("run_id"))
#: PostgreSQL: the job, and the launch marked in the same statement (a data-modifying CTE runs once, whatever
#: the outer query reads; the outer query sees the run as it was before it). ``marked``: 1 if it marked it.
_LOAD_JOB_MARKING_LAUNCH = _LOAD_JOB.add_columns(
    select(func.count())
    .select_from(_MARK_LAUNCHED.returning(AnalysisRun.id).cte("marked"))
    .scalar_subquery()
    .label("marked")
)
#: The run's duration on each of its calls' rows (one row without a call if it has none).
_CALL_SUMMARY = (
    select(AnalysisRun.duration_ms, LlmCall.model, LlmCall.status, LlmCall.cost_usd)
    .outerjoin(LlmCall, LlmCall.run_id == AnalysisRun.id)
    .where(AnalysisRun.id == bindparam("run_id"))
)
_PENDING_AMONG = select(AnalysisRun.id).where(
    AnalysisRun.id.in_(bindparam("run_ids", expanding=True)), AnalysisRun.status == "pending"
)
#: PostgreSQL: the ids as one array parameter, so that the statement's text (and its prepared plan) is the same
#: for any number of runs; an expanding IN is a new statement for every count.
_PENDING_AMONG_ARRAY = select(AnalysisRun.id).where(
    AnalysisRun.id == any_(bindparam("run_ids", type_=postgresql.ARRAY(AnalysisRun.id.type))),
    AnalysisRun.status == "pending",
)


def _successful_output_query(run_id: str, worker: str) -> Select[tuple[Any]]:
    return (
        select(LlmCall.output)
        .where(LlmCall.run_id == run_id, LlmCall.worker == worker, LlmCall.status.in_(ANSWERED_CALL_STATUSES))
        .limit(1)
    )


def _finished_values(outcome: RunOutcome, run: Any) -> JSON:
    """The columns that record ``outcome`` on ``run`` (a run or its row), finished now."""
    now = utcnow()
    return {
        "status": outcome.status,
        "result": outcome.result,
        "worker_statuses": dict(outcome.worker_statuses),
        "errors": dict(outcome.errors),
        "finished_at": now,
        "duration_ms": (now - _aware(run.created_at)).total_seconds() * 1000,
    }


def _outbox_values(letter: DeadLetterMessage, run: AnalysisRun) -> JSON:
    return {
        "run_id": run.id,
        "event_id": run.event_id,
        "key": letter.key,
        "value": letter.value,
        "headers": [[name, base64.b64encode(data).decode("ascii")] for name, data in letter.headers],
        "created_at": utcnow(),
        "attempts": 0,
    }


def _outbox_letter(row: Any) -> DeadLetterMessage:
    headers = [(name, base64.b64decode(data)) for name, data in row.headers]
    return DeadLetterMessage(key=row.key, value=row.value, headers=headers)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone=True columns.
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
