"""Each built-in policy plug-in (GBA-6.5f, WP-3.3.3, GBA-5.2) with its own test."""

from __future__ import annotations

from controller.models import InterconnectKind, Link, SiteKind
from scheduler.framework import Code, Framework
from scheduler.models import Task
from scheduler.plugins.network import interconnect_rank
from scheduler.plugins.preemption import minimal_victims
from scheduler.profiles import ProfileConfig, build_profile
from tests.scheduler.helpers import node, snap

BASE = ["node-resources-fit", "resources", "default-binder"]


def fw(*plugins: str, weights: dict[str, float] | None = None,
       args: dict[str, dict[str, object]] | None = None) -> Framework:
    refs: list[object] = []
    for p in [*plugins, *BASE]:
        refs.append({"name": p, "args": (args or {}).get(p, {})})
    cfg = ProfileConfig.model_validate({"plugins": refs, "weights": weights or {}})
    return Framework(build_profile("t", cfg))


def test_manual_pins_site_and_rejects_unknown() -> None:
    s = snap([node("a"), node("b")])
    assert fw("manual").schedule(Task("j", requests={"cpu": 1}, site="b"), s).site == "b"
    d = fw("manual").schedule(Task("k", requests={"cpu": 1}, site="zz"), s)
    assert d.code == Code.UNRESOLVABLE.value and "zz" in d.reasons[0]


def test_load_aware_prefers_high_l2() -> None:
    s = snap([node("a", l2=2.0), node("b", l2=9.0)])
    assert fw("load-aware").schedule(Task("j", requests={"cpu": 1}), s).site == "b"


def test_energy_and_price_aware() -> None:
    s = snap([node("a", energy_w=400, price_per_hour=0.5),
              node("b", energy_w=100, price_per_hour=3.0)])
    assert fw("energy-aware").schedule(Task("e", requests={"cpu": 1}), s).site == "b"
    assert fw("price-aware").schedule(Task("p", requests={"cpu": 1}), s).site == "a"


def test_least_loaded_and_prefer_awake() -> None:
    a, b = node("a"), node("b", awake=False)
    a.used = {"cpu": 8.0}
    s = snap([a, b])
    assert fw("least-loaded").schedule(Task("j", requests={"cpu": 1}), s).site == "b"
    assert fw("prefer-awake").schedule(Task("k", requests={"cpu": 1}), s).site == "a"


def links() -> list[Link]:
    return [Link(a="o", b="a", delay_ms=5, kind=InterconnectKind.INTERNET,
                 available_mbps=50, capacity_mbps=100),
            Link(a="o", b="b", delay_ms=30, jitter_ms=5, loss_pct=1.0,
                 kind=InterconnectKind.IP_PRIVATE)]


def test_network_aware_delay_bound_bandwidth_and_score() -> None:
    s = snap([node("a"), node("b")], links())
    assert fw("network-aware").schedule(Task("j", origin="o", requests={"cpu": 1}), s).site \
        == "a"
    # needs 80 Mbit/s: a's path has only 50
    d = fw("network-aware").schedule(
        Task("bw", origin="o", requests={"cpu": 1, "bandwidth": 80}), s)
    assert d.site == "b"
    d = fw("network-aware").schedule(
        Task("far", origin="o", requests={"cpu": 1, "bandwidth": 80}, max_latency_ms=10), s)
    assert not d.ok and any("max_latency_ms" in r or "bandwidth" in r for r in d.reasons)


def test_qos_first_joint_path_and_compute() -> None:
    s = snap([node("a", l2=1.0), node("b", l2=10.0)], links())
    # b is 25 ms further but its compute score is much better
    assert fw("qos-first").schedule(Task("j", origin="o", requests={"cpu": 1},
                                         max_latency_ms=100), s).site == "b"


def test_sla_filters_missed_targets() -> None:
    s = snap([node("a"), node("b")], links())
    d = fw("sla").schedule(Task("j", origin="o", requests={"cpu": 1}, sla_ms=10), s)
    assert d.site == "a"
    d = fw("sla").schedule(Task("k", origin="o", requests={"cpu": 1}, sla_ms=1), s)
    assert d.code == Code.UNRESOLVABLE.value


def test_interconnect_priority_gba_5_2() -> None:
    assert interconnect_rank(SiteKind.HUB, "otn") == 0
    assert interconnect_rank(SiteKind.HUB, "ip-private") == 1
    assert interconnect_rank(SiteKind.MEC, "ip-private") == 0
    assert interconnect_rank(SiteKind.MEC, "otn,internet") == 2
    s = snap([node("a"), node("b")], links())
    assert fw("interconnect").schedule(Task("j", origin="o", requests={"cpu": 1}), s).site \
        == "b"  # a is reached over the Internet


def test_data_aware_big_private_small() -> None:
    ls = [Link(a="a", b="b", delay_ms=2, capacity_mbps=1000)]
    a, b = node("a"), node("b")
    a.used = {"cpu": 10.0}  # a more loaded: least-loaded would pick b
    s = snap([a, b], ls)
    prof = ("data-aware", "least-loaded")
    big = Task("big", requests={"cpu": 1}, data_site="a", data_gib=500)
    assert fw(*prof, weights={"data-aware": 5}).schedule(big, s).site == "a"
    small = Task("small", requests={"cpu": 1}, data_site="a", data_gib=1)
    assert fw(*prof, weights={"data-aware": 5}).schedule(small, s).site == "b"
    a.used = {"cpu": 16.0}
    priv = Task("priv", requests={"cpu": 1}, data_site="a", data_private=True)
    d = fw(*prof).schedule(priv, s)
    assert not d.ok  # private data never leaves a, and a is full


