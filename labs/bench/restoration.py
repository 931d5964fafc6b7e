"""Bench ``restoration``: fiber cut → unprotected path restored on a new route.

Lab: 6 netconfd NEs + behaviour agents. A path ne1→ne3 is provisioned; each round cuts
a fiber of its current route (LOS in the NEs → netconf-config-change notification →
controller re-reads, re-plans, provisions the new route with confirmed commit). Time =
from the cut command to the path active on the new route. Goal (issue 7): ≤ 3 s.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from labs.optical.fixture import OpticalLab
from optical.models import PathState
from optical.rwa import Request
from optical.service import OpticalController


def run(rounds: int = 3, **_: Any) -> dict[str, Any]:
    with OpticalLab(6) as lab:
        async def go() -> tuple[list[float], list[str]]:
            ctl = OpticalController(lab.devices())
            await ctl.start()
            times, cuts = [], []
            try:
                path = await ctl.create_path(Request("bench", "ne1", "ne3"))
                for _ in range(rounds):
                    fiber = next(f for f in path.working.fibers if f != "f0-1")
                    t = time.perf_counter()
                    await asyncio.to_thread(lab.cut, fiber)
                    def restored(f: str = fiber) -> bool:
                        return path.state is PathState.ACTIVE and f not in path.working.fibers
                    ok = await ctl.wait_for(restored, 15)
                    if not ok:
                        raise RuntimeError(f"not restored after cutting {fiber}: "
                                           f"{path.history[-3:]}")
                    times.append(time.perf_counter() - t)
                    cuts.append(fiber)
                    await asyncio.to_thread(lab.repair, fiber)
            finally:
                await ctl.stop()
            return times, cuts
        times, cuts = asyncio.run(go())
    return {"bench": "restoration", "rounds": len(times), "cut": cuts,
            "mean_s": round(statistics.fmean(times), 3), "max_s": round(max(times), 3),
            "goal_s": 3.0, "goal_met": max(times) <= 3.0}
