"""Intent status over NETCONF (ncclient against the real SSH server): the state subtree
and the ``intent-status-changed`` notification; every emitted leaf is in cpn.yang."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from controller.netconf.xmlmap import Q
from srv6.intents.models import IntentState, PathView, SrPolicyIntentStatus
from srv6.intents.netconf import status_changed, status_xml
from tests.controller.test_netconf_server import Controller
from tests.controller.test_yang import _paths, schema_paths

ST = SrPolicyIntentStatus(
    intent="HUB-GZ~20~HUB-HK", state=IntentState.DEGRADED, reason="HUB-SZ refused",
    device="HUB-SZ", fix="check HUB-SZ", generation=2, observed_generation=2,
    prefixes=["10.9.0.0/24"],
    active=PathView(hops=["HUB-GZ", "HUB-HK"], links=["HUB-GZ~HUB-HK"],
                    segments=["fc00:0:3::100"], delay_ms=2.5),
    backup=PathView(hops=["HUB-GZ", "HUB-SZ", "HUB-HK"], segments=["fc00:0:2::1",
                                                                   "fc00:0:3::100"]))


def test_emitted_status_and_notification_are_in_the_schema() -> None:
    emitted = _paths(status_xml([ST]), "/cpn/state") | _paths(status_changed(ST))
    assert "/cpn/state/sr-policy-intent-status/intent/active/segments" in emitted
    missing = emitted - schema_paths()
    assert not missing, f"emitted but not in cpn.yang: {sorted(missing)}"


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    c = Controller(tmp_path_factory.mktemp("netconf-intents"))
    try:
        yield c
    finally:
        c.close()


def test_status_in_state_and_notified_on_change(ctl: Controller) -> None:
    with ctl.nc() as m:
        m.create_subscription()
        with ctl.rt.store.transaction("srv6-intents", "status") as txn:
            txn.put(ST)
        body = None
        deadline = time.monotonic() + 10
        while body is None and time.monotonic() < deadline:
            n = m.take_notification(timeout=5)
            if n is not None:
                body = ET.fromstring(n.notification_xml).find(f".//{Q}intent-status-changed")
        assert body is not None
        assert body.findtext(Q + "intent") == "HUB-GZ~20~HUB-HK"
        assert body.findtext(Q + "state") == "degraded"
        assert body.findtext(Q + "device") == "HUB-SZ"
        assert [s.text for s in body.findall(Q + "segments")] == ["fc00:0:3::100"]
        flt = ('<cpn xmlns="urn:cpn:yang:cpn"><state><sr-policy-intent-status/></state>'
               '</cpn>')
        got = ET.fromstring(m.get(filter=("subtree", flt)).data_xml)
        [intent] = got.iter(Q + "intent")
        assert intent.findtext(Q + "color") == "20"
        assert intent.findtext(Q + "state") == "degraded"
        assert intent.findtext(Q + "fix") == "check HUB-SZ"
        assert [h.text for h in intent.find(Q + "backup").findall(Q + "hops")] == [  # type: ignore[union-attr]
            "HUB-GZ", "HUB-SZ", "HUB-HK"]
