"""The one small interface every model adapter implements, and its errors.

Workers never talk HTTP themselves: they hand an adapter a ``ModelCall`` and
get back a ``ModelReply`` (parsed JSON plus usage) or one of the errors below.
Which errors are retried is decided in one place (``orchestrator.errors.classify``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from orchestrator.domain import JSON, ModelReply

if TYPE_CHECKING:
    from orchestrator.pipeline import WorkerSpec


@dataclass(frozen=True)
class Prompt:
    """A rendered, versioned prompt: ``ref`` is e.g. ``summary@v1``."""

    ref: str
    system: str
    user: str


@dataclass(frozen=True)
class Repair:
    """A second chance for an answer that was not the worker's JSON: that answer, and what is wrong with it."""

    answer: str
    problems: str


@dataclass(frozen=True)
class ModelCall:
    """Everything an adapter needs for one call."""

    pipeline: str
    worker: WorkerSpec
    prompt: Prompt
    #: The run's input, for adapters that read it rather than the prompt (builtin).
    input: JSON
    #: W3C trace context to forward on outgoing requests, if any.
    traceparent: str | None = None
    #: Set on the one repair attempt after an invalid answer: the model sees its answer and the problems.
    repair: Repair | None = None
    #: Seconds left before the run's deadline: no call waits longer.
    time_left_s: float | None = None


class ModelAdapter(Protocol):
    """Answers a ``ModelCall`` with JSON, or raises a ``ModelError``."""

    def complete(self, call: ModelCall) -> ModelReply: ...


class ModelError(Exception):
    """Any failure to get a usable answer from a model.

    ``deadline_at`` is the run's deadline (Unix time), set by the engine when
    the run has one, so that the retry policy never waits past it.
    """

    deadline_at: float | None = None


class TransientModelError(ModelError):
    """Worth retrying: connection errors, 429 and 5xx answers.

    ``retry_after`` is the server's hint in seconds (``Retry-After``), if any.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelTimeout(TransientModelError):
    """The model did not answer within the configured timeout."""


class DeadlinePassed(ModelTimeout):
    """No time is left before the run's deadline for a model to answer."""


class ModelOutputError(ModelError):
    """The model answered, but not with JSON of the expected shape.

    ``answer`` is the model's text when it wrote one (then a repair can show it
    its mistake), None when the HTTP answer itself was broken. Retried too:
    LLMs produce malformed JSON sporadically.
    """

    def __init__(self, message: str, answer: str | None = None) -> None:
        super().__init__(message)
        self.answer = answer


class RepairFailed(ModelOutputError):
    """The answer was still not the worker's JSON after the model was shown its mistake."""


class PermanentModelError(ModelError):
    """Retrying cannot help: a 4xx other than 429, or a bad configuration."""
