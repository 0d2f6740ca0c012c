"""An adapter for any OpenAI-compatible chat-completions endpoint.

Works with vLLM, Ollama, the llama.cpp server, LiteLLM and OpenAI itself: one
``POST {base_url}/chat/completions`` per ``ModelCall``, asking for a JSON object.
Every failure is mapped onto the errors of ``base.py`` so that the retry policy
lives in one place (``orchestrator.errors.classify``), never here.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError

from orchestrator.adapters.base import (
    ModelCall,
    ModelOutputError,
    ModelTimeout,
    PermanentModelError,
    TransientModelError,
)
from orchestrator.config import RESPONSE_FORMATS
from orchestrator.domain import JSON, ModelReply, ModelUsage

#: Connections kept per host. A Celery threads pool runs many calls at once;
#: requests' default (10) would make extra threads open and discard connections.
POOL_MAXSIZE = 64
#: How much of an error body goes into an exception message.
MAX_BODY_IN_MESSAGE = 500

# Some local models wrap their JSON in a Markdown fence despite response_format.
_FENCE = re.compile(r"^```(?:json)?[ \t]*\n?(.*?)\n?[ \t]*```$", re.DOTALL | re.IGNORECASE)

# Errors that mean our configuration is wrong: retrying cannot help.
_CONFIG_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
)


#: The repair turn after an invalid answer (``ModelCall.repair``).
REPAIR_INSTRUCTION = (
    "Your answer above is not valid: {problems}. Answer again with one JSON object only, no prose, no code "
    "fence, with exactly the keys and types the instructions ask for."
)


class OpenAIChatAdapter:
    """A ``ModelAdapter`` speaking the OpenAI chat-completions protocol.

    ``base_url`` is used as given (``http://host:8000/v1``; ``/v1`` is never
    added). One adapter holds one ``requests.Session`` and may be shared by
    many threads. ``complete`` returns a ``ModelReply`` or raises
    ``ModelTimeout``, ``TransientModelError``, ``PermanentModelError`` or
    ``ModelOutputError``; messages name the worker and the URL, never the key.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 30.0,
        session: requests.Session | None = None,
        max_tokens: int | None = None,
        response_format: str = "json_object",
    ) -> None:
        if response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_tokens = max_tokens
        self.response_format = response_format
        self.timeout = (connect_timeout, read_timeout)
        self._api_key = api_key
        # A caller-provided session is used as configured; our own gets a big pool.
        self._owns_session = session is None
        self._session = session if session is not None else _pooled_session(self.url)
        # For messages: the URL without any user:password part.
        self._safe_url = _redact_url(self.url)

    def complete(self, call: ModelCall) -> ModelReply:
        """Send ``call`` to the model; return its parsed JSON object and usage."""
        started = time.perf_counter()
        response = self._post(call)
        latency_ms = (time.perf_counter() - started) * 1000.0
        self._raise_for_status(call, response)
        body = self._parse_body(call, response)
        output = self._parse_output(call, body)
        return ModelReply(output=output, usage=self._usage(body, latency_ms))

    def close(self) -> None:
        """Close the session's connections, if this adapter created the session."""
        if self._owns_session:
            self._session.close()

    # -- request ---------------------------------------------------------------

    def _payload(self, call: ModelCall) -> JSON:
        messages = [
            {"role": "system", "content": call.prompt.system},
            {"role": "user", "content": call.prompt.user},
        ]
        if call.repair is not None:
            messages += [
                {"role": "assistant", "content": call.repair.answer},
                {"role": "user", "content": REPAIR_INSTRUCTION.format(problems=call.repair.problems)},
            ]
        payload: JSON = {"model": self.model, "messages": messages, "temperature": 0}
        response_format = self._response_format(call)
        if response_format is not None:
            payload["response_format"] = response_format
        if self.max_tokens is not None:
            # A small model may loop until its context is full; an answer cut here is repaired or retried.
            payload["max_tokens"] = self.max_tokens
        return payload

    def _response_format(self, call: ModelCall) -> JSON | None:
        """How the answer is constrained (MODEL_RESPONSE_FORMAT). json_object: any JSON object (OpenAI's JSON
        mode, the most widely supported); json_schema: the worker's output schema (OpenAI structured outputs,
        vLLM); json_object_schema: the same through llama.cpp's extension (its server refuses json_schema);
        none: no response_format at all."""
        if self.response_format == "json_object":
            return {"type": "json_object"}
        if self.response_format == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": call.worker.name, "schema": call.worker.output_json_schema},
            }
        if self.response_format == "json_object_schema":
            return {"type": "json_object", "schema": call.worker.output_json_schema}
        return None

    def _headers(self, call: ModelCall) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "X-Orchestrator-Pipeline": call.pipeline,
            "X-Orchestrator-Worker": call.worker.name,
            "X-Prompt-Ref": call.prompt.ref,
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if call.traceparent:
            # W3C trace context: forwarded unchanged so the model server joins the trace.
            headers["traceparent"] = call.traceparent
        return headers

    def _timeouts(self, call: ModelCall) -> tuple[float, float]:
        """(connect, read): a worker may wait longer (or shorter) than the default, and never past the deadline."""
        connect, read = self.timeout[0], call.worker.timeout_s or self.timeout[1]
        if call.time_left_s is not None:
            connect, read = min(connect, call.time_left_s), min(read, call.time_left_s)
        return connect, read

    def _post(self, call: ModelCall) -> requests.Response:
        """POST the call; map transport failures onto ``ModelError`` subclasses."""
        try:
            return self._session.post(
                self.url,
                json=self._payload(call),
                headers=self._headers(call),
                timeout=self._timeouts(call),
                # A redirected POST may silently become a GET; report it instead.
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise ModelTimeout(self._msg(call, f"timed out ({_describe(exc)})")) from exc
        except requests.ConnectionError as exc:
            # requests reports a read timeout while reading the body as a ConnectionError.
            if _is_read_timeout(exc):
                raise ModelTimeout(self._msg(call, "timed out reading the answer")) from exc
            raise TransientModelError(self._msg(call, f"connection failed ({_describe(exc)})")) from exc
        except _CONFIG_ERRORS as exc:
            raise PermanentModelError(self._msg(call, f"bad request setup ({_describe(exc)})")) from exc
        except requests.RequestException as exc:
            # E.g. a connection dropped mid-body (ChunkedEncodingError).
            raise TransientModelError(self._msg(call, f"request failed ({_describe(exc)})")) from exc

    # -- response --------------------------------------------------------------

    def _raise_for_status(self, call: ModelCall, response: requests.Response) -> None:
        """Raise for any non-2xx answer: 429 and 5xx are transient, the rest permanent."""
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"HTTP {status}: {_truncate(response.text)}"
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientModelError(self._msg(call, detail), retry_after=retry_after)
        if 300 <= status < 400:
            detail += f" (redirect to {response.headers.get('Location')!r}; fix the base URL)"
        raise PermanentModelError(self._msg(call, detail))

    def _parse_body(self, call: ModelCall, response: requests.Response) -> JSON:
        try:
            # json.loads on bytes detects UTF-8/16/32 itself, skipping charset guessing.
            body = json.loads(response.content)
        except ValueError as exc:
            raise ModelOutputError(self._msg(call, f"answer is not JSON: {_truncate(response.text)}")) from exc
        if not isinstance(body, dict):
            raise ModelOutputError(self._msg(call, "answer is not a JSON object"))
        return body

    def _parse_output(self, call: ModelCall, body: JSON) -> JSON:
        """Return ``choices[0].message.content`` parsed as a JSON object."""
        content = _message_content(body)
        if content is None:
            raise ModelOutputError(self._msg(call, "answer has no choices[0].message.content string"))
        try:
            output = json.loads(strip_fence(content))
        except ValueError as exc:
            raise ModelOutputError(
                self._msg(call, f"message content is not JSON: {_truncate(content)}"), answer=content
            ) from exc
        if not isinstance(output, dict):
            raise ModelOutputError(
                self._msg(call, f"message content is JSON but not an object: {_truncate(content)}"), answer=content
            )
        return output

    def _usage(self, body: JSON, latency_ms: float) -> ModelUsage:
        usage = body.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        model = body.get("model")
        return ModelUsage(
            model=model if isinstance(model, str) and model else self.model,
            input_tokens=_token_count(usage.get("prompt_tokens")),
            output_tokens=_token_count(usage.get("completion_tokens")),
            latency_ms=latency_ms,
        )

    def _msg(self, call: ModelCall, detail: str) -> str:
        return f"model call for worker {call.worker.name!r} to {self._safe_url}: {detail}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or ``None``.

    Accepts delay-seconds (``"7"``, also ``"1.5"``) and an HTTP-date (RFC 9110);
    a date in the past gives ``0.0``; anything unparseable gives ``None``.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value)
    # float() also accepts "nan" and "inf"; neither is a usable delay.
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def strip_fence(content: str) -> str:
    """``content`` without a surrounding ```` ```json ... ``` ```` fence, if any."""
    text = content.strip()
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text


def _seconds_until(http_date: str) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # "-0000" yields a naive datetime; HTTP dates are always GMT.
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _message_content(body: JSON) -> str | None:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    return content if isinstance(content, str) else None


def _token_count(value: Any) -> int | None:
    # bool is an int subclass; a server sending true/false has no count.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _pooled_session(url: str) -> requests.Session:
    session = requests.Session()
    # Proxy settings are read from the environment once, here, instead of on
    # every request (requests rescans os.environ per call: ~0.7 ms each).
    session.proxies.update(requests.utils.get_environ_proxies(url))
    session.trust_env = False
    # What trust_env would otherwise have read: a custom CA bundle.
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _is_read_timeout(exc: requests.ConnectionError) -> bool:
    return any(isinstance(arg, ReadTimeoutError) for arg in exc.args)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _truncate(text: str, limit: int = MAX_BODY_IN_MESSAGE) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
