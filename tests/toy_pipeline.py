"""A toy pipeline, defined the way every pipeline is: one file, loaded with ``PIPELINE_MODULES=tests.toy_pipeline``.

``wordcount`` counts the words of a text (required) and finds its longest
word (optional: its builtin analyser gives no answer for a text without
letters, so that the optional failure can be seen).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import fields

from orchestrator.domain import JSON
from orchestrator.pipeline import Pipeline, PromptTemplate, WorkerSpec
from orchestrator.schemas import NOT_BLANK, OutputSchema, RunRequestSchema, Text


class WordcountRequestSchema(RunRequestSchema):
    context_id = Text(required=True, validate=NOT_BLANK)
    text = Text(required=True, validate=NOT_BLANK)

    def split(self, data: JSON) -> tuple[str, JSON, bool]:
        return data["context_id"], {"text": data["text"]}, True


class CountSchema(OutputSchema):
    words = fields.Integer(required=True, strict=True)


class LongestSchema(OutputSchema):
    word = Text(required=True, validate=NOT_BLANK)


def count(run_input: JSON) -> JSON:
    return {"words": len(run_input["text"].split())}


def longest(run_input: JSON) -> JSON:
    words = re.findall(r"[^\W\d_]+", run_input["text"])
    return {"word": max(words, key=len)} if words else {}


def merge(outputs: Mapping[str, JSON], run_input: JSON, state: None) -> dict[str, Any]:
    return {
        "words": outputs["count"]["words"] if "count" in outputs else None,
        "longest_word": outputs["longest"]["word"] if "longest" in outputs else None,
    }


def _prompt(ref: str, shape: str) -> PromptTemplate:
    return PromptTemplate(ref=ref, system=f"Answer with one JSON object: {shape}", instruction="Read this text.")


PIPELINE = Pipeline(
    name="wordcount",
    workers=(
        WorkerSpec("count", CountSchema(), (_prompt("count@v1", '{"words": integer}'),), count),
        WorkerSpec("longest", LongestSchema(), (_prompt("longest@v1", '{"word": string}'),), longest, required=False),
    ),
    request_schema=WordcountRequestSchema,
    render_input=lambda run_input: run_input["text"],
    merge=merge,
)
