"""A fake OpenAI-compatible chat-completions server, over real HTTP.

Used by the tests, the benchmarks and Celery workers running in other
processes: the server only speaks HTTP, and all scripting (faults, latency) is
server-side state that the owning process changes through Python methods::

    with FakeLLM(latency_s=0.01) as llm:
        llm.script("summary", Fault.status(503, retry_after=2))
        adapter = OpenAIChatAdapter(llm.url, "any-model")
        ...
        assert llm.calls_for("summary") == 2

The worker is read from the ``X-Orchestrator-Worker`` header. A normal answer
is a ``chat.completion`` whose message content is valid JSON output for that
worker, built from the user message (segments are recognised when given as
JSON objects with ``id`` and ``text`` or as ``[id] Speaker: text`` lines).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

#: The one model this server pretends to be (also the ``model`` of every answer).
FAKE_MODEL = "fake-model"

FaultKind = Literal["status", "hang", "malformed", "bad_content", "reply", "disconnect"]


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour; build it with the class methods."""

    kind: FaultKind
    code: int = 200
    body: str = ""
    retry_after: str | None = None
    seconds: float = 0.0

    @classmethod
    def status(cls, code: int, body: str | None = None, retry_after: float | str | None = None) -> Fault:
        """Answer ``code`` with ``body`` (default: an OpenAI-style error JSON).

        ``retry_after`` becomes the ``Retry-After`` header: seconds, or a string
        sent as is (e.g. an HTTP-date).
        """
        if body is None:
            body = json.dumps(
                {
                    "error": {
                        "message": f"scripted fault: HTTP {code}",
                        "type": "fake_fault",
                        "code": code,
                    }
                }
            )
        return cls("status", code=code, body=body, retry_after=_header_value(retry_after))

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before answering normally (to trigger read timeouts)."""
        return cls("hang", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not JSON."""
        return cls("malformed")

    @classmethod
    def bad_content(cls) -> Fault:
        """Answer 200 with a valid envelope whose content is not a JSON object."""
        return cls("bad_content")

    @classmethod
    def reply(cls, content: str) -> Fault:
        """Answer 200 with a valid envelope whose message content is ``content`` verbatim."""
        return cls("reply", body=content)

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without answering."""
        return cls("disconnect")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received; ``received_at`` is ``time.time()``."""

    worker: str | None
    headers: dict[str, str]
    body: Any
    received_at: float
    path: str = ""


