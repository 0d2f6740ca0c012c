"""A hostile producer: hundreds of malformed messages interleaved with valid events, through a real bridge.

The bridge must stay up, analyse every valid event exactly once and
dead-letter every hostile message exactly once, whatever its value, key or
headers hold.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.redrive import read_dead_letters
from orchestrator.config import Settings
from orchestrator.store import RunStore
from tests.factories import make_segments, task_event, unique
from tests.fake_llm import FakeLLM
from tests.kafka import RawHeaderKey
from tests.services import wait_until
from tests.stack import Message, Stack, as_message, finished, ok_calls_per_worker, running_stack, runs_for

SEED = 20261123


@pytest.fixture()
def stack(kafka_settings: Settings, log_dir: Path, fake_llm: FakeLLM) -> Iterator[Stack]:
    with running_stack(kafka_settings, log_dir) as stack:
        yield stack


@pytest.fixture()
def store(stack: Stack) -> RunStore:
    """The stack's own database."""
    return stack.store


def event_json(**fields: object) -> bytes:
    return json.dumps({"event_id": unique("evt-bad"), "context_id": unique("ctx"), **fields}).encode()


def valid_with(text: str = "A plain sentence.") -> dict[str, object]:
    return task_event(1, segments=[{"id": "s1", "speaker": "Alice", "text": text}])


def hostile_values(rng: random.Random) -> Iterator[bytes | None]:
    """Values that must be dead-lettered (stage ``decode`` or ``validation``), a few of each kind."""
    for depth in (1_000, 5_000, 50_000):
        yield b"[" * depth
        yield b'{"a":' * depth
        yield b'{"event_id": "e", "context_id": "c", "x": ' + b"[" * depth + b"]" * depth + b"}"
    for digits in (4_301, 10_000, 100_000):
        yield b'{"event_id": "e", "n": ' + b"7" * digits + b"}"
        yield b'{"event_id": ' + b"1" * digits + b"}"
    for escape in (b"\\ud800", b"\\udfff", b"\\udc80\\ud800"):
        yield b'{"' + escape + b'": 1}'
        yield b'{"event_id": "evt-' + escape + b'", "context_id": "c", "segments": [{"id": "s1", "text": "t"}]}'
        yield b'{"event_id": "e", "context_id": "c", "segments": [{"id": "s1", "text": "x' + escape + b'"}]}'
        yield b'{"event_id": "e", "context_id": "c", "prompt_ids": {"' + escape + b'": "summary@v1"}}'
    for constant in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        yield constant
        yield b'{"event_id": ' + constant + b', "context_id": "c"}'
        yield event_json(segments=[{"id": "s1", "text": "t"}])[:-1] + b', "start_ms": ' + constant + b"}"
    control = bytes(range(32))
    yield control
    yield control * 7_000  # 224 KB: about 6x once JSON-escaped in the dead letter
    yield b'"' * 600_000
    yield event_json(segments=[{"id": "s1", "text": "nul \x00 inside"}])
    yield event_json(segments=[{"id": "s1", "text": control.decode() * 1000}], prompt_ids=[1])
    for _ in range(12):
        yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))  # random bytes, seldom UTF-8
    yield b'{"event_id": "\xff\xfe", "context_id": "c"}'
    yield b"\xef\xbb\xbf" + event_json(segments=make_segments(1))
    yield from (b"[]", b"[1, 2]", b'"text"', b"1", b"true", b"null", b"", b" ", None)
    yield b'{"context_id": "missing event id", "segments": [{"id": "s1", "text": "t"}]}'
    yield event_json(segments="not a list")
    yield event_json(segments=[{"id": "s1", "text": "t"}], **{f"unknown_{i}": i for i in range(20_000)})
    yield event_json(segments=[{"id": "s", "text": "t"}] * 2)
    yield event_json(segments=[{"id": f"s{i}", "text": "t"} for i in range(2_001)])
    yield event_json(segments=[{"id": "s1", "text": "t", "start_ms": 9, "end_ms": 1}])
    yield event_json(segments=make_segments(1), prompt_ids={"summary": "summary@v999"})
    yield event_json(segments=make_segments(1), language="not a language tag")
    yield event_json(segments=make_segments(1), event_id="e" * 200)
    yield event_json(context_id=unique("never-seen"))  # no segments for an unknown context
    yield event_json(segments=[{"id": "s1", "text": "a" * 999_000}])  # near the broker's limit
    yield b"\x01" * 1_000_000
    yield b"[" * 1_000_000


