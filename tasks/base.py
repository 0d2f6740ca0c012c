"""What every task shares: its services, waiting out outages, and the retry-then-envelope policy.

Failures are judged by ``orchestrator.errors.classify``:

- our infrastructure (database, Redis) failed: retry with backoff (both
  backoffs are Celery's exponential backoff with full jitter) for up to
  ``DATABASE_RETRY_TIMEOUT`` seconds since the outage began, a budget of its
  own, so an outage is waited out instead of failing every run in flight;
- (``ModelWorkerTask``) the model failed transiently: retry with Celery's
  countdown, at least the server's ``Retry-After``, at most
  ``MODEL_MAX_RETRIES`` times; then, or at once on a permanent model error
  (a 4xx) or an answer still invalid after its repair, move down the degradation chain (``services.models``: the
  fallback model, then the builtin analyser) with a fresh retry budget of
  that level's own; past its last level, or on a bug, *return* an error
  envelope so that the chord's callback always runs (a raising header task
  would fail the whole chord). The chain is fixed and only ever walked down.
  A run with a deadline never waits past it: when no time is left for a
  model (or a retry's countdown would end after it), the builtin analyser
  answers at once if it is the chain's last level; otherwise the worker
  ends ``timeout``.

The retry state travels in the task's keyword arguments, so it survives a
worker restart: ``outage_since`` (when the outage began), ``level`` (of the
chain), ``model_failures`` (at this level), ``earlier_attempts`` (at the
levels above), ``fallback_reason`` (why the first level did not answer) and
``unrecorded`` (model calls whose ``llm_calls`` row could not be written
yet; written first on the next try, so the model is not called again).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from celery.utils.time import get_exponential_backoff_interval

from orchestrator.adapters.base import DeadlinePassed, ModelError, RepairFailed, TransientModelError
from orchestrator.engine import DEADLINE_RESERVE_S, CallNotRecorded, WorkerOutcome
from orchestrator.errors import Verdict, classify, describe
from orchestrator.live import WORKER_EVENT
from orchestrator.metrics import TASK_RETRIES
from orchestrator.services import builtin_is_fallback
from orchestrator.store import ModelCallRecord, StaleLaunch

if TYPE_CHECKING:
    from orchestrator.services import Services
    from tasks.celery_app import OrchestratorCelery

log = logging.getLogger(__name__)

#: Failures of a model that a lower level of the chain may make up for.
MODEL_FAILURES = (Verdict.MODEL_TRANSIENT, Verdict.MODEL_PERMANENT)

#: Longest pause between two tries during an outage. A retried task waits in
#: the worker unacknowledged, so it also stays below a quarter of the
#: visibility timeout (past it, Redis would deliver the task twice).
OUTAGE_BACKOFF_MAX_S = 30.0


def backoff(retries: int, cap: float, retry_after: float | None = None) -> float:
    """Seconds before the next try: Celery's exponential backoff with full jitter (what its
    ``retry_backoff`` uses, in whole seconds), at least the server's ``Retry-After``, at most ``cap``."""
    countdown = float(get_exponential_backoff_interval(1, retries, max(1, int(cap)), full_jitter=True))
    if retry_after is not None:
        countdown = max(countdown, retry_after)
    return min(countdown, cap)


