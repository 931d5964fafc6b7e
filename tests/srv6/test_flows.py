"""``srv6.flows.decide``: the pure decision of the flow-steering loop (GBA-App.B,
RFC 10053 instance affinity), and the ``flows:`` config section."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controller.models import ComputeMetrics, Service
from srv6.flows import FlowsSection, decide


def _svc(affinity: str = "migrate-on-overload") -> Service:
    return Service.model_validate({
        "name": "video", "anycast": ["198.51.100.10"], "port": 5004, "affinity": affinity,
        "instances": [{"site": "MEC-1", "address": "10.0.1.10"},
                      {"site": "MEC-2", "address": "10.0.2.10"}]})


def _m(site: str, util: float, overloaded: bool = False, available: bool = True
       ) -> ComputeMetrics:
    return ComputeMetrics(site=site, service="video", l0={"cpu_util_pct": util},
                          l2=10 * (1 - util / 100), overloaded=overloaded,
                          available=available)


def _decide(svc: Service, current: str | None, metrics: list[ComputeMetrics],
            steer: bool = True) -> Any:
    return decide(svc, current, steer=steer, client_node=None, sites=[], routers=[],
                  links=[], metrics=metrics, reachable=["MEC-1", "MEC-2"])


def test_initial_placement_takes_the_best_eligible_instance() -> None:
    d = _decide(_svc(), None, [_m("MEC-1", 95, overloaded=True), _m("MEC-2", 10)])
    assert (d.site, d.move) == ("MEC-2", False)
    assert d.inputs["metrics"]["MEC-1"]["overloaded"] is True


def test_stays_while_eligible_even_if_another_scores_better() -> None:
    d = _decide(_svc(), "MEC-1", [_m("MEC-1", 50), _m("MEC-2", 5)])
    assert (d.site, d.move) == ("MEC-1", False)


def test_migrate_on_overload_moves_to_the_other_instance() -> None:
    d = _decide(_svc(), "MEC-1", [_m("MEC-1", 92, overloaded=True), _m("MEC-2", 20)])
    assert (d.site, d.move, d.address) == ("MEC-2", True, "10.0.2.10")
    assert "MEC-1 ineligible" in d.reason
    assert d.inputs["ranking"][0]["site"] == "MEC-2"


def test_sticky_keeps_an_overloaded_instance_but_leaves_a_dead_one() -> None:
    sticky = _svc("sticky")
    d = _decide(sticky, "MEC-1", [_m("MEC-1", 92, overloaded=True), _m("MEC-2", 20)])
    assert (d.site, d.move) == ("MEC-1", False) and "sticky" in d.reason
    d = _decide(sticky, "MEC-1", [_m("MEC-1", 0, available=False), _m("MEC-2", 20)])
    assert (d.site, d.move) == ("MEC-2", True)


def test_steering_disabled_never_moves() -> None:
    d = _decide(_svc(), "MEC-1", [_m("MEC-1", 99, overloaded=True), _m("MEC-2", 1)],
                steer=False)
    assert (d.site, d.move) == ("MEC-1", False) and "disabled" in d.reason


def test_no_other_eligible_instance_keeps_the_flow() -> None:
    d = _decide(_svc(), "MEC-1", [_m("MEC-1", 99, overloaded=True),
                                  _m("MEC-2", 99, overloaded=True)])
    assert (d.site, d.move) == ("MEC-1", False)


def test_flows_section_needs_a_headend_when_enabled() -> None:
    assert FlowsSection().enabled is False
    with pytest.raises(ValidationError, match="headend"):
        FlowsSection.model_validate({"enabled": True})
    with pytest.raises(ValidationError):  # hand-written paths are gone: sites → routers
        FlowsSection.model_validate({"enabled": True, "headend": {"node": "R1"},
                                     "paths": {"MEC-1": {"segments": [], "dev": "eth1"}}})
    ok = FlowsSection.model_validate({"enabled": True, "headend": {"node": "R1"},
                                      "sites": {"MEC-1": "R2"}, "colors": {"video": 7}})
    assert ok.sites == {"MEC-1": "R2"}


def test_access_rules_mark_only_placed_services_and_refuse_bad_dscp() -> None:
    """The access switch's classification (flows.access): one OpenFlow rule per placed
    service anycast, matching protocol and port, marking the configured DSCP."""
    from srv6.flows import FlowController

    cfg = FlowsSection.model_validate({
        "enabled": True, "headend": {"node": "R1"},
        "sites": {"MEC-1": "R2"},
        "access": {"api": "/run/cpn-of.sock", "mark": {"video": 34}}})
    fc = FlowController(cfg)
    svc = _svc()
    assert fc.access_rules({"video": svc}) == []  # not placed yet: nothing to mark
    fc.current["video"] = "MEC-1"
    rules = fc.access_rules({"video": svc})
    assert rules == [{"priority": 200, "output": "normal", "set_dscp": 34,
                      "match": {"eth_type": 0x0800, "ipv4_dst": "198.51.100.10",
                                "ip_proto": 17, "udp_dst": 5004}}]
    with pytest.raises(ValidationError, match="DSCP 64"):
        FlowsSection.model_validate({"access": {"api": "/x", "mark": {"video": 64}}})
