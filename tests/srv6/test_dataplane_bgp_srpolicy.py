"""The ``PolicyProgrammer`` contract over BGP SR Policy, with GoBGP as the router
(GBA-6.4.3c; issue 13 item 6).

GoBGP 3.10 runs in a lab namespace and peers passively with CPN's speaker, which
connects from inside that namespace. Every ``read_actual`` of the contract is also
proven against the router: GoBGP's Adj-RIB-In for CPN, read through its gRPC API
(``ListPath``), must equal the programmer's view on every field GoBGP decodes. GoBGP
quirks the comparison allows for (``labs.gobgp``): SRv6 Binding SID and Policy Name
sub-TLVs are not decoded (their raw value is compared); the Candidate Path Name is
held 3 bytes too long (the bytes sent are compared, and the over-read is asserted).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.errors import ConnectionError
from labs.gobgp import GoBgp
from labs.netns import Lab, Ns, wait_for
from srv6.dataplane import NodeState, PolicyProgrammer
from srv6.dataplane.bgp_srpolicy import BgpPeer, BgpSrPolicyProgrammer
from srv6.dataplane.state import Route, Seg6Route, SrPolicyRoute, SrSegment, SrSegmentList
from tests.conftest import needs_netns
from tests.srv6.test_programmer_contract import ProgrammerContract, Routes

ST = (32, 16, 16, 0)
GOBGP_ID = "192.0.2.254"


def seg(sid: str, behavior: str | None = None) -> SrSegment:
    return SrSegment(sid, behavior, ST if behavior else None)


def policy(color: int, endpoint: str, *lists: tuple[SrSegment, ...], **kw: object
           ) -> SrPolicyRoute:
    return SrPolicyRoute(color, endpoint, tuple(SrSegmentList(sl, w + 1)
                                                for w, sl in enumerate(lists)), **kw)  # type: ignore[arg-type]


POLICIES = Routes(
    a=policy(10, "fc00:5::1", (seg("fc00:2::1", "End"), seg("fc00:5::d4", "End.DX4"))),
    a2=policy(10, "fc00:5::1", (seg("fc00:4::1", "End"), seg("fc00:5::d4", "End.DX4"))),
    b=policy(20, "fc00:6::1", (seg("fc00:2::1"),), (seg("fc00:3::1"), seg("fc00:6::d6")),
             priority=10, preference=200),
    inl=policy(30, "fc00:5::1", (seg("fc00:3::1", "End.X"), seg("fc00:5::d6", "End.DX6")),
               distinguisher=2, binding_sid="fc00:1::b30", name="video-to-mec1",
               path_name="cp-delay"),
    l1=policy(40, "fc00:7::1", (seg("fc00:7::1", "End"),)),
    l2=policy(41, "fc00:8::1", (seg("fc00:2::1", "End"), seg("fc00:8::d4", "End.DX4"))),
    l3=policy(42, "::", (seg("fc00:9::1"),)),  # null endpoint: colour-only steering
    l4=policy(43, "fc00:5::1", (seg("fc00:3::1", "End.T"),), preference=50),
    stale=policy(90, "fc00:5::1", (seg("fc00:3::1"),)),
    # protection = a second candidate path of the same policy, lower preference (RFC 9256
    # §2.9: the router falls back to it when the preferred path is invalid)
    bk=policy(10, "fc00:5::1", (seg("fc00:3::1", "End"), seg("fc00:5::d4", "End.DX4")),
              distinguisher=1, preference=50),
    bk2=policy(10, "fc00:5::1", (seg("fc00:4::1", "End"), seg("fc00:5::d4", "End.DX4")),
               distinguisher=1, preference=50),
)


def start_router(lab: Lab, tmp: Path, families: tuple[str, ...]) -> tuple[Ns, GoBgp]:
    ns = lab.ns("rtr")
    gobgp = GoBgp(ns, tmp, 65000, GOBGP_ID, {"127.0.0.1": (65000, families)}).start()
    return ns, gobgp


def peer(ns: Ns, hold_time: int = 9, connect_retry: float = 5.0) -> BgpPeer:
    return BgpPeer("127.0.0.1", peer_as=65000, local_as=65000, router_id="192.0.2.1",
                   netns=ns.name, hold_time=hold_time, connect_retry=connect_retry)


class GoBgpCheckedProgrammer(BgpSrPolicyProgrammer):
    """The real backend; ``read_actual`` also proves GoBGP's RIB equals what it returns."""

    gobgp: GoBgp

    def read_actual(self) -> NodeState:
        actual = super().read_actual()
        want = {r.key: r for r in actual if isinstance(r, SrPolicyRoute)}
        problems: list[str] = []

        def rib_equal() -> bool:
            held = {p.key: p for p in self.gobgp.policies("127.0.0.1")}
            problems[:] = [f"{k}: missing on the router" for k in want.keys() - held.keys()]
            problems.extend(f"{k}: on the router, not in CPN" for k in held.keys() - want.keys())
            for k in want.keys() & held.keys():
                problems.extend(f"{k}: {m}" for m in held[k].mismatches(want[k]))
                rts = held[k].route_targets
                if rts != [f"{GOBGP_ID}:0"]:
                    problems.append(f"{k}: route target {rts}, expected the router's id")
            return not problems

        try:
            wait_for(rib_equal, 5.0, "GoBGP RIB to match")  # UPDATEs are processed async
        except Exception:
            pytest.fail("GoBGP RIB differs from the programmer: " + "; ".join(problems))
        return actual