def test_compute_affinity() -> None:
    s = snap([node("a", capacity={"cpu": 8, "gpu": 4}),
              node("b", capacity={"cpu": 8, "npu": 4})])
    assert fw("compute-affinity").schedule(Task("t", kind="tensor", requests={"cpu": 1}),
                                           s).site == "b"
    assert fw("compute-affinity").schedule(Task("i", kind="image", requests={"cpu": 1}),
                                           s).site == "a"
    d = fw("compute-affinity", args={"compute-affinity": {"required": True}}).schedule(
        Task("x", kind="tensor", requests={"cpu": 1}),
        snap([node("c", capacity={"cpu": 8, "gpu": 1})]))
    assert d.code == Code.UNRESOLVABLE.value


def test_anti_affinity_node_and_site_scope() -> None:
    s = snap([node("a"), node("b")])
    d = fw("anti-affinity").schedule(Task("g", requests={"cpu": 1}, group="web",
                                          replicas=2), s)
    assert d.ok and len(set(d.nodes)) == 2
    d = fw("anti-affinity").schedule(Task("g2", requests={"cpu": 1}, group="web"), s)
    assert not d.ok and "group web" in " ".join(d.reasons)
    s2 = snap([node("a", "n1"), node("a", "n2"), node("b")])
    d = fw("anti-affinity", args={"anti-affinity": {"scope": "site"}}).schedule(
        Task("h", requests={"cpu": 1}, group="db", replicas=3), s2)
    assert not d.ok  # only two sites


def test_extended_and_gpu_resources() -> None:
    s = snap([node("a", capacity={"cpu": 8, "fpga-u250": 2})])
    assert fw().schedule(Task("f", requests={"fpga-u250": 2}), s).ok
    d = fw().schedule(Task("g", requests={"gpu": 1}), s)
    assert d.code == Code.UNRESOLVABLE.value and "no node has any gpu" in " ".join(d.reasons)
    s2 = snap([node("b", capacity={"cpu": 8, "gpu": 2}), node("c", capacity={"cpu": 8})])
    d = fw().schedule(Task("g4", requests={"gpu": 4}), s2)
    assert d.code == Code.UNRESOLVABLE.value and "capacity gpu < 4" in " ".join(d.reasons)
    assert d.reasons[0] == "0/2 nodes available"


def test_preemption_minimal_victims() -> None:
    n = node("a", capacity={"cpu": 10})
    n.add("low1", 10, {"cpu": 2}, None)
    n.add("low2", 20, {"cpu": 6}, None)
    n.add("mid", 50, {"cpu": 2}, None)
    hi = Task("hi", priority=500, requests={"cpu": 6})
    assert minimal_victims(n, hi) == ["low2"]  # one victim suffices
    d = fw("preemption").schedule(hi, snap([n]))
    assert d.ok and d.victims == ("low2",)
    assert "low1" in n.tasks and "mid" in n.tasks and "low2" not in n.tasks
    d = fw("preemption").schedule(Task("lo", priority=5, requests={"cpu": 4}), snap([n]))
    assert not d.ok  # nobody of lower priority


def test_preemption_is_undone_when_a_later_replica_fails() -> None:
    # replica 1 of "hi" preempts "low" on a; replica 2 fits nowhere: the task fails,
    # names no victims, and "low" is back on a exactly as before (requests and end)
    a, b = node("a", capacity={"cpu": 10}), node("b", capacity={"cpu": 10})
    a.add("low", 10, {"cpu": 8}, None)
    a.ends["low"] = 900.0
    b.add("peer", 900, {"cpu": 8}, None)
    before = (dict(a.used), dict(a.tasks), dict(a.ends))
    d = fw("preemption").schedule(Task("hi", priority=500, requests={"cpu": 6},
                                       replicas=2), snap([a, b]))
    assert not d.ok and d.victims == ()
    assert (a.used, a.tasks, a.ends) == before
    assert "hi" not in a.tasks and "hi" not in b.tasks


def test_reservation_and_backfill() -> None:
    n = node("a", capacity={"cpu": 10})
    n.add("r1", 100, {"cpu": 6}, None)
    n.ends["r1"] = 1000.0
    s = snap([n], now=0.0)
    f = fw("reservation")
    big = Task("big", requests={"cpu": 8})
    assert not f.schedule(big, s).ok
    assert s.reservations["a/n0"] == ("big", 1000.0)
    short = Task("short", requests={"cpu": 2}, runtime_s=500)
    assert f.schedule(short, s).ok  # backfill: ends before the big job may start
    n.remove("short", {"cpu": 2}, None)
    long = Task("long", requests={"cpu": 2}, runtime_s=5000)
    d = f.schedule(long, s)
    assert not d.ok and "reserved for big" in " ".join(d.reasons)
    n.remove("r1", {"cpu": 6}, None)
    assert f.schedule(big, s).ok and not s.reservations


def test_cloud_bursting_only_when_local_full() -> None:
    local = node("dc", capacity={"cpu": 2})
    cloud = node("aws", kind=SiteKind.CLOUD, capacity={"cpu": 100})
    s = snap([local, cloud])
    f = fw("cloud-bursting", "least-loaded", weights={"cloud-bursting": 10})
    assert f.schedule(Task("a", requests={"cpu": 2}), s).site == "dc"
    assert f.schedule(Task("b", requests={"cpu": 2}), s).site == "aws"
    d = fw("cloud-bursting", args={"cloud-bursting": {"allow": False}}).schedule(
        Task("c", requests={"cpu": 2}), s)
    assert not d.ok
