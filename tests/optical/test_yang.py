"""The device YANG module: lints with pyang --strict; our own instance data (what the
lab pushes, what agents write, what the controller provisions) validates with yangson;
broken data is rejected with the path named."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labs.optical.fixture import ne_config, ring_fibers
from optical.codec import render_base, render_edit, render_state
from optical.models import Alarm, NeEdit, NeState, OchXc, Odu

YANG_DIR = Path(__file__).resolve().parents[2] / "optical" / "yang"


def test_pyang_strict_lint() -> None:
    res = subprocess.run([sys.executable, "-m", "pyang", "--strict",
                          str(YANG_DIR / "cpn-optical-device.yang")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _instance(*xml: str) -> object:
    from yangson import DataModel  # type: ignore[import-untyped]
    from yangson.enumerations import ContentType  # type: ignore[import-untyped]
    dm = DataModel((YANG_DIR / "yang-library.json").read_text(), [str(YANG_DIR)])
    data = ET.Element("data")
    merged: dict[str, ET.Element] = {}
    for doc in xml:
        for top in ET.fromstring(doc):
            if top.tag in merged:
                merged[top.tag].extend(list(top))
            else:
                merged[top.tag] = top
                data.append(top)
    inst = dm.from_xml(data)
    inst.validate(ctype=ContentType.all)
    return inst


def test_lab_config_state_and_provisioned_edit_validate() -> None:
    base = render_base(ne_config("ne0", ring_fibers(6)))
    edit = render_edit(NeEdit(
        xcs=(OchXc("p1", "p1", 5, "rate-400G", a_port="p1", z_degree=1),),
        odus=(Odu("p1", "p1", "ODU4", "p1", tuple(range(1, 81))),)))
    edit = edit.replace(' xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"', "")
    state = render_state(NeState({"f0-1": "down"}, {"p1": "up"}, {"omsp-f0-1": "protect"},
                                 {"omsp-f0-1": 1}, (Alarm("ne0", "los-f0-1", "los", "f0-1"),)),
                         replace=False)
    inst = _instance(base, edit, state)
    assert "cpn-optical-device:ne-state" in inst.value  # type: ignore[attr-defined]


def test_dangling_degree_reference_is_rejected() -> None:
    from yangson.exceptions import YangsonException  # type: ignore[import-untyped]
    base = render_base(ne_config("ne0", ring_fibers(6)))
    bad = render_edit(NeEdit(xcs=(OchXc("p1", "p1", 5, a_port="p1", z_degree=31),)))
    bad = bad.replace(' xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"', "")
    with pytest.raises(YangsonException, match="z-degree|instance-required|31"):
        _instance(base, bad)


def test_channel_out_of_plan_is_rejected() -> None:
    from yangson.exceptions import YangsonException  # type: ignore[import-untyped]
    base = render_base(ne_config("ne0", ring_fibers(6)))
    bad = render_edit(NeEdit(xcs=(OchXc("p1", "p1", 97, a_port="p1", z_degree=1),)))
    bad = bad.replace(' xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"', "")
    with pytest.raises((YangsonException, ValueError)):
        _instance(base, bad)