@needs_netns
@pytest.mark.lab
class TestBgpSrPolicy(ProgrammerContract):
    R = POLICIES

    @pytest.fixture(autouse=True)
    def _lab(self, tmp_path: Path) -> Iterator[None]:
        with Lab("srp") as lab:
            self.ns, self.gobgp = start_router(lab, tmp_path, ("ipv6-srpolicy",))
            yield

    def make(self) -> PolicyProgrammer:
        prog = GoBgpCheckedProgrammer("r9", peer(self.ns))
        prog.gobgp = self.gobgp
        assert prog.speaker.established, prog.speaker.down_reason()
        return prog

    def tamper_delete(self, prog: PolicyProgrammer, route: Route) -> None:
        # the router loses a policy behind the programmer's back
        assert isinstance(prog, BgpSrPolicyProgrammer) and isinstance(route, SrPolicyRoute)
        prog.speaker.withdraw([route])

    def tamper_add(self, prog: PolicyProgrammer, route: Route) -> None:
        assert isinstance(prog, BgpSrPolicyProgrammer) and isinstance(route, SrPolicyRoute)
        prog.speaker.advertise(route)

    def bad_route(self, prog: PolicyProgrammer) -> Route:
        # this router negotiated ipv6-srpolicy only: an IPv4 policy is refused
        return policy(999, "10.9.9.9", (seg("fc00:9::1"),))

    def test_kernel_route_is_refused_naming_the_fix(self, prog: PolicyProgrammer) -> None:
        prog.load(NodeState.of([self.R.a, Seg6Route(dst="10.20.0.0/24",
                                                    segments=("fc00:2::1",), dev="eth0")]))
        res = prog.commit()
        assert res.failed and "takes SR policies, not kernel routes" in res.error
        assert "fix:" in res.error
        assert len(prog.read_actual()) == 0  # nothing half-programmed

    def test_refused_family_names_the_router_config(self, prog: PolicyProgrammer) -> None:
        prog.load(NodeState.of([self.bad_route(prog)]))
        res = prog.commit()
        assert res.failed and "did not negotiate ipv4-srpolicy" in res.error
        assert "enable ipv4-srpolicy" in res.error


