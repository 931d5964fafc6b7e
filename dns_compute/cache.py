"""The UDP answer cache of the embedded server (sans-I/O; one per UDP loop thread).

Rules:
- Keyed by the query bytes after the id with the question name lower-cased (DNS
  names are case-insensitive, RFC 4343): ``Video.CPN.example`` and ``video.cpn.example``
  share one entry, so query spellings (0x20 randomisation) cannot multiply it. The
  answer still echoes the question exactly as the client sent it: an entry is the
  answer after the id with the question lower-cased; a lower-case query is answered
  with ``id + entry`` (the hot path, no parsing), any other spelling with ``id +
  header + the client's question + rest``.
- Answers that depend on the source address (``CACHE_SOURCE``: steered names asked
  without ECS) are kept per source under the same key.
- Bounded whatever the number of client sources and spellings: at most
  ``max_entries`` answers (shared and per-source together); when full, everything is
  dropped and refilled (one dict clear — no per-hit bookkeeping on the hot path). A
  zone change drops everything too (the server calls ``clear``).
- Only well-formed single-question queries are cached (the responder says which);
  a key that cannot be normalised (malformed name) is not cached.
"""

from __future__ import annotations

from dns_compute.responder import CACHE_ANY, CACHE_SOURCE

#: answers kept per UDP loop (~300 bytes each with dict overhead ⇒ ≈9 MB worst case)
CACHE_MAX = 32_768

def _question_end(data: bytes) -> int:
    """Offset just past the question's name in ``data`` (a full message), or -1."""
    pos, n = 12, len(data)
    while pos < n:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length > 63:
            return -1  # compression or extended label: not cached
        pos += 1 + length
    return -1


def normalise(data: bytes) -> tuple[bytes, int] | None:
    """Query → (cache key, question length) or None when it cannot be cached."""
    end = _question_end(data)
    if end < 0 or end + 4 > len(data):
        return None
    name = data[12:end]
    key = data[2:12] + (name.lower() if not name.islower() else name) + data[end:]
    return key, end + 4 - 12


class AnswerCache:
    """Bounded cache of UDP answers; ``get`` / ``put`` around ``Responder.respond``.

    An entry is the answer after the id with the question in its lower-case form, so
    a query already spelled in lower case is answered by ``fast_lookup(data[2:])``
    and one concatenation (the server's hot path, no parsing); any other spelling
    goes through ``get``, which puts the client's question back in."""

    def __init__(self, max_entries: int = CACHE_MAX) -> None:
        self.max_entries = max_entries
        self._any: dict[bytes, bytes] = {}
        self._src: dict[bytes, dict[str, bytes]] = {}
        #: ``dict.get`` of the shared answers; the dict is cleared in place, never
        #: replaced, so a caller may keep this bound method
        self.fast_lookup = self._any.get
        #: the same for per-source answers: key → {source: entry}
        self.fast_source = self._src.get
        self.entries = 0
        self.hits = self.fast_hits = self.misses = self.flushes = 0

    def clear(self) -> None:
        self._any.clear()
        self._src.clear()
        self.entries = 0

    def get(self, data: bytes, source: str) -> bytes | None:
        """The answer to ``data`` (a full query) from ``source``, id patched in."""
        norm = normalise(data)
        if norm is None:
            self.misses += 1
            return None
        key, qlen = norm
        hit = self._any.get(key)
        if hit is None:
            slot = self._src.get(key)
            hit = slot.get(source) if slot is not None else None
            if hit is None:
                self.misses += 1
                return None
        self.hits += 1
        return data[:2] + hit[:10] + data[12:12 + qlen] + hit[10 + qlen:]

    def put(self, data: bytes, source: str, answer: bytes, mode: int) -> None:
        """Remember ``answer`` (to ``data`` from ``source``) as ``mode`` allows."""
        if mode not in (CACHE_ANY, CACHE_SOURCE):
            return
        norm = normalise(data)
        if norm is None or len(answer) < 12 + norm[1]:
            return
        key, qlen = norm
        entry = answer[2:12] + key[10:10 + qlen] + answer[12 + qlen:]
        if self.entries >= self.max_entries:
            self.clear()
            self.flushes += 1
        if mode == CACHE_ANY:
            if key not in self._any:
                self.entries += 1
            self._any[key] = entry
        else:
            slot = self._src.get(key)
            if slot is None:
                slot = self._src[key] = {}
            if source not in slot:
                self.entries += 1
            slot[source] = entry
