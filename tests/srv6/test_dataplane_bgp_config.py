"""A reconciler node bound to ``programmer: bgp-sr-policy`` (config, validation), built from
config it peers with GoBGP over eBGP and programs a policy, and ``cpn sr-policy-peer``
reports the session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli.main import app
from controller.config import parse_config
from controller.errors import ValidationError
from labs.gobgp import GoBgp
from labs.netns import Lab, wait_for
from srv6.dataplane import NodeState
from srv6.dataplane.bgp_config import BgpPeerSpec, build_bgp
from srv6.dataplane.bgp_srpolicy import BgpSrPolicyProgrammer
from srv6.dataplane.state import SrPolicyRoute
from srv6.intents.models import IntentsSection
from tests.conftest import needs_netns

GOOD = """
intents:
  nodes:
    R1: {programmer: netlink, netns: r1}
    R9:
      programmer: bgp-sr-policy
      bgp:
        peer: 192.0.2.9
        peer_as: 65000
        local_as: 65001
        router_id: 192.0.2.1
        families: [ipv6]
"""


def section(text: str) -> IntentsSection:
    sec = parse_config(text).sections["intents"]
    assert isinstance(sec, IntentsSection)
    return sec


def test_node_bound_to_bgp_sr_policy() -> None:
    r9 = section(GOOD).nodes["R9"]
    assert r9.programmer == "bgp-sr-policy" and isinstance(r9.bgp, BgpPeerSpec)
    assert (str(r9.bgp.peer), r9.bgp.peer_as, r9.bgp.local_as, r9.bgp.port,
            r9.bgp.families, r9.bgp.hold_time) == ("192.0.2.9", 65000, 65001, 179, ["ipv6"], 90)
    assert section(GOOD).nodes["R1"].bgp is None


@pytest.mark.parametrize(("change", "where"), [
    ("peer_as: 65000", "peer_as: 0"),
    ("router_id: 192.0.2.1", "router_id: fc00::1"),
    ("families: [ipv6]", "families: [ipv5]"),
    ("local_as: 65001", "local_as: 65001\n        hold_time: 2"),
    ("programmer: bgp-sr-policy", "programmer: netlink"),  # a bgp: block without the binding
    ("      bgp:\n", "      bgpp:\n"),
])
def test_bad_binding_is_refused_naming_node_and_field(change: str, where: str) -> None:
    assert change in GOOD
    with pytest.raises(ValidationError) as exc:
        parse_config(GOOD.replace(change, where))
    assert "intents.nodes.R9" in str(exc.value)


@needs_netns
@pytest.mark.lab
def test_bgp_node_from_config_peers_and_cli_reports_it(tmp_path: Path) -> None:
    with Lab("srcf") as lab:
        ns = lab.ns("rtr")
        gobgp = GoBgp(ns, tmp_path, 65000, "192.0.2.254",
                      {"127.0.0.1": (65001, ("ipv6-srpolicy",))}).start()
        text = (GOOD.replace("peer: 192.0.2.9", "peer: 127.0.0.1")
                + f"        netns: {ns.name}\n        hold_time: 9\n")
        spec = section(text).nodes["R9"].bgp
        assert spec is not None
        prog = build_bgp("R9", spec)
        try:
            assert isinstance(prog, BgpSrPolicyProgrammer)
            st = prog.status()
            assert st["established"] and st["peer_router_id"] == "192.0.2.254"
            assert st["families"] == ["ipv6-srpolicy"] and st["hold_time"] == 9
            # eBGP (AS 65001 → 65000): the router takes the policy with CPN's AS in the path
            pol = SrPolicyRoute.of(7, "fc00:0:5::1", ["fc00:0:2::1", "fc00:0:5::d6"])
            prog.load(NodeState.of([pol]))
            assert not prog.commit().failed
            wait_for(lambda: [p.key for p in gobgp.policies("127.0.0.1")] == [pol.key], 5,
                     "GoBGP to take the policy over eBGP")
            assert not gobgp.policies("127.0.0.1")[0].mismatches(pol)
        finally:
            prog.close()
        cfg = tmp_path / "site.yaml"
        cfg.write_text(text)
        res = CliRunner().invoke(app, ["sr-policy-peer", "--config", str(cfg), "--node", "R9"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["established"] and out["peer_as"] == 65000
        bad = CliRunner().invoke(app, ["sr-policy-peer", "--config", str(cfg), "--node", "R1"])
        assert bad.exit_code != 0 and "not bound to" in bad.output
