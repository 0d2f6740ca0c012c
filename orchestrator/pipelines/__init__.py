"""The pipelines this service runs: the builtin ones, and those named in ``PIPELINE_MODULES``.

To add a pipeline, write its definition (a module with a ``PIPELINE``, see
``analysis.py``) and add it to ``BUILTIN`` here, or name its module in
``PIPELINE_MODULES``; nothing in the engine changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from marshmallow import Schema, ValidationError

from orchestrator.domain import RunRequest
from orchestrator.errors import BadInput
from orchestrator.pipeline import Pipeline, pipelines_by_name
from orchestrator.pipelines import analysis, tutor
from orchestrator.schemas import Limits

#: Where a request names no pipeline.
DEFAULT_PIPELINE = analysis.NAME

BUILTIN: tuple[Pipeline, ...] = (analysis.PIPELINE, tutor.PIPELINE)


class UnknownPipeline(BadInput, LookupError):
    """A request or event names a pipeline this service does not run."""

    def __init__(self, name: object, known: Sequence[str]) -> None:
        super().__init__(f"Unknown pipeline {name!r}; expected one of {', '.join(known)}.")
        self.field_errors = {"pipeline": [str(self)]}


class Pipelines(Mapping[str, Pipeline]):
    """The pipelines a process runs, by name."""

    def __init__(
        self, pipelines: Sequence[Pipeline], limits: Limits | None = None, *, default_deadlines: bool = False
    ) -> None:
        self._by_name = pipelines_by_name(pipelines)
        self.limits = limits or Limits()
        #: Whether a request without ``deadline_ms`` gets its pipeline's ``default_deadline_ms``.
        self.default_deadlines = default_deadlines
        self._schemas: dict[tuple[str, bool], Schema] = {}

    def __getitem__(self, name: str) -> Pipeline:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def named(self, name: object) -> Pipeline:
        """The pipeline ``name`` (None: the default); raises ``UnknownPipeline``."""
        name = DEFAULT_PIPELINE if name is None else name
        if not isinstance(name, str) or name not in self._by_name:
            raise UnknownPipeline(name, list(self._by_name))
        return self._by_name[name]

    def request_schema(self, name: str, *, event: bool = False) -> Schema:
        """The schema of pipeline ``name``'s HTTP bodies (or, with ``event``, Kafka events), built once."""
        key = (name, event)
        schema = self._schemas.get(key)
        if schema is None:
            pipeline = self._by_name[name]
            schema = self._schemas[key] = pipeline.request_schema(pipeline=pipeline, limits=self.limits, event=event)
        return schema

    def load_request(self, data: Any, *, event: bool = False) -> RunRequest:
        """Validate an HTTP body (or, with ``event``, a Kafka event) with the schema of the pipeline it names.

        Raises ``marshmallow.ValidationError`` with the field errors, an
        unknown pipeline under ``"pipeline"``.
        """
        try:
            pipeline = self.named(data.get("pipeline") if isinstance(data, dict) else None)
        except UnknownPipeline as exc:
            raise ValidationError({"pipeline": [str(exc)]}) from exc
        request: RunRequest = self.request_schema(pipeline.name, event=event).load(data)
        if request.deadline_ms is None and self.default_deadlines and pipeline.default_deadline_ms is not None:
            request = replace(request, deadline_ms=pipeline.default_deadline_ms)
        return request


def load_pipelines(
    modules: Sequence[str] = (), limits: Limits | None = None, *, default_deadlines: bool = False
) -> Pipelines:
    """The builtin pipelines plus the ``PIPELINE`` of each module in ``modules``.

    Their requests are checked against ``limits``, and get their pipeline's
    default deadline if ``default_deadlines``."""
    extra = [importlib.import_module(module).PIPELINE for module in modules]
    return Pipelines([*BUILTIN, *extra], limits, default_deadlines=default_deadlines)
