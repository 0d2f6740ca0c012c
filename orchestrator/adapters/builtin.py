"""The builtin adapter: answers a call with the worker's builtin analyser, offline.

Each worker of a pipeline has its builtin analyser (``orchestrator/analysers``);
this adapter runs it on the run's input and ignores the prompt. It is the
model when ``MODEL_ADAPTER_URL`` is unset, and makes the service run end to
end with no network and no model downloads.
"""

from __future__ import annotations

import json
import time

from orchestrator.adapters.base import ModelCall
from orchestrator.domain import ModelReply, ModelUsage

MODEL_NAME = "builtin"


class BuiltinAdapter:
    """Offline ``ModelAdapter``; safe to share between threads. Token counts are word counts."""

    def complete(self, call: ModelCall) -> ModelReply:
        started = time.perf_counter()
        output = call.worker.builtin(call.input)
        usage = ModelUsage(
            model=MODEL_NAME,
            input_tokens=len(call.prompt.user.split()),
            output_tokens=len(json.dumps(output).split()),
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )
        return ModelReply(output=output, usage=usage)