@needs_netns
@pytest.mark.lab
def test_session_survives_router_restart_and_hold_timer(tmp_path: Path) -> None:
    """IPv4 and IPv6 policies; the router restarts → CPN reconnects and re-advertises
    without a commit; the router hangs (SIGSTOP) → the hold timer takes the session
    down and reads fail naming the peer; it resumes → everything is back."""
    v4 = policy(50, "10.0.0.5", (seg("fc00:2::1", "End"), seg("fc00:5::d4", "End.DX4")))
    v6 = POLICIES.inl
    with Lab("srr") as lab:
        ns, gobgp = start_router(lab, tmp_path, ("ipv4-srpolicy", "ipv6-srpolicy"))
        prog = BgpSrPolicyProgrammer("r9", peer(ns, connect_retry=0.3, hold_time=3))
        try:
            prog.load(NodeState.of([v4, v6]))
            assert not prog.commit().failed

            def held() -> set[tuple[str, int, str]]:
                return {p.key for p in gobgp.policies("127.0.0.1")
                        if not p.mismatches(v4 if p.key == v4.key else v6)}

            wait_for(lambda: held() == {v4.key, v6.key}, 5, "both policies on the router")

            gobgp.stop()
            wait_for(lambda: not prog.speaker.established, 5, "session down")
            with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:179.*fix:"):
                prog.read_actual()
            gobgp.start()
            assert prog.speaker.wait_established(10), prog.speaker.down_reason()
            wait_for(lambda: held() == {v4.key, v6.key}, 5, "policies re-advertised")
            assert prog.speaker.sessions == 2

            os.kill(gobgp.proc.pid, signal.SIGSTOP)  # a hung router: no keepalives
            try:
                t0 = time.monotonic()
                wait_for(lambda: not prog.speaker.established, 8, "hold timer expiry")
                assert 2.0 < time.monotonic() - t0 < 6.0  # hold time 3 s negotiated
                assert "hold timer expired" in prog.speaker.last_error
            finally:
                os.kill(gobgp.proc.pid, signal.SIGCONT)
            assert prog.speaker.wait_established(15), prog.speaker.down_reason()
            assert prog.read_actual() == NodeState.of([v4, v6])
            wait_for(lambda: held() == {v4.key, v6.key}, 5, "policies back after the hang")
        finally:
            prog.close()


@needs_netns
@pytest.mark.lab
def test_graceful_restart_keeps_policies_across_a_controller_restart(tmp_path: Path) -> None:
    """RFC 4724: CPN stops (connection closed, no NOTIFICATION) → GoBGP keeps the policies
    as stale; a new CPN connects with the R bit, its first commit re-advertises what it
    still wants and sends End-of-RIB → the router holds exactly that, nothing stale."""
    keep, drop = POLICIES.a, POLICIES.b
    with Lab("srg") as lab:
        ns = lab.ns("rtr")
        gobgp = GoBgp(ns, tmp_path, 65000, GOBGP_ID, {"127.0.0.1": (65000, ("ipv6-srpolicy",))},
                      graceful_restart=True).start()

        def held() -> dict[tuple[str, int, str], bool]:
            return {p.key: p.stale for p in gobgp.policies("127.0.0.1", family=6)}

        gr_peer = BgpPeer("127.0.0.1", 65000, 65000, "192.0.2.1", netns=ns.name, hold_time=9,
                          graceful_restart=60)
        first = BgpSrPolicyProgrammer("r9", gr_peer)
        try:
            assert first.status()["graceful_restart"]
            first.load(NodeState.of([keep, drop]))
            assert not first.commit().failed
            wait_for(lambda: held() == {keep.key: False, drop.key: False}, 5, "both on GoBGP")
        finally:
            first.close()  # a controller restart: the router keeps the policies, stale
        wait_for(lambda: held() == {keep.key: True, drop.key: True}, 5, "kept as stale")
        second = BgpSrPolicyProgrammer("r9", gr_peer)
        try:
            assert second.speaker.established and len(second.read_actual()) == 0
            time.sleep(0.5)  # up, nothing committed yet: the router still forwards on them
            assert held() == {keep.key: True, drop.key: True}
            second.load(NodeState.of([keep]))
            assert not second.commit().failed
            wait_for(lambda: held() == {keep.key: False}, 5, "End-of-RIB: the stale one gone")
            assert not gobgp.policies("127.0.0.1")[0].mismatches(keep)
        finally:
            second.close()
