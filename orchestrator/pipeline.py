"""What a pipeline is: data that the engine runs.

A pipeline names its workers (each with its output schema, its versioned
prompts, its builtin analyser, whether it is required, and an optional model
timeout), how the request that starts it is validated, how its input reads
in a prompt, and how the workers' outputs merge into its response. The
chord, the tasks, the store, the audit, the dead-lettering, the API and the
bridge know nothing more of a pipeline than this. Each pipeline is defined in
one file under ``orchestrator/pipelines/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from apispec.ext.marshmallow.openapi import OpenAPIConverter
from marshmallow import Schema, ValidationError
from sqlalchemy import Connection

from orchestrator.adapters.base import ModelOutputError, Prompt
from orchestrator.domain import ANSWERED_WORKER_STATUSES, JSON, RunStatus
from orchestrator.schemas import RunRequestSchema

if TYPE_CHECKING:
    from orchestrator.models import AnalysisRun

#: A builtin analyser: the run's input in, the worker's output out. Offline,
#: deterministic, and it must not raise (it is the last resort).
BuiltinAnalyser = Callable[[JSON], JSON]
#: How the workers' outputs become the response's fields: the outputs of the
#: workers that succeeded (failed ones are absent), the run's input, and the
#: pipeline's state (None for a pipeline without one).
Merge = Callable[[Mapping[str, JSON], JSON, Any], JSON]


class PipelineState(Protocol):
    """State a pipeline keeps across runs (the tutor's sessions).

    Read and written inside the transaction that stores each run's outcome,
    so runs of the same state (one session) see each other in order.
    """

    def load(self, connection: Connection, run: AnalysisRun) -> Any:
        """What ``merge`` needs to know of the state, before this run."""

    def save(self, connection: Connection, run: AnalysisRun, status: str, result: JSON) -> None:
        """Record this run's outcome in the state."""


@dataclass(frozen=True)
class PromptTemplate:
    """One version of a worker's prompt; ``ref`` is ``<worker>@<version>`` (``summary@v1``)."""

    ref: str
    system: str
    #: Placed before the input in the user message.
    instruction: str


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    #: Validates the model's answer (extra keys are dropped, missing ones are errors).
    output_schema: Schema
    #: Its prompt versions; the first is the default.
    prompts: tuple[PromptTemplate, ...]
    builtin: BuiltinAnalyser
    #: The run's status is decided by its required workers; an optional one may fail.
    required: bool = True
    #: Seconds to wait for the model's answer; None means MODEL_READ_TIMEOUT.
    timeout_s: float | None = None

    @property
    def default_prompt(self) -> str:
        return self.prompts[0].ref

    def prompt(self, ref: str) -> PromptTemplate:
        """The template ``ref``; raises ``KeyError`` if this worker has none by that name."""
        for template in self.prompts:
            if template.ref == ref:
                return template
        raise KeyError(ref)

    @cached_property
    def output_json_schema(self) -> JSON:
        """``output_schema`` as a JSON Schema, for servers that constrain the answer to it
        (``MODEL_RESPONSE_FORMAT``)."""
        return output_json_schema(self.output_schema)

    def validate(self, output: JSON) -> JSON:
        """The model's JSON, checked against the output schema; raises ``ModelOutputError``."""
        try:
            loaded: JSON = self.output_schema.load(output)
        except ValidationError as exc:
            raise ModelOutputError(f"{self.name} output does not match its schema: {exc.messages}") from exc
        return loaded


@dataclass(frozen=True)
class Pipeline:
    name: str
    #: In the order the chord runs them and responses list them.
    workers: tuple[WorkerSpec, ...]
    #: Loads an HTTP body or a Kafka event of this pipeline into a ``RunRequest``.
    request_schema: type[RunRequestSchema]
    #: The run's input as the user message shows it, after the instruction.
    render_input: Callable[[JSON], str]
    #: The response's analysis fields (see ``Merge``). With no outputs, no
    #: input and no state, it gives the fields of a pending run (all null).
    merge: Merge
    #: Whether a request may omit its input to reuse the one stored for its
    #: context (``contexts`` table: segments and language).
    stores_context: bool = False
    #: State kept across runs, if any.
    state: PipelineState | None = None
    #: Loads the builtin analysers' heavy resources (called when a worker starts).
    warm: Callable[[], None] | None = None
    #: Milliseconds within which a run should be answered when its request names
    #: no ``deadline_ms``. Applied only when the builtin analyser ends the model
    #: chain (``Pipelines.default_deadlines``): without it a deadline could only
    #: turn late answers into errors.
    default_deadline_ms: int | None = None

    def __post_init__(self) -> None:
        if not any(worker.required for worker in self.workers):
            raise ValueError(f"pipeline {self.name!r} needs at least one required worker")

    @property
    def worker_names(self) -> tuple[str, ...]:
        return tuple(worker.name for worker in self.workers)

    def worker(self, name: str) -> WorkerSpec:
        """The worker ``name``; raises ``KeyError`` if the pipeline has none."""
        for worker in self.workers:
            if worker.name == name:
                return worker
        raise KeyError(name)

    def prompt_error(self, worker: str, ref: str) -> str | None:
        """Why ``ref`` cannot serve ``worker`` in this pipeline, or None when it can."""
        if worker not in self.worker_names:
            return f"Unknown worker {worker!r}; expected one of {', '.join(self.worker_names)}."
        spec = self.worker(worker)
        if ref in {template.ref for template in spec.prompts}:
            return None
        if any(ref in {t.ref for t in other.prompts} for other in self.workers):
            return f"Prompt {ref!r} is not a {worker} prompt."
        known = ", ".join(template.ref for template in spec.prompts)
        return f"Unknown prompt reference {ref!r}; known for {worker}: {known}."

    def render_prompt(self, worker: str, ref: str, run_input: JSON) -> Prompt:
        template = self.worker(worker).prompt(ref)
        return Prompt(ref=ref, system=template.system, user=f"{template.instruction}\n\n{self.render_input(run_input)}")

    def decide_status(self, statuses: Mapping[str, str]) -> RunStatus:
        """ok when every required worker succeeded (optional ones may have failed),
        failed when none of them did, partial otherwise."""
        required = [statuses.get(worker.name) in ANSWERED_WORKER_STATUSES for worker in self.workers if worker.required]
        if all(required):
            return "ok"
        return "partial" if any(required) else "failed"

    def empty_result(self) -> JSON:
        """The analysis fields of a run that has no result yet (all null)."""
        return self.merge({}, {}, None)


def output_json_schema(schema: Schema) -> JSON:
    """A marshmallow schema as a self-contained JSON Schema (nested schemas inlined), by apispec.

    Regex ``pattern``s are left out: servers that turn a schema into a grammar
    (llama.cpp) accept only anchored ones; the schema still checks the answer.
    """
    converter = OpenAPIConverter(openapi_version="3.1.0", schema_name_resolver=lambda _: None, spec=None)  # type: ignore[arg-type]
    json_schema: JSON = _without_patterns(converter.schema2jsonschema(schema))  # type: ignore[no-untyped-call]
    return json_schema


def _without_patterns(value: Any) -> Any:
    if isinstance(value, dict):
        # (A property that happens to be called "pattern" is an object, and is kept.)
        return {
            key: _without_patterns(item)
            for key, item in value.items()
            if not (key == "pattern" and isinstance(item, str))
        }
    if isinstance(value, list):
        return [_without_patterns(item) for item in value]
    return value


def pipelines_by_name(pipelines: Iterable[Pipeline]) -> dict[str, Pipeline]:
    registry: dict[str, Pipeline] = {}
    for pipeline in pipelines:
        if pipeline.name in registry:
            raise ValueError(f"two pipelines are named {pipeline.name!r}")
        registry[pipeline.name] = pipeline
    return registry
