"""Tolerant decoding of Kafka record header keys.

kafka-python 3 decodes header keys as strict UTF-8 while it parses a fetch
response, inside ``poll()``. One message whose header key is not UTF-8
therefore makes every ``poll()`` raise at the same offset: the bridge could
neither read that message (to dead-letter it) nor anything behind it. Java
clients decode header keys with replacement characters instead; this does
the same. Keys that are valid UTF-8 (every other record) take kafka-python's
own path unchanged; only a record that failed to decode is parsed a second
time, with U+FFFD for the undecodable bytes.

There is no hook for this in kafka-python (its record classes are internal),
hence a small patch, applied once by ``install``. A test produces such a
header key and checks that the bridge dead-letters the message and moves on.
"""

from __future__ import annotations

import threading
from typing import Any

from kafka.record.default_records import DefaultRecordBatch

_install_lock = threading.Lock()
_strict_read_msg: Any = None


class _ReplacingBytes(bytes):
    """Bytes whose ``decode`` replaces what is not valid instead of raising."""

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return super().decode(encoding, "replace")


class _ReplacingBuffer(bytearray):
    """A copy of a record batch's buffer whose slices decode with replacement characters."""

    def __getitem__(self, item: Any) -> Any:
        value = super().__getitem__(item)
        return _ReplacingBytes(value) if isinstance(item, slice) else value


def _read_msg_tolerantly(self: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return _strict_read_msg(self, *args, **kwargs)
    except UnicodeDecodeError:
        # Nothing was consumed (the position moves only on success): read the
        # same record again from a buffer whose text decodes leniently.
        strict_buffer = self._buffer
        self._buffer = _ReplacingBuffer(strict_buffer)
        try:
            return _strict_read_msg(self, *args, **kwargs)
        finally:
            self._buffer = strict_buffer


def install() -> None:
    """Make kafka-python decode header keys tolerantly (idempotent)."""
    global _strict_read_msg
    with _install_lock:
        if _strict_read_msg is None:
            _strict_read_msg = DefaultRecordBatch._read_msg
            DefaultRecordBatch._read_msg = _read_msg_tolerantly
