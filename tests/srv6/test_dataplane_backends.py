"""The ``dataplane`` config section: which programmer owns each node; a ``bgp-sr-policy``
node built from config peers with GoBGP; ``cpn sr-policy-peer`` reports the session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli.main import app
from controller.config import parse_config
from controller.errors import ValidationError
from labs.gobgp import GoBgp
from labs.netns import Lab
from srv6.dataplane.backends import BgpSrPolicyNode, DataplaneSection, NetlinkNode, build
from srv6.dataplane.bgp_srpolicy import BgpSrPolicyProgrammer
from tests.conftest import needs_netns

GOOD = """
dataplane:
  nodes:
    R1: {programmer: netlink, netns: r1}
    R9:
      programmer: bgp-sr-policy
      peer: 192.0.2.9
      peer_as: 65000
      local_as: 65001
      router_id: 192.0.2.1
      families: [ipv6]
"""


def test_nodes_pick_their_programmer() -> None:
    cfg = parse_config(GOOD)
    section = cfg.sections["dataplane"]
    assert isinstance(section, DataplaneSection)
    assert isinstance(section.nodes["R1"], NetlinkNode)
    r9 = section.nodes["R9"]
    assert isinstance(r9, BgpSrPolicyNode)
    assert (str(r9.peer), r9.peer_as, r9.local_as, r9.port, r9.families) == \
        ("192.0.2.9", 65000, 65001, 179, ["ipv6"])


@pytest.mark.parametrize(("change", "where"), [
    ("peer_as: 65000", "peer_as: 0"),
    ("router_id: 192.0.2.1", "router_id: fc00::1"),
    ("families: [ipv6]", "families: [ipv5]"),
    ("programmer: bgp-sr-policy", "programmer: bgp-sr-polcy"),
    ("local_as: 65001", "local_as: 65001\n      hold_time: 2"),
])
def test_bad_node_is_refused_naming_node_and_field(change: str, where: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_config(GOOD.replace(change, where))
    assert "dataplane.nodes.R9" in str(exc.value)


@needs_netns
@pytest.mark.lab
def test_bgp_node_from_config_peers_and_cli_reports_it(tmp_path: Path) -> None:
    with Lab("srcf") as lab:
        ns = lab.ns("rtr")
        GoBgp(ns, tmp_path, 65000, "192.0.2.254",
              {"127.0.0.1": (65001, ("ipv6-srpolicy",))}).start()
        text = (GOOD.replace("peer: 192.0.2.9", "peer: 127.0.0.1")
                + f"      netns: {ns.name}\n      hold_time: 9\n")
        section = parse_config(text).sections["dataplane"]
        assert isinstance(section, DataplaneSection)
        prog = build("R9", section.nodes["R9"])
        try:
            assert isinstance(prog, BgpSrPolicyProgrammer)
            st = prog.status()
            assert st["established"] and st["peer_router_id"] == "192.0.2.254"
            assert st["families"] == ["ipv6-srpolicy"] and st["hold_time"] == 9
        finally:
            prog.close()
        cfg = tmp_path / "site.yaml"
        cfg.write_text(text)
        res = CliRunner().invoke(app, ["sr-policy-peer", "--config", str(cfg), "--node", "R9"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["established"] and out["peer_as"] == 65000
        bad = CliRunner().invoke(app, ["sr-policy-peer", "--config", str(cfg), "--node", "R1"])
        assert bad.exit_code != 0 and "not a bgp-sr-policy node" in bad.output
