"""SRv6 model rules (RFC 9256 candidate-path selection, RFC 8986 locators)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pydantic
import pytest

from controller.errors import ValidationError
from srv6.models import (
    CandidatePath,
    LocalSid,
    Locator,
    Originator,
    ProtocolOrigin,
    SegmentList,
    SidBehavior,
    SrPolicy,
    SrPolicyIntent,
    check_local_sid,
    check_locators,
    check_policy_nodes,
)

LOC = Locator(name="r1", node="R1", prefix="fc00:0:1::/48")


def sl(*fn: int, weight: int = 1) -> SegmentList:
    return SegmentList(sids=[LOC.sid(f) for f in fn], weight=weight)


def test_locator_sid_layout_and_function_roundtrip() -> None:
    assert LOC.sid(0x40) == IPv6Address("fc00:0:1:40::")
    assert LOC.function_of(IPv6Address("fc00:0:1:40::")) == 0x40
    with pytest.raises(ValueError, match="function 65536 outside"):
        LOC.sid(0x10000)
    with pytest.raises(ValueError, match="outside locator"):
        LOC.function_of(IPv6Address("fc00:0:2::1"))


def test_locator_lengths_must_match_prefix() -> None:
    with pytest.raises(pydantic.ValidationError, match="block_len \\+ node_len"):
        Locator(name="x", node="R1", prefix="fc00:0:1::/64")
    with pytest.raises(pydantic.ValidationError, match="> 128"):
        Locator(name="x", node="R1", prefix="fc00::/64", block_len=48, node_len=16,
                function_len=64, argument_len=8)


def test_overlapping_locators_are_refused_by_name() -> None:
    other = Locator(name="r1b", node="R2", prefix="fc00:0:1::/48", block_len=32)
    nested = Locator(name="wide", node="R3", prefix="fc00::/32", block_len=24, node_len=8)
    with pytest.raises(ValidationError, match="overlaps locator") as exc:
        check_locators([LOC, other, nested])
    assert len(exc.value.issues) >= 2
    check_locators([LOC, Locator(name="r2", node="R2", prefix="fc00:0:2::/48")])


def test_sid_outside_its_locator_is_refused() -> None:
    bad = LocalSid(sid="fc00:0:9::1", behavior=SidBehavior.END, node="R1", locator="r1")
    with pytest.raises(ValidationError, match="outside its locator r1"):
        check_local_sid(bad, {"r1": LOC})
    wrong_node = LocalSid(sid="fc00:0:1:1::", behavior=SidBehavior.END, node="R2",
                          locator="r1")
    with pytest.raises(ValidationError, match="belongs to R1"):
        check_local_sid(wrong_node, {"r1": LOC})


def test_local_sid_behaviour_arguments() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"End\.DX4 needs an IPv4"):
        LocalSid(sid="fc00:0:1:2::", behavior="End.DX4", node="R1", locator="r1",
                 nexthop="2001:db8::1")
    with pytest.raises(pydantic.ValidationError, match="headend behaviour"):
        LocalSid(sid="fc00:0:1:2::", behavior="H.Encaps", node="R1", locator="r1")
    ok = LocalSid(sid="fc00:0:1:2::", behavior="End.DX4", node="R1", locator="r1",
                  nexthop="10.0.0.2", interface="eth1")
    assert ok.nexthop == IPv4Address("10.0.0.2")


def test_active_path_is_highest_preference_valid() -> None:
    pol = SrPolicy(headend="R1", color=10, endpoint="R3", candidate_paths=[
        CandidatePath(preference=100, discriminator=1, segment_lists=[sl(1)]),
        CandidatePath(preference=300, discriminator=2, segment_lists=[sl(2, weight=0)]),
        CandidatePath(preference=200, discriminator=3, segment_lists=[sl(3)],
                      invalid_reason="SID fc00:0:1:3:: unreachable"),
        CandidatePath(preference=150, discriminator=4, segment_lists=[sl(4)]),
    ])
    active = pol.active_path()
    assert active is not None and active.discriminator == 4
    assert pol.key == "R1~10~R3"


def test_tie_breaks_follow_rfc9256_2_9() -> None:
    low_origin = Originator(asn=65000, node="2001:db8::2")
    high_origin = Originator(asn=65000, node="2001:db8::9")
    pol = SrPolicy(headend="R1", color=10, endpoint="R3", candidate_paths=[
        CandidatePath(preference=100, protocol_origin=ProtocolOrigin.PCEP,
                      segment_lists=[sl(1)]),
        CandidatePath(preference=100, protocol_origin=ProtocolOrigin.CONFIG,
                      originator=high_origin, discriminator=7, segment_lists=[sl(2)]),
        CandidatePath(preference=100, protocol_origin=ProtocolOrigin.CONFIG,
                      originator=low_origin, discriminator=1, segment_lists=[sl(3)]),
        CandidatePath(preference=100, protocol_origin=ProtocolOrigin.CONFIG,
                      originator=low_origin, discriminator=5, segment_lists=[sl(4)]),
    ])
    active = pol.active_path()
    # CONFIG beats PCEP; lower originator beats higher; then higher discriminator.
    assert active is not None and active.discriminator == 5


def test_no_valid_path_means_no_active_path() -> None:
    pol = SrPolicy(headend="R1", color=1, endpoint="R2", candidate_paths=[
        CandidatePath(segment_lists=[])])
    assert pol.active_path() is None and pol.active_segment_lists() == []


def test_duplicate_candidate_identity_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"RFC 9256 §2\.6"):
        SrPolicy(headend="R1", color=1, endpoint="R2", candidate_paths=[
            CandidatePath(preference=1, segment_lists=[sl(1)]),
            CandidatePath(preference=2, segment_lists=[sl(2)])])


def test_policy_encap_must_be_headend_behaviour() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"H\.Encaps"):
        SrPolicy(headend="R1", color=1, endpoint="R2", encap="End")
    with pytest.raises(pydantic.ValidationError, match="both 'R1'"):
        SrPolicy(headend="R1", color=1, endpoint="R1")


def test_policy_to_unknown_endpoint_names_it() -> None:
    intent = SrPolicyIntent(headend="R1", endpoint="R9", color=5)
    with pytest.raises(ValidationError, match="unknown endpoint 'R9'") as exc:
        check_policy_nodes(intent.headend, intent.endpoint, {"R1", "R2"}, "intent")
    assert exc.value.issues[0].path == "intent.endpoint"


def test_models_roundtrip_through_store(store: object) -> None:
    from controller.store import SqliteStore

    assert isinstance(store, SqliteStore)
    pol = SrPolicy(headend="R1", color=10, endpoint="R3", candidate_paths=[
        CandidatePath(preference=100, segment_lists=[sl(1, 2)])])
    with store.transaction("test", "policy") as txn:
        txn.put(pol)
        txn.put(LOC)
    got = store.get(SrPolicy, "R1~10~R3")
    assert got == pol
    assert store.get(Locator, "r1") == LOC
