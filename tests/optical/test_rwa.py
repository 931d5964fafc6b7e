"""Pure RWA: continuity, first-fit, OSNR reach, SRLG-disjoint 1+1, grooming, GBA-5.2."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from labs.bench.rwa import mesh, pair
from optical.models import Fiber, Lightpath, Rate
from optical.rwa import (
    Network,
    OsnrModel,
    Request,
    RwaStatus,
    commit,
    k_shortest,
    osnr_db,
    plan,
    plan_batch,
)

RING = [Fiber("ab", "a", "b", 50, srlgs=("d1",)), Fiber("bc", "b", "c", 50, srlgs=("d2",)),
        Fiber("cd", "c", "d", 50, srlgs=("d3",)), Fiber("da", "d", "a", 60, srlgs=("d4",))]


def test_k_shortest_gives_both_ring_directions_in_length_order() -> None:
    routes = k_shortest(Network.build(RING), "a", "c", k=3)
    assert [r[1] for r in routes] == [["ab", "bc"], ["da", "cd"]]


def test_first_fit_keeps_one_channel_end_to_end() -> None:
    net = Network.build(RING, [Lightpath("x", ("b", "c"), ("bc",), 1)])
    p = plan(net, Request("r", "a", "c"))
    assert p.status is RwaStatus.OK and p.working is not None
    assert p.working.channel == 2  # 1 is taken on bc, so 2 is the first free on ab+bc


def test_full_fiber_moves_to_next_route_then_no_wavelength() -> None:
    full = [Lightpath(f"x{c}", ("b", "c"), ("bc",), c) for c in range(1, 97)]
    net = Network.build(RING, full)
    p = plan(net, Request("r", "a", "c"))
    assert p.working is not None and p.working.fibers == ("da", "cd")
    full2 = [Lightpath(f"y{c}", ("d", "c"), ("cd",), c) for c in range(1, 97)]
    p2 = plan(Network.build(RING, full + full2), Request("r", "a", "c"))
    assert p2.status is RwaStatus.NO_WAVELENGTH


def test_osnr_reach_depends_on_rate_and_margin() -> None:
    long = [Fiber("l", "a", "b", 3000)]
    assert plan(Network.build(long), Request("r", "a", "b", Rate.G100)).status is RwaStatus.OK
    assert plan(Network.build(long), Request("r", "a", "b", Rate.G800)).status is RwaStatus.OSNR
    tight = OsnrModel(margin_db=15)
    assert plan(Network.build(long), Request("r", "a", "b"), model=tight).status is RwaStatus.OSNR


def test_osnr_adds_linear_noise_of_spans() -> None:
    f = Fiber("f", "a", "b", 80)
    one = osnr_db([f], 0, OsnrModel(roadm_osnr_db=200))
    two = osnr_db([f, f], 0, OsnrModel(roadm_osnr_db=200))
    assert abs((one - two) - 3.0103) < 0.01  # two equal spans = half the OSNR


def test_protect_route_is_srlg_disjoint() -> None:
    fibers = [*RING, Fiber("ac", "a", "c", 70, srlgs=("d1",))]  # shares duct with ab
    p = plan(Network.build(fibers), Request("r", "a", "c", protect=True))
    assert p.status is RwaStatus.OK and p.working and p.protect
    w = {s for f in p.working.fibers for s in Network.build(fibers).fibers[f].srlgs}
    pr = {s for f in p.protect.fibers for s in Network.build(fibers).fibers[f].srlgs}
    assert not w & pr


def test_otn_grooming_uses_free_slots_before_new_wavelength() -> None:
    net = Network.build(RING)
    first = plan(net, Request("o1", "a", "c", odu_type="ODU2"))
    assert first.status is RwaStatus.OK and first.odu is not None
    commit(net, first)
    second = plan(net, Request("o2", "a", "c", odu_type="ODU2"))
    assert second.status is RwaStatus.GROOMED and second.odu is not None
    assert second.odu.och == "o1" and set(second.odu.slots).isdisjoint(first.odu.slots)
    commit(net, second)
    big = plan(net, Request("o3", "a", "c", odu_type="ODU4"))  # 80 TS do not fit
    assert big.status is RwaStatus.OK and big.working is not None and big.working.id == "o3"


def test_hub_requests_are_planned_first() -> None:
    one = [Fiber("ab", "a", "b", 10)]
    net = Network.build(one, [Lightpath(f"x{c}", ("a", "b"), ("ab",), c) for c in range(1, 96)])
    plans = plan_batch(net, [Request("edge", "a", "b"), Request("hub", "a", "b", hub=True)])
    by = {p.request.id: p.status for p in plans}
    assert by == {"hub": RwaStatus.OK, "edge": RwaStatus.NO_WAVELENGTH}


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 150))
def test_plans_never_reuse_a_channel_on_a_fiber(seed: int, n: int) -> None:
    import random
    rnd = random.Random(seed)
    net = Network.build(mesh(20, seed))
    names = sorted({f.a for f in net.fibers.values()})
    reqs = [Request(f"r{i}", *pair(rnd, names), protect=i % 5 == 0) for i in range(n)]
    plan_batch(net, reqs)
    seen: set[tuple[str, int]] = set()
    for lp in net.lightpaths.values():
        assert len(lp.fibers) == len(lp.nodes) - 1
        for f in lp.fibers:
            assert (f, lp.channel) not in seen
            seen.add((f, lp.channel))