def mutated_events(rng: random.Random) -> Iterator[bytes]:
    """Valid events broken in ways that can never leave them valid, at random places."""
    for _ in range(60):  # cut short: never a complete JSON object
        value = json.dumps(task_event(rng.randrange(1, 4))).encode()
        yield value[: rng.randrange(1, len(value) - 1)]
    for _ in range(40):  # a byte that starts no UTF-8 sequence, anywhere
        value = json.dumps(task_event(1)).encode()
        at = rng.randrange(len(value))
        yield value[:at] + bytes([rng.choice((0xC0, 0xC1, 0xF5, 0xFE, 0xFF))]) + value[at:]
    wrong_types: list[object] = [17, -1.5, True, None, [], ["x"], {}, {"a": 1}, ""]
    for _ in range(40):  # a field of the wrong type
        event = task_event(1)
        field = rng.choice(["event_id", "context_id", "segments", "language", "prompt_ids", "segment text"])
        wrong = rng.choice(wrong_types)
        if field == "segment text":
            event["segments"][0]["text"] = wrong if wrong != "" else 0  # type: ignore[index]
        elif field == "language" and wrong is None:
            event["language"] = 42
        elif field in ("prompt_ids", "language") and wrong in ([], {}, ""):
            event[field] = 3.5
        else:
            event[field] = wrong if (wrong is not None or field != "prompt_ids") else [1]
        yield json.dumps(event).encode()
    for _ in range(30):
        yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))
    for _ in range(20):
        depth = rng.randrange(1_000, 100_000)
        yield "".join(rng.choice(["[", '{"k":']) for _ in range(depth)).encode()


def hostile_headers(rng: random.Random) -> list[tuple[str, bytes]]:
    kind = rng.randrange(5)
    if kind == 0:
        return [(RawHeaderKey(b"\xff\xfe-not-utf8"), b"v")]
    if kind == 1:
        return [("binary", bytes(rng.randrange(256) for _ in range(64))), ("x-replay-attempt", b"\xff")]
    if kind == 2:
        return [("traceparent", b"x" * 500), ("x-replay-attempt", b"99999999999999999999999")]
    if kind == 3:
        return [(RawHeaderKey(bytes([0x80 + i])), b"") for i in range(20)]
    return []


def test_hostile_messages_are_each_dead_lettered_once_and_valid_events_each_analysed_once(
    stack: Stack, store: RunStore
) -> None:
    rng = random.Random(SEED)
    keys: list[Callable[[], bytes | None]] = [lambda: None, lambda: b"\xff\xfe", lambda: b"k" * 10_000, lambda: b""]
    hostile: list[Message] = []
    for value in itertools.chain(hostile_values(rng), mutated_events(rng)):
        size = len(value or b"")
        headers = hostile_headers(rng) if size < 900_000 else []
        key = rng.choice(keys)() if size < 900_000 and value is not None else b"k"  # Kafka needs key or value
        hostile.append((key, value, headers))
    valid = [task_event(2) for _ in range(40)]
    weird_but_valid = [
        valid_with("Tabs\tand\x01control\x1fcharacters are allowed, and so are emoji 🦀 and ünïcode."),
        valid_with("Tên tôi là Nguyễn Văn An."),
    ]
    messages = [(b"\xff\xfe", as_message(e)[1], hostile_headers(rng)) for e in weird_but_valid]
    messages += [as_message(e) for e in valid]
    tagged = [(m, True) for m in hostile] + [(m, False) for m in messages]
    rng.shuffle(tagged)
    assert len(hostile) >= 250

    positions = stack.produce([message for message, _ in tagged])
    hostile_at = {position for position, (_, bad) in zip(positions, tagged, strict=True) if bad}
    bridge = stack.start_bridge()
    ids = {str(e["event_id"]) for e in valid + weird_but_valid}
    wait_until(lambda: finished(store, ids), 180, "every valid event")
    wait_until(
        lambda: len(read_dead_letters(*stack.dlq, timeout_s=2)) >= len(hostile), 120, "every hostile message's letter"
    )

    assert bridge.alive(), bridge.log_tail()
    runs = runs_for(store, ids)
    assert len(runs) == len(ids) and {r.status for r in runs} == {"ok"}
    assert set(ok_calls_per_worker(store, [r.id for r in runs]).values()) == {1}
    letters = read_dead_letters(*stack.dlq, timeout_s=5)
    at = Counter((letter.body["source"]["partition"], letter.body["source"]["offset"]) for letter in letters)
    assert set(at.values()) == {1}  # once each
    assert set(at) == hostile_at  # every hostile message, and nothing else
    assert {letter.stage for letter in letters} <= {"decode", "validation"}
    assert all(len(letter.body) > 0 and "reason" in letter.body for letter in letters)
    print(f"\nfuzz: {len(hostile)} hostile messages dead-lettered once each, {len(ids)} valid events analysed once")
