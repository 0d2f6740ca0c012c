"""Bearer tokens for the HTTP API (``API_TOKENS``).

Every request needs ``Authorization: Bearer <token>`` with one of the
configured tokens, except on the open paths (``API_OPEN_PATHS``: health and
metrics by default, for probes and scrapers). Tokens are compared in
constant time, against every configured token, so that neither the match nor
its position leaks through timing. A presented token is never logged nor
echoed in an error.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

#: Shorter tokens are refused at start: they can be guessed.
MIN_TOKEN_LENGTH = 16


class BearerTokens:
    def __init__(self, tokens: Sequence[str], open_paths: Sequence[str]) -> None:
        self._tokens = [token.encode() for token in tokens]
        self._open_paths = frozenset(open_paths)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def is_open(self, path: str) -> bool:
        return path in self._open_paths

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries one of the tokens."""
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return False
        candidate = presented.strip().encode()
        matched = False
        for token in self._tokens:  # every one, whatever matched: constant time overall
            matched |= hmac.compare_digest(candidate, token)
        return matched
