"""Bench: controller-side make-before-break policy switch (goal ≤ 5 ms).

What is measured (issue 4): the five-router namespace lab (``labs.srv6lab``),
one ``NetlinkProgrammer`` per router held by the controller; the policy r1→r5 is moved
``rounds`` times between path A (r2 r3 r5) and path B (r4 r5) with ``mbb.switch``:
read every node, plan, add new SIDs, read them back, one atomic replace on the headend,
remove the old SIDs. Reported: median / p90 / max of the whole switch (``switch_ms``)
and of the headend replace step alone (``replace_ms``); every round must end ``ok``
with the kernel equal to the target.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from labs.netns import Lab
from labs.srv6lab import PATH_A, PATH_B, ROUTERS, build, desired
from srv6.dataplane import mbb
from srv6.dataplane.netlink import NetlinkProgrammer
from srv6.dataplane.programmer import PolicyProgrammer


def run(rounds: int = 50, **_opts: Any) -> dict[str, Any]:
    rounds = int(rounds)
    with Lab("bsw") as lab:
        sr = build(lab)
        progs: dict[str, PolicyProgrammer] = {
            r: NetlinkProgrammer(r, netns=sr.ns[r].name) for r in ROUTERS}
        try:
            for n, st in desired(PATH_A).items():
                progs[n].load(st)
                progs[n].commit()
            targets = [desired(PATH_B), desired(PATH_A)]
            total, replace, ok = [], [], True
            for i in range(rounds):
                t0 = time.perf_counter()
                rep = mbb.switch(progs, targets[i % 2], "r1")
                total.append((time.perf_counter() - t0) * 1e3)
                replace.append(rep.switch_ms)
                ok = ok and rep.ok
            final_ok = all(progs[n].read_actual() == st
                           for n, st in targets[(rounds - 1) % 2].items())
        finally:
            for p in progs.values():
                p.close()
    total.sort()
    med = statistics.median(total)
    return {"bench": "switch", "rounds": rounds, "switch_ms_median": round(med, 3),
            "switch_ms_p90": round(total[int(0.9 * (len(total) - 1))], 3),
            "switch_ms_max": round(total[-1], 3),
            "replace_ms_median": round(statistics.median(replace), 3), "goal_ms": 5.0,
            "ok": ok and final_ok and med <= 5.0, "all_rounds_ok": ok,
            "final_state_ok": final_ok}