class OrchestratorTask(Task):  # type: ignore[misc]
    """Base of every task: services, and an outage of our infrastructure is waited out."""

    app: OrchestratorCelery
    #: Retries are bounded by our own budgets, not by a count.
    max_retries = None
    #: ``__call__`` takes the retry state (``outage_since``, ...) out of the
    #: keyword arguments before the task function sees them, so Celery must
    #: not check the message's arguments against that function's signature.
    typing = False

    @property
    def services(self) -> Services:
        return self.app.services

    def __call__(self, *args: Any, outage_since: float | None = None, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except (Retry, Ignore, Reject):
            raise
        except Exception as exc:
            retry = self.retry_outage(exc, {**kwargs, "outage_since": outage_since})
            if retry is None:
                raise
            raise retry from exc

    def retry_outage(self, exc: Exception, state: dict[str, Any]) -> Retry | None:
        """The ``Retry`` to raise if ``exc`` is an outage of our infrastructure and its budget is not spent.

        ``state`` becomes the retried task's keyword arguments (``outage_since`` is set).
        """
        if classify(exc) is not Verdict.INFRASTRUCTURE:
            return None
        settings = self.app.settings
        since = state.get("outage_since") or time.time()
        waited = time.time() - since
        if waited >= settings.database_retry_timeout:
            log.error(
                "%s %s: infrastructure still failing after %.0f s; giving up: %s",
                self.name,
                self.request.args,
                waited,
                exc,
            )
            return None
        countdown = backoff(self.request.retries, min(OUTAGE_BACKOFF_MAX_S, settings.celery_visibility_timeout / 4))
        log.warning(
            "%s %s: infrastructure failure (%s); retrying in %.1f s (outage for %.0f s so far)",
            self.name, self.request.args, exc, countdown, waited,
        )  # fmt: skip
        TASK_RETRIES.labels(task=self.name, reason="outage").inc()
        retry: Retry = self.retry(exc=exc, countdown=countdown, kwargs={**state, "outage_since": since}, throw=False)
        return retry


class ModelWorkerTask(OrchestratorTask):
    """Base of the worker task: adds the model's retry policy and the error envelope (see the module docstring)."""

    def __call__(self, run_id: str, token: str, worker: str, **state: Any) -> Any:  # type: ignore[override]
        """The worker's outcome, once settled (not on a retry), also published for live followers."""
        outcome = self._settle(run_id, token, worker, **state)
        self.services.run_events.publish(run_id, token, WORKER_EVENT, outcome)
        return outcome

    def _settle(
        self,
        run_id: str,
        token: str,
        worker: str,
        *,
        level: int = 0,
        model_failures: int = 0,
        earlier_attempts: int = 0,
        fallback_reason: str | None = None,
        unrecorded: list[dict[str, Any]] | None = None,
        outage_since: float | None = None,
    ) -> Any:
        state: dict[str, Any] = {
            "level": level,
            "model_failures": model_failures,
            "earlier_attempts": earlier_attempts,
            "fallback_reason": fallback_reason,
            "unrecorded": list(unrecorded or []),
        }
        max_model_retries = self.app.settings.model_max_retries
        try:
            for record in state["unrecorded"]:
                self.services.store.record_call(ModelCallRecord.from_json(record))
            last = state["unrecorded"][-1] if state["unrecorded"] else None
            state["unrecorded"] = []
            if model_failures > max_model_retries and last is not None:
                # This level's budget ran out while its last failure waited to be recorded.
                if level + 1 >= len(self.services.models):
                    return WorkerOutcome(worker, last["status"], error=last["error"]).to_json()
                # (``model_failures`` already counts that failed attempt.)
                state = self._next_level({**state, "model_failures": model_failures - 1}, str(last["error"]))
            return Task.__call__(
                self, run_id, token, worker,
                attempt=state["earlier_attempts"] + state["model_failures"] + 1,
                level=state["level"],
                fallback_reason=state["fallback_reason"],
            )  # fmt: skip
        except (Retry, Ignore, Reject):
            raise
        except StaleLaunch as exc:
            log.info("%s task of run %s: %s; nothing to do", worker, run_id, exc)
            raise Ignore() from exc
        except CallNotRecorded as exc:
            log.warning("%s of run %s: model answer kept until its llm_calls row can be written", worker, run_id)
            state["unrecorded"].append(exc.record.to_json())
            if exc.record.status != "ok":
                state["model_failures"] += 1
            return self._wait_out(exc, worker, {**state, "outage_since": outage_since})
        except Exception as exc:
            verdict = classify(exc)
            if verdict is Verdict.INFRASTRUCTURE:
                return self._wait_out(exc, worker, {**state, "outage_since": outage_since})
            models = self.services.models
            has_next_level = level + 1 < len(models)
            # An answer still invalid after its repair goes down the chain at once (if it can).
            same_level = not (isinstance(exc, RepairFailed) and has_next_level)
            retry_same_level = verdict is Verdict.MODEL_TRANSIENT and model_failures < max_model_retries and same_level
            retry_after = exc.retry_after if isinstance(exc, TransientModelError) else None
            countdown = backoff(model_failures, self.app.settings.model_retry_backoff_max, retry_after)
            deadline_at = exc.deadline_at if isinstance(exc, ModelError) else None
            if deadline_at is not None and (
                isinstance(exc, DeadlinePassed)
                or (retry_same_level and time.time() + countdown >= deadline_at - DEADLINE_RESERVE_S)
            ):
                # No time for another model call: the builtin analyser answers, if it is in the chain.
                if level < len(models) - 1 and builtin_is_fallback(models):
                    TASK_RETRIES.labels(task=self.name, reason="fallback").inc()
                    state = {**self._next_level(state, describe(exc)), "level": len(models) - 1}
                    raise self.retry(exc=exc, countdown=0, kwargs=state) from exc
                return WorkerOutcome.failure(worker, exc).to_json()
            if retry_same_level:
                TASK_RETRIES.labels(task=self.name, reason="model").inc()
                raise self.retry(
                    exc=exc, countdown=countdown, kwargs={**state, "model_failures": model_failures + 1}
                ) from exc
            if verdict in MODEL_FAILURES and has_next_level:
                TASK_RETRIES.labels(task=self.name, reason="fallback").inc()
                log.warning(
                    "%s of run %s: level %d failed (%s); asking level %d", worker, run_id, level, exc, level + 1
                )
                raise self.retry(exc=exc, countdown=0, kwargs=self._next_level(state, describe(exc))) from exc
            if verdict is Verdict.BUG:
                log.exception("%s task of run %s failed", worker, run_id)
            return WorkerOutcome.failure(worker, exc).to_json()

    @staticmethod
    def _next_level(state: dict[str, Any], reason: str) -> dict[str, Any]:
        """The state of the first try at the next level: its own retry budget, the attempts counted on."""
        return {
            **state,
            "level": state["level"] + 1,
            "model_failures": 0,
            "earlier_attempts": state["earlier_attempts"] + state["model_failures"] + 1,
            "fallback_reason": state["fallback_reason"] or reason,
        }

    def _wait_out(self, exc: Exception, worker: str, state: dict[str, Any]) -> Any:
        """Retry through an outage; once its budget is spent, the worker's outcome is an error."""
        retry = self.retry_outage(exc, state)
        if retry is not None:
            raise retry from exc
        return WorkerOutcome.failure(worker, exc).to_json()
