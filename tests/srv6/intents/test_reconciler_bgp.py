"""The intent reconciler driving a router over BGP SR Policy, GoBGP as the router (issue 13
item 6): an intent created in the store is programmed as SR policy candidate paths, and
GoBGP's RIB (gRPC ``ListPath``) equals the intent's computed paths; a policy the router
lost is repaired and counted; a link cut re-paths with one UPDATE."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.models import Link, LinkState, Router
from controller.store import SqliteStore
from labs.gobgp import GoBgp, RibPolicy
from labs.netns import Lab, wait_for
from srv6.dataplane import MemoryProgrammer, PolicyProgrammer
from srv6.dataplane.bgp_config import BgpPeerSpec
from srv6.dataplane.bgp_srpolicy import BgpSrPolicyProgrammer
from srv6.dataplane.state import SrPolicyRoute
from srv6.intents.bindings import make_programmer
from srv6.intents.models import EndpointBinding, IntentsSection, IntentState, NodeBinding
from srv6.intents.models import SrPolicyIntentStatus as Status
from srv6.intents.reconciler import IntentReconciler
from srv6.models import SrPolicyIntent
from tests.conftest import needs_netns

N = 6
LOOP3 = "fc00:0:3::1"
KEY = "R1~100~R3"


def ring_links() -> list[Link]:
    return [Link(a=f"R{i}", b=f"R{i % N + 1}", delay_ms=1.0) for i in range(1, N + 1)]


def section(netns: str) -> IntentsSection:
    nodes = {"R1": NodeBinding(programmer="bgp-sr-policy", bgp=BgpPeerSpec(
        peer="127.0.0.1", peer_as=65000, local_as=65000,  # type: ignore[arg-type]
        router_id="192.0.2.1", hold_time=9, families=["ipv6"], netns=netns))}
    for i in range(2, N + 1):
        devs = {lk.key: f"to-{lk.b if lk.a == f'R{i}' else lk.a}" for lk in ring_links()
                if f"R{i}" in (lk.a, lk.b)}
        nodes[f"R{i}"] = NodeBinding(programmer="memory", devs=devs)
    eps = {"R3": EndpointBinding(dev="ehost", nh4="10.3.0.2",  # type: ignore[arg-type]
                                 prefixes={"10.3.0.0/24": 100})}
    return IntentsSection(nodes=nodes, endpoints=eps, readback_s=60, verify=False,
                          watch_links=False)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[tuple[GoBgp, str]]:
    with Lab("srin") as lab:
        ns = lab.ns("r1")
        yield GoBgp(ns, tmp_path, 65000, "192.0.2.254",
                    {"127.0.0.1": (65000, ("ipv6-srpolicy",))}).start(), ns.name


def rib(gobgp: GoBgp) -> dict[int, RibPolicy]:
    return {p.distinguisher: p for p in gobgp.policies("127.0.0.1", family=6)}


@needs_netns
@pytest.mark.lab
def test_intent_is_programmed_on_the_router_and_its_rib_equals_the_paths(
        store: SqliteStore, router: tuple[GoBgp, str]) -> None:
    gobgp, netns = router
    sec = section(netns)
    progs: dict[str, PolicyProgrammer] = {
        n: MemoryProgrammer(n) for n in sec.nodes if n != "R1"}
    progs["R1"] = make_programmer("R1", sec.nodes["R1"])
    rec = IntentReconciler(sec, progs)
    try:
        with store.transaction("test", "topology") as txn:
            for i in range(1, N + 1):
                txn.put(Router(name=f"R{i}", locator=f"fc00:0:{i}::/48",  # type: ignore[arg-type]
                               loopback=f"fc00:0:{i}::1"))  # type: ignore[arg-type]
            for lk in ring_links():
                txn.put(lk)
            txn.put(SrPolicyIntent(headend="R1", endpoint="R3", color=100, name="video"))
        rep = rec.reconcile_once(store)
        assert not rep.frozen, rep.frozen
        st = store.get(Status, KEY)
        assert st is not None and st.state is IntentState.PROGRAMMED, st
        assert st.active is not None and st.backup is not None

        def paths_on_router() -> bool:
            held = rib(gobgp)
            return set(held) == {0, 1} and all(
                not p.mismatches(want) for want in progs["R1"].read_actual()
                if isinstance(want, SrPolicyRoute)
                for p in [held[want.distinguisher]])

        wait_for(paths_on_router, 5, "GoBGP to hold the intent's candidate paths")
        held = rib(gobgp)
        for dist, path, pref in ((0, st.active, 100), (1, st.backup, 99)):
            pol = held[dist]
            assert (pol.color, pol.endpoint, pol.preference) == (100, LOOP3, pref)
            [(_, segs)] = pol.segment_lists
            assert [str(ipaddress.IPv6Address(s.sid)) for s in segs] == \
                path.segments
            assert pol.route_targets == ["192.0.2.254:0"]
        assert rec.reconcile_once(store).ops == 0  # re-applying changes nothing

        # the router loses the primary behind CPN's back: repaired and counted
        r1 = progs["R1"]
        assert isinstance(r1, BgpSrPolicyProgrammer)
        primary = next(r for r in r1.read_actual()
                       if isinstance(r, SrPolicyRoute) and r.distinguisher == 0)
        r1.speaker.withdraw([primary])
        wait_for(lambda: set(rib(gobgp)) == {1}, 5, "GoBGP to drop the primary")
        rep = rec.reconcile_once(store)
        assert rep.repairs == 1
        wait_for(paths_on_router, 5, "the primary back on the router")

        # a link cut re-paths: the primary candidate path is replaced by one UPDATE
        with store.transaction("test", "cut") as txn:
            txn.put(Link(a="R2", b="R3", delay_ms=1.0, state=LinkState.DOWN))
        rep = rec.reconcile_once(store)
        st = store.get(Status, KEY)
        assert st is not None and st.active is not None
        assert st.active.hops == ["R1", "R6", "R5", "R4", "R3"]
        wait_for(lambda: [str(ipaddress.IPv6Address(s.sid))
                          for s in rib(gobgp)[0].segment_lists[0][1]] == st.active.segments,
                 5, "the new primary path on the router")
    finally:
        for p in progs.values():
            p.close()
