"""The UDP answer cache (issue #15): bounded whatever the clients, one entry per name
whatever its spelling, the client's spelling echoed."""

from __future__ import annotations

import dns.message
import dns.rrset
from hypothesis import given
from hypothesis import strategies as st

from dns_compute.cache import AnswerCache, normalise
from dns_compute.responder import CACHE_ANY, CACHE_NONE, CACHE_SOURCE


def _query(name: str, qid: int = 1) -> bytes:
    q = dns.message.make_query(name, "A", use_edns=0)
    q.id = qid
    return bytes(q.to_wire())


def _answer(query: bytes) -> bytes:
    q = dns.message.from_wire(query)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(q.question[0].name, 5, "IN", "A", "10.0.1.10"))
    return bytes(r.to_wire())


def test_many_sources_stay_within_the_bound() -> None:
    """300 k sources grew RSS by 45 MB: per-source answers had no bound."""
    cache = AnswerCache(max_entries=1000)
    q = _query("video.svc.cpn.example")
    a = _answer(q)
    for i in range(20_000):
        cache.put(q, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", a, CACHE_SOURCE)
        assert cache.entries <= 1000
    assert cache.flushes == 19
    assert cache.get(q, "10.0.78.31") == a  # the newest survive


def test_spellings_share_one_entry_and_get_their_own_question_back() -> None:
    cache = AnswerCache()
    lower = _query("video.svc.cpn.example", qid=7)
    cache.put(lower, "10.0.0.1", _answer(lower), CACHE_ANY)
    fast = cache.fast_lookup(lower[2:])  # the server's hot path: no parsing
    assert fast is not None and lower[:2] + fast == _answer(lower)
    upper = _query("VIDEO.Svc.CPN.example", qid=9)
    hit = cache.get(upper, "10.0.0.2")
    assert hit is not None and cache.entries == 1
    r = dns.message.from_wire(hit)
    assert r.id == 9 and r.question[0].name.to_text() == "VIDEO.Svc.CPN.example."
    assert r.answer[0].name.to_text() == "VIDEO.Svc.CPN.example."


def test_uncacheable_and_malformed_are_not_kept() -> None:
    cache = AnswerCache()
    q = _query("a.cpn.example")
    cache.put(q, "10.0.0.1", _answer(q), CACHE_NONE)
    cache.put(q[:14], "10.0.0.1", _answer(q), CACHE_ANY)  # truncated question
    assert cache.entries == 0 and normalise(q[:14]) is None
    assert cache.get(q, "10.0.0.1") is None


@given(st.lists(st.sampled_from("abcXYZ09-"), min_size=1, max_size=20))
def test_any_spelling_hits_the_entry_of_another(chars: list[str]) -> None:
    label = "".join(chars)
    name = f"{label}.cpn.example"
    swapped = "".join(c.swapcase() for c in name)
    cache = AnswerCache()
    q1 = _query(name)
    cache.put(q1, "s", _answer(q1), CACHE_ANY)
    lower = _query(name.lower(), qid=5)
    assert cache.fast_lookup(lower[2:]) is not None
    hit = cache.get(_query(swapped, qid=3), "s")
    assert hit is not None
    assert dns.message.from_wire(hit).question[0].name.to_text() == swapped + "."