class FakeLLM:
    """A scriptable OpenAI-compatible server on ``127.0.0.1`` (free port).

    Start with ``start()`` or ``with FakeLLM() as llm:``. Faults are chosen per
    request in this order: ``fail_always`` for the worker, ``fail_always`` for
    any worker (``None``), then the next scripted fault for the worker, then
    for any worker; with none, the answer is normal. Every answer first waits
    ``latency_s``. All methods are thread-safe.
    """

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self._default_latency_s = latency_s
        self._lock = threading.Lock()
        self._scripts: dict[str | None, deque[Fault]] = {}
        self._always: dict[str | None, Fault] = {}
        self._matching: dict[str, Fault] = {}
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._most_in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("FakeLLM already started")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-llm",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in latency or hang
        server.shutdown()
        server.server_close()
        server.close_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to configure clients with: ``http://127.0.0.1:PORT/v1``."""
        if self._server is None:
            raise RuntimeError("FakeLLM is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- scripting -------------------------------------------------------------

    def script(self, worker: str | None, *faults: Fault) -> None:
        """Queue ``faults`` for ``worker`` (``None``: any); each request takes the next."""
        with self._lock:
            self._scripts.setdefault(worker, deque()).extend(faults)

    def fail_always(self, worker: str | None, fault: Fault) -> None:
        """Answer every request for ``worker`` (``None``: any) with ``fault`` until ``reset()``."""
        with self._lock:
            self._always[worker] = fault

    def fail_matching(self, text: str, fault: Fault) -> None:
        """Answer every request whose body contains ``text`` with ``fault`` until ``reset()``.

        Lets a test fail the model calls of chosen events only.
        """
        with self._lock:
            self._matching[text] = fault

    def reset(self) -> None:
        """Forget scripts, ``fail_always``/``fail_matching`` and recorded requests; restore the latency."""
        with self._lock:
            self._scripts.clear()
            self._always.clear()
            self._matching.clear()
            self._requests.clear()
            self._most_in_flight = self._in_flight
            self.latency_s = self._default_latency_s

    # -- inspection ------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot (copy) of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def most_in_flight(self) -> int:
        """The most chat-completion requests answered at the same time since the last ``reset()``."""
        with self._lock:
            return self._most_in_flight

    def calls_for(self, worker: str) -> int:
        """How many chat-completion requests named ``worker``."""
        with self._lock:
            return sum(1 for r in self._requests if r.worker == worker)

    # -- used by the handler ---------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._most_in_flight = max(self._most_in_flight, self._in_flight)

    def _ended(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _next_fault(self, worker: str, raw_body: bytes = b"") -> Fault | None:
        with self._lock:
            for text, fault in self._matching.items():
                if text.encode() in raw_body:
                    return fault
            for key in (worker, None):
                if key in self._always:
                    return self._always[key]
            for key in (worker, None):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
            return None

    def _sleep(self, seconds: float) -> None:
        # Interruptible, so stop() never waits for a long hang.
        if seconds > 0:
            self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    fake: FakeLLM

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def track(self, sock: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            if is_open:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def close_open_connections(self) -> None:
        # Keep-alive connections would otherwise hold handler threads forever.
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive: every answer carries Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms.
    disable_nagle_algorithm = True
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default logs every request to stderr."""

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            models = {
                "object": "list",
                "data": [
                    {
                        "id": FAKE_MODEL,
                        "object": "model",
                        "created": 0,
                        "owned_by": "fake",
                    }
                ],
            }
            self._send_json(200, models)
        else:
            self._send_json(404, _error(f"no route GET {self.path}"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, _error(f"no route POST {self.path}"))
            return
        body = _loads(raw)
        worker = self.headers.get("X-Orchestrator-Worker")
        fake = self.server.fake
        fake._record(
            RecordedRequest(
                worker=worker,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                received_at=time.time(),
                path=self.path,
            )
        )
        fake._started()
        try:
            self._answer(fake, worker, body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its read timeout during a hang).
            self.close_connection = True
        finally:
            fake._ended()

    def _answer(self, fake: FakeLLM, worker: str | None, body: Any) -> None:
        fake._sleep(fake.latency_s)
        if worker not in BUILDERS:
            self._send_json(400, _error(f"unknown or missing X-Orchestrator-Worker: {worker!r}"))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._send_json(400, _error("body must be a JSON object with 'messages'"))
            return
        fault = fake._next_fault(worker, json.dumps(body).encode())
        if fault is None or fault.kind == "hang":
            if fault is not None:
                fake._sleep(fault.seconds)
            self._send_json(200, completion(worker, body))
        elif fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._send(fault.code, fault.body.encode(), "application/json", extra)
        elif fault.kind == "malformed":
            self._send(200, b'{"id": "chatcmpl-broken", "choices": [', "application/json")
        elif fault.kind == "bad_content":
            self._send_json(
                200,
                completion(worker, body, content="Sure! Here is my analysis, in prose."),
            )
        elif fault.kind == "reply":
            self._send_json(200, completion(worker, body, content=fault.body))
        else:  # disconnect: the request was read; close without a word
            self.close_connection = True

    def _send_json(self, code: int, payload: Any) -> None:
        self._send(code, json.dumps(payload).encode(), "application/json")

    def _send(
        self,
        code: int,
        data: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


# -- answers -----------------------------------------------------------------


def completion(worker: str, request: dict[str, Any], content: str | None = None) -> dict[str, Any]:
    """A ``chat.completion`` for ``request``: valid ``worker`` output unless ``content`` is given."""
    messages = request.get("messages") or []
    user = _user_text(messages)
    if content is None:
        content = json.dumps(BUILDERS[worker](user))
    prompt_tokens = _tokens(" ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict)))
    completion_tokens = _tokens(content)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": FAKE_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclass(frozen=True)
class _Seg:
    id: str
    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class _Input:
    text: str
    segments: list[_Seg] = field(default_factory=list)

    @property
    def first(self) -> _Seg:
        return self.segments[0] if self.segments else _Seg("s1", self.text[:200] or "(empty)")


def _summary(user: str) -> dict[str, Any]:
    source = _parse_input(user)
    text = " ".join(s.text for s in source.segments) or source.text
    summary = text.strip()[:200].strip() or "Nothing to summarise."
    points = [_first_sentence(s.text) for s in source.segments[:3]] or [summary[:80]]
    return {"summary": summary, "key_points": points}


def _argument(user: str) -> dict[str, Any]:
    seg = _parse_input(user).first
    claim = {
        "claim": _first_sentence(seg.text),
        "evidence": [seg.text[:120]],
        "stance": "neutral",
        "speaker": seg.speaker,
        "segment_id": seg.id,
    }
    return {"claims": [claim]}


def _implication_sentiment(user: str) -> dict[str, Any]:
    source = _parse_input(user)
    seg = source.first
    implication = {
        "text": f"If this holds, it follows that {_first_sentence(seg.text)}",
        "segment_id": seg.id,
        "speaker": seg.speaker,
    }
    by_speaker: dict[str, dict[str, Any]] = {}
    for s in source.segments:
        if s.speaker and s.speaker not in by_speaker:
            by_speaker[s.speaker] = _sentiment(" ".join(x.text for x in source.segments if x.speaker == s.speaker))
    return {
        "implications": [implication],
        "sentiment": {"overall": _sentiment(source.text), "by_speaker": by_speaker},
    }


def _logic_bias(user: str) -> dict[str, Any]:
    seg = _parse_input(user).first
    quote = seg.text[:80]
    fallacy = {
        "type": "hasty_generalization",
        "quote": quote,
        "segment_id": seg.id,
        "explanation": "Generalises from a single statement.",
    }
    bias = {
        "type": "confirmation_bias",
        "quote": quote,
        "segment_id": seg.id,
        "explanation": "Only supporting points are considered.",
    }
    return {"fallacies": [fallacy], "biases": [bias]}


#: Output builders by worker name; any other worker name gets a 400.
# --- the tutor pipeline's workers: a small, predictable "tutor" -----------------------------------

#: Mistakes the fake tutor knows: wrong word -> (correction, ERRANT type).
_MISTAKES = {
    "goes": ("went", "R:VERB:TENSE"),
    "have": ("has", "R:VERB:SVA"),
    "childs": ("children", "R:NOUN:INFL"),
    "recieve": ("receive", "R:SPELL"),
}


def _learner_sentence(user: str) -> str:
    for line in user.splitlines():
        if line.startswith("Learner's sentence:"):
            return line.split(":", 1)[1].strip()
    return user.strip()


def _grammar(user: str) -> dict[str, Any]:
    text = _learner_sentence(user)
    errors, corrected = [], text
    for match in re.finditer(r"[A-Za-z]+", text):
        if match.group().lower() in _MISTAKES:
            correction, kind = _MISTAKES[match.group().lower()]
            errors.append(
                {
                    "start": match.start(),
                    "end": match.end(),
                    "original": match.group(),
                    "correction": correction,
                    "type": kind,
                    "explanation": f"Use '{correction}' here.",
                    "explanation_vi": f"Dùng '{correction}' ở đây." if "Vietnamese" in user else None,
                }
            )
            corrected = corrected.replace(match.group(), correction, 1)
    return {"errors": errors, "corrected": corrected}


def _fluency(user: str) -> dict[str, Any]:
    words = _learner_sentence(user).split()
    return {"score": round(min(1.0, 0.5 + 0.05 * len(words)), 2), "words": len(words), "sentences": 1}


def _vocabulary(user: str) -> dict[str, Any]:
    words = _learner_sentence(user).split()
    long_words = [w for w in words if len(w) > 8]
    return {"level": "B2" if long_words else "A2", "score": 0.8 if long_words else 0.5, "advanced_words": long_words}


def _feedback(user: str) -> dict[str, Any]:
    corrected = _grammar(user)["corrected"]
    if "Vietnamese" in user:
        return {"reply": f"Câu đúng là: {corrected}", "tips": []}
    return {"reply": f"You can say: {corrected}", "tips": ["Read it aloud."]}


BUILDERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "summary": _summary,
    "argument": _argument,
    "implication_sentiment": _implication_sentiment,
    "logic_bias": _logic_bias,
    "grammar": _grammar,
    "fluency": _fluency,
    "vocabulary": _vocabulary,
    "feedback": _feedback,
}

_POSITIVE = {
    "good",
    "great",
    "agree",
    "yes",
    "benefit",
    "excellent",
    "happy",
    "success",
    "improve",
}
_NEGATIVE = {
    "bad",
    "wrong",
    "disagree",
    "no",
    "risk",
    "fail",
    "poor",
    "problem",
    "worse",
}
_WORD = re.compile(r"[a-zA-Z']+")
_LINE_SEGMENT = re.compile(
    r"^\s*[-*]?\s*\[(?P<id>[^\]\s]+)\]\s*(?:(?P<speaker>[^:\n\]]{1,40}):\s+)?(?P<text>\S.*)$",
    re.MULTILINE,
)


def _sentiment(text: str) -> dict[str, Any]:
    """A label from a tiny lexicon; ``score`` is a confidence in [0, 1]."""
    words = [w.lower() for w in _WORD.findall(text)]
    pos = sum(w in _POSITIVE for w in words)
    neg = sum(w in _NEGATIVE for w in words)
    if pos == neg:
        return {"label": "neutral", "score": 0.5}
    label = "positive" if pos > neg else "negative"
    return {"label": label, "score": round(0.5 + 0.5 * abs(pos - neg) / (pos + neg), 3)}


def _parse_input(user: str) -> _Input:
    return _Input(text=user, segments=_json_segments(user) or _line_segments(user))


def _json_segments(text: str) -> list[_Seg]:
    """Segments written as JSON objects with ``id`` and ``text`` anywhere in ``text``."""
    decoder = json.JSONDecoder()
    found: list[_Seg] = []
    index = 0
    while (index := _next_json_start(text, index)) >= 0:
        try:
            value, end = decoder.raw_decode(text, index)
        except ValueError:
            index += 1
            continue
        _collect(value, found)
        index = end
    return found


def _next_json_start(text: str, start: int) -> int:
    positions = [p for p in (text.find("{", start), text.find("[", start)) if p >= 0]
    return min(positions) if positions else -1


def _collect(value: Any, found: list[_Seg]) -> None:
    if isinstance(value, dict):
        if isinstance(value.get("id"), str) and isinstance(value.get("text"), str):
            speaker = value.get("speaker")
            found.append(
                _Seg(
                    value["id"],
                    value["text"],
                    speaker if isinstance(speaker, str) else None,
                )
            )
            return
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


def _line_segments(text: str) -> list[_Seg]:
    return [
        _Seg(m["id"], m["text"].strip(), (m["speaker"] or "").strip() or None) for m in _LINE_SEGMENT.finditer(text)
    ]


def _user_text(messages: list[Any]) -> str:
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return sentence[:200] or "(empty)"


def _tokens(text: str) -> int:
    # The usual rule of thumb: a token is about three quarters of a word.
    return max(1, round(len(text.split()) / 0.75))


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"}}


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _header_value(value: float | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)
