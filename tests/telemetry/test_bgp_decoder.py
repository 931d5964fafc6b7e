"""ExaBGP JSON decoder: real captured lines, bad input, fuzzing (issue #3)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.bgp.decoder import (
    EndOfRib,
    ExaBgpDecoder,
    PeerDown,
    PeerUp,
    Rejected,
    RouteAnnounced,
    RouteWithdrawn,
    SpeakerShutdown,
)

FIX = Path(__file__).parent / "fixtures" / "exabgp-5.0.0-gobgp-session.jsonl"


def _update(attrs: object, announce: object = None, withdraw: object = None) -> str:
    upd: dict[str, object] = {}
    if announce is not None:
        upd["attribute"] = attrs
        upd["announce"] = announce
    if withdraw is not None:
        upd["withdraw"] = withdraw
    return json.dumps({"exabgp": "5.0.0", "type": "update", "neighbor": {
        "address": {"local": "10.0.0.1", "peer": "10.0.0.2"},
        "asn": {"local": 65000, "peer": 65001}, "direction": "receive",
        "message": {"update": upd}}}) + "\n"


def test_real_session_capture() -> None:
    events = ExaBgpDecoder().feed(FIX.read_bytes())
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["PeerUp", "RouteAnnounced", "RouteAnnounced", "RouteWithdrawn",
                     "PeerDown", "PeerDown", "PeerDown", "SpeakerShutdown"]
    up, a1, a2, wd, down = events[:5]
    assert isinstance(up, PeerUp) and up.peer == "10.0.0.2" and up.peer_as == 65001
    assert isinstance(a1, RouteAnnounced)
    assert (a1.prefix, a1.next_hop, a1.metrics.l2, a1.metrics.l0) == (
        "198.51.100.10/32", "10.0.0.2", 8.5, {"cpu_pct": 12.0})
    assert isinstance(a2, RouteAnnounced) and a2.metrics.l2 == 3.0
    assert isinstance(wd, RouteWithdrawn) and wd.prefix == "198.51.100.10/32"
    assert isinstance(down, PeerDown) and "notification" in down.reason
    assert isinstance(events[-1], SpeakerShutdown)


def test_partial_lines_are_buffered() -> None:
    dec = ExaBgpDecoder()
    data = FIX.read_bytes()
    events = [e for i in range(0, len(data), 37) for e in dec.feed(data[i:i + 37])]
    assert len(events) == 8 and dec.rejected == 0


def test_many_nlri_per_update_and_eor() -> None:
    ann = {"ipv4 unicast": {"10.0.0.2": [{"nlri": f"198.51.{i}.0/24"} for i in range(50)]},
           "ipv6 unicast": {"2001:db8::2": [{"nlri": "2001:db8:10::/48"}]}}
    ev = ExaBgpDecoder().feed(_update({"large-community": [[65001, 1, 100]]}, ann))
    assert len(ev) == 51 and all(isinstance(e, RouteAnnounced) and e.metrics.l2 == 1.0
                                 for e in ev)
    eor = json.loads(_update({}, withdraw={}))
    eor["neighbor"]["message"] = {"eor": {"afi": "ipv4", "safi": "unicast"}}
    (e,) = ExaBgpDecoder().feed(json.dumps(eor) + "\n")
    assert isinstance(e, EndOfRib) and (e.peer, e.family) == ("10.0.0.2", "ipv4 unicast")


def _reasons(line: str) -> list[str]:
    return [e.reason for e in ExaBgpDecoder().feed(line) if isinstance(e, Rejected)]


def test_bad_input_is_rejected_with_reason() -> None:
    ann = {"ipv4 unicast": {"10.0.0.2": [{"nlri": "198.51.100.10/32"}]}}
    assert "malformed JSON" in _reasons("{not json\n")[0]
    assert "unknown metric id 77" in _reasons(_update({"large-community": [[65001, 77, 1]]},
                                                      ann))[0]
    assert "exceeds 1000" in _reasons(_update({"large-community": [[65001, 1, 5000]]}, ann))[0]
    assert "invalid prefix" in _reasons(_update({}, {"ipv4 unicast": {
        "10.0.0.2": [{"nlri": "198.51.100.10/33"}]}}))[0]
    assert "invalid address" in _reasons(_update({}, {"ipv4 unicast": {
        "nexthop?": [{"nlri": "198.51.100.10/32"}]}}))[0]
    assert "neighbor.address" in _reasons('{"type": "update", "neighbor": {}}\n')[0]


def test_bad_attributes_keep_withdrawals_of_the_same_update() -> None:
    line = _update({"large-community": [[65001, 77, 1]]},
                   {"ipv4 unicast": {"10.0.0.2": [{"nlri": "198.51.100.10/32"}]}},
                   {"ipv4 unicast": [{"nlri": "198.51.100.11/32"}]})
    ev = ExaBgpDecoder().feed(line)
    assert [type(e) for e in ev] == [RouteWithdrawn, Rejected]


def test_over_long_line_dropped_and_decoder_recovers() -> None:
    dec = ExaBgpDecoder()
    import telemetry.bgp.decoder as mod

    old = mod.MAX_LINE
    mod.MAX_LINE = 100
    try:
        ev = dec.feed(b"x" * 150)
        ev += dec.feed(b"yyy\n" + FIX.read_bytes().splitlines(keepends=True)[1])
    finally:
        mod.MAX_LINE = old
    assert isinstance(ev[0], Rejected) and "longer than" in ev[0].reason
    assert isinstance(ev[-1], PeerUp)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4),
    max_leaves=20)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_fuzz_bytes_never_raise(data: bytes) -> None:
    dec = ExaBgpDecoder()
    for e in dec.feed(data + b"\n"):
        assert isinstance(e, Rejected | PeerUp | PeerDown | RouteAnnounced | RouteWithdrawn
                          | EndOfRib | SpeakerShutdown)


@settings(max_examples=300)
@given(json_values, json_values, json_values)
def test_fuzz_structured_updates_never_raise(attrs: object, ann: object, wd: object) -> None:
    line = _update(attrs, ann, wd) if ann is not None else _update(attrs, withdraw=wd)
    for e in ExaBgpDecoder().feed(line):
        if isinstance(e, RouteAnnounced):
            assert 0 <= (e.metrics.l2 or 0) <= 10


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                          st.integers(0, 2**32 - 1)), max_size=6))
def test_fuzz_large_communities_decode_in_range_or_reject(lcs: list[tuple[int, int, int]]) -> None:
    ann = {"ipv4 unicast": {"10.0.0.2": [{"nlri": "198.51.100.10/32"}]}}
    for e in ExaBgpDecoder().feed(_update({"large-community": [list(t) for t in lcs]}, ann)):
        assert isinstance(e, RouteAnnounced | Rejected)
        if isinstance(e, RouteAnnounced):
            md = e.metrics
            assert md.l2 is None or 0 <= md.l2 <= 10
            assert all(0 <= v <= 1 for v in md.l1.values())


@given(st.integers(0, 2**32 - 1), st.integers(0, 40), st.sampled_from(["", "0", " ", "/"]))
def test_fast_ipv4_prefix_path_agrees_with_ipaddress(addr: int, plen: int, junk: str) -> None:
    from ipaddress import IPv4Address, ip_network

    from telemetry.bgp.decoder import _fast_v4

    text = f"{IPv4Address(addr)}/{plen}{junk}"
    fast = _fast_v4(text)
    try:
        slow: str | None = str(ip_network(text, strict=True))
    except ValueError:
        slow = None
    assert fast is None or fast == slow


def test_foreign_global_administrator_is_not_metadata() -> None:
    """Issue #15: the codec is built without an ASN; the peer's AS (65001) decides whose
    large communities are metadata — 65099:1:900 is someone else's policy community."""
    ann = {"ipv4 unicast": {"10.0.0.2": [{"nlri": "198.51.100.10/32"}]}}
    (ev,) = ExaBgpDecoder().feed(_update({"large-community": [[65099, 1, 900],
                                                              [65099, 77, 1],
                                                              [65001, 1, 300]]}, ann))
    assert isinstance(ev, RouteAnnounced) and ev.metrics.l2 == 3.0


def test_duplicate_metric_id_decodes_with_a_warning() -> None:
    ann = {"ipv4 unicast": {"10.0.0.2": [{"nlri": "198.51.100.10/32"}]}}
    (ev,) = ExaBgpDecoder().feed(_update({"large-community": [[65001, 1, 300],
                                                              [65001, 1, 300],
                                                              [65001, 1, 700]]}, ann))
    assert isinstance(ev, RouteAnnounced) and ev.metrics.l2 == 3.0
    (warning,) = ev.metrics.warnings
    assert "metric id 1 (l2) carried twice" in warning and "65001:1:700" in warning
