"""Bench: SR policies sent over BGP SR Policy until GoBGP holds them (goal ≥ 1,000/s).

What is measured (issue 13 item 6): GoBGP 3.10 in a fresh namespace is the router; CPN's
``BgpSrPolicyProgrammer`` commits ``policies`` SRv6 policies (3 type-B segments with
behaviour and SID structure, preference, name) as one desired state. A round is timed
from the commit until GoBGP's Adj-RIB-In for CPN, read through its gRPC API, holds all of
them (``add``: polled with ``GetTable``, then every path is checked against the intent
with ``ListPath``); then every policy moves to a new segment list (``replace``: one
UPDATE each, implicit withdraw) until GoBGP holds the new lists (polled with
``ListPath``, ~0.2 s per poll for 1,000 paths, so an upper bound); then everything is
withdrawn until GoBGP holds none (``withdraw``). ``rounds`` rounds; medians, min/max spread and
the load average are reported; ``policies_per_s`` is the median ``add`` rate;
``rib_mismatches`` counts paths that differ from the intent on a decodable field (or are
missing / extra) after every add and withdraw.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from labs.gobgp import GoBgp
from labs.netns import Lab
from srv6.dataplane import NodeState
from srv6.dataplane.bgp_srpolicy import BgpPeer, BgpSrPolicyProgrammer
from srv6.dataplane.state import SrPolicyRoute, SrSegment, SrSegmentList

ST = (32, 16, 16, 0)


def _state(n: int, variant: int) -> NodeState:
    return NodeState.of(
        SrPolicyRoute(100 + i, f"fc00:{5 + i % 7:x}::1", (SrSegmentList((
            SrSegment(f"fc00:{2 + variant}::1", "End", ST),
            SrSegment(f"fc00:3::{i % 4000 + 1:x}", "End", ST),
            SrSegment(f"fc00:{5 + i % 7:x}::d4", "End.DX4", ST)), 1),),
            preference=100 + variant, name=f"bench-{i}")
        for i in range(n))


def _until_count(gobgp: GoBgp, n: int, timeout: float) -> float:
    """Seconds until GoBGP holds ``n`` paths from CPN (``GetTable``, nothing decoded)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if gobgp.count("127.0.0.1") == n:
            return time.perf_counter() - t0
        time.sleep(0.005)
    raise TimeoutError(f"GoBGP did not reach {n} policies in {timeout} s")


def _until(gobgp: GoBgp, want: NodeState, timeout: float) -> float:
    """Seconds until GoBGP holds exactly ``want``'s keys with ``want``'s segment lists."""
    t0 = time.perf_counter()
    first_sids = {r.key: r.segment_lists[0].segments[0].sid for r in want
                  if isinstance(r, SrPolicyRoute)}
    while time.perf_counter() - t0 < timeout:
        held = gobgp.policies("127.0.0.1", family=6)
        if len(held) == len(first_sids) and all(
                p.key in first_sids and p.segment_lists and
                str(_addr(p.segment_lists[0][1][0].sid)) == first_sids[p.key] for p in held):
            return time.perf_counter() - t0
        time.sleep(0.02)
    raise TimeoutError(f"GoBGP did not converge on {len(first_sids)} policies in {timeout} s")


def _addr(b: bytes) -> str:
    import ipaddress

    return str(ipaddress.IPv6Address(b))


def run(policies: int = 1000, rounds: int = 3, **_opts: Any) -> dict[str, Any]:
    n, rounds = int(policies), int(rounds)
    a, b = _state(n, 0), _state(n, 1)
    adds: list[float] = []
    replaces: list[float] = []
    withdraws: list[float] = []
    mismatches = 0
    with tempfile.TemporaryDirectory(prefix="cpn-bench-srp-") as tmp, Lab("bsrp") as lab:
        ns = lab.ns("rtr")
        gobgp = GoBgp(ns, Path(tmp), 65000, "192.0.2.254",
                      {"127.0.0.1": (65000, ("ipv6-srpolicy",))}).start()
        prog = BgpSrPolicyProgrammer("rtr", BgpPeer("127.0.0.1", 65000, 65000, "192.0.2.1",
                                                    netns=ns.name))
        try:
            for _ in range(rounds):
                for target, out in ((a, adds), (b, replaces), (NodeState(), withdraws)):
                    prog.load(target)
                    t0 = time.perf_counter()
                    res = prog.commit()
                    assert not res.failed, res.error
                    # add/withdraw: the path count says when the RIB is complete; a
                    # replace keeps the count, so the content is polled (coarser)
                    wait = _until(gobgp, target, 60.0) if target is b else \
                        _until_count(gobgp, len(target), 60.0)
                    out.append(time.perf_counter() - t0 + wait)
                    if target is not b:
                        want = {r.key: r for r in target if isinstance(r, SrPolicyRoute)}
                        held = gobgp.policies("127.0.0.1", family=6)
                        mismatches += sum(p.key not in want or bool(p.mismatches(want[p.key]))
                                          for p in held) + abs(len(held) - len(want))
        finally:
            prog.close()
    rate = n / statistics.median(adds)
    return {"bench": "srpolicy_bgp", "policies": n, "rounds": rounds,
            "policies_per_s": round(rate), "goal_policies_per_s": 1000,
            "met": rate >= 1000 and mismatches == 0,
            "add_s": {"median": round(statistics.median(adds), 3),
                      "min": round(min(adds), 3), "max": round(max(adds), 3)},
            "replace_s": {"median": round(statistics.median(replaces), 3),
                          "min": round(min(replaces), 3), "max": round(max(replaces), 3)},
            "withdraw_s": {"median": round(statistics.median(withdraws), 3),
                           "min": round(min(withdraws), 3), "max": round(max(withdraws), 3)},
            "rib_mismatches": mismatches, "loadavg": [round(x, 2) for x in os.getloadavg()]}
