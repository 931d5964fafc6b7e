"""Bench: program 1,000 SR policies on one namespace headend over netlink (goal ≤ 2 s).

What is measured (issue 4): a real kernel in a fresh namespace; ``policies`` steering
routes (one /24 each, ``encap seg6`` with a 3-SID list) are loaded as one desired
``NodeState`` and committed by ``NetlinkProgrammer`` (one ``RTM_NEWROUTE`` per route on a
single netlink socket). Reported: ``program_s`` (the commit, incl. the read of the
table before it), ``readback_ok`` (every route read back equal), ``reconcile_noop_s``
(re-applying the same state: a dump and zero changes), ``replace_all_s`` (every policy
moved to a new segment list by atomic replaces), ``remove_all_s``.
"""

from __future__ import annotations

import time
from typing import Any

from labs.netns import Lab
from srv6.dataplane import NodeState, Seg6Route
from srv6.dataplane.netlink import NetlinkProgrammer


def _state(n: int, variant: int) -> NodeState:
    return NodeState.of(
        Seg6Route(dst=f"10.{100 + i // 256}.{i % 256}.0/24",
                  segments=(f"fc00:{2 + variant}::1", f"fc00:3::{i % 4000 + 1:x}",
                            "fc00:5::d4"), dev="eth0")
        for i in range(n))


def run(policies: int = 1000, **_opts: Any) -> dict[str, Any]:
    policies = int(policies)
    with Lab("bprg") as lab:
        r1, peer = lab.ns("r1"), lab.ns("p")
        lab.link(r1, peer, "eth0", "eth0", ["fd00::1/64"], ["fd00::2/64"])
        r1.enable_forwarding(srv6=True)
        prog = NetlinkProgrammer("r1", netns=r1.name)
        try:
            a, b = _state(policies, 0), _state(policies, 1)
            prog.load(a)
            t0 = time.perf_counter()
            res = prog.commit()
            program_s = time.perf_counter() - t0
            assert not res.failed, res.error
            readback_ok = prog.read_actual() == a
            t0 = time.perf_counter()
            noop = prog.commit()
            noop_s = time.perf_counter() - t0
            prog.load(b)
            t0 = time.perf_counter()
            rep = prog.commit()
            replace_s = time.perf_counter() - t0
            prog.load(NodeState())
            t0 = time.perf_counter()
            prog.commit()
            remove_s = time.perf_counter() - t0
        finally:
            prog.close()
    return {"bench": "program", "policies": policies, "program_s": round(program_s, 3),
            "goal_s": 2.0, "ok": program_s <= 2.0 and readback_ok,
            "readback_ok": readback_ok, "reconcile_noop_s": round(noop_s, 3),
            "noop_changes": noop.ops, "replace_all_s": round(replace_s, 3),
            "replaced": rep.ops, "remove_all_s": round(remove_s, 3)}
