"""Plain typed values that move between the layers.

Schemas (``schemas.py``) turn untrusted JSON into these at the boundaries;
everything inside the service works with these dataclasses only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: ``fallback``: answered by a lower level of the degradation chain.
WorkerStatus = Literal["ok", "fallback", "error", "timeout"]
#: The worker statuses that come with an output.
ANSWERED_WORKER_STATUSES = ("ok", "fallback")
RunStatus = Literal["pending", "ok", "partial", "failed"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Segment:
    """One utterance or paragraph of a context."""

    id: str
    text: str
    speaker: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "text": self.text,
            "speaker": self.speaker,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
        }

    @classmethod
    def from_json(cls, data: JSON) -> Segment:
        return cls(
            id=data["id"],
            text=data["text"],
            speaker=data.get("speaker"),
            start_ms=data.get("start_ms"),
            end_ms=data.get("end_ms"),
        )


@dataclass(frozen=True)
class RunRequest:
    """A validated request to run a pipeline on one input (from HTTP, Kafka or the CLI).

    ``input`` is what the pipeline's workers analyse, as its request schema
    loaded it; it is stored with the run. ``input_complete`` is False when
    the caller relies on input stored for ``context_id`` by an earlier request
    (the analysis pipeline lets segments be omitted). ``event_id`` is None
    when the caller gave none (the service then makes one up).
    """

    pipeline: str
    context_id: str
    input: JSON
    prompt_ids: dict[str, str] = field(default_factory=dict)
    event_id: str | None = None
    input_complete: bool = True
    #: False when the caller asked for fresh answers (``"cache": false``,
    #: ``Cache-Control: no-cache``): the response cache is not read.
    use_cache: bool = True
    #: Milliseconds from submission within which the run should be answered.
    deadline_ms: int | None = None


@dataclass(frozen=True)
class RunOptions:
    """How a run's workers answer, stored beside its input."""

    prompt_ids: dict[str, str] = field(default_factory=dict)
    use_cache: bool = True
    #: Unix time by which the run should be answered (from ``deadline_ms``), if any.
    deadline_at: float | None = None


_OPTION_KEYS = ("prompt_ids", "cache", "deadline_at")


def stored_request(request: RunRequest, run_input: JSON, now: float) -> JSON:
    """What is stored as a run's request: its input, and its options beside it (the deadline made absolute)."""
    deadline_at = now + request.deadline_ms / 1000 if request.deadline_ms is not None else None
    return {**run_input, "prompt_ids": request.prompt_ids, "cache": request.use_cache, "deadline_at": deadline_at}


def split_stored_request(stored: JSON) -> tuple[JSON, RunOptions]:
    """The input and the options of a stored request (older runs stored only ``prompt_ids``)."""
    run_input = {key: value for key, value in stored.items() if key not in _OPTION_KEYS}
    deadline_at = stored.get("deadline_at")
    options = RunOptions(
        prompt_ids=dict(stored.get("prompt_ids") or {}),
        use_cache=bool(stored.get("cache", True)),
        deadline_at=float(deadline_at) if deadline_at is not None else None,
    )
    return run_input, options


@dataclass(frozen=True)
class ModelUsage:
    """What one model call cost: who answered, tokens, and wall time."""

    model: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float


@dataclass(frozen=True)
class ModelReply:
    """A model's parsed JSON answer (not yet validated) and its usage."""

    output: JSON
    usage: ModelUsage
