"""NETCONF for SR policy intents, slices, SD-WAN and scheduling policy (config) and SR
policy / optical path / alarm state — ncclient against the real SSH server, plus the
pure scheduler mapping. Requirement refs: GBA-6.4.3e (SD-WAN), GBA-6.4.3f (slices),
WP-3.3.1 (scheduler profiles)."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from ipaddress import IPv6Address
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ncclient.operations import RPCError

from controller.config import apply_config, load_config
from controller.netconf.datastore import Datastores, RpcError
from controller.netconf.xmlmap import Q
from controller.store import SqliteStore
from labs.optical.fixture import ne_config, ring_fibers
from optical.component import OpticalComponent
from optical.config import OpticalSection
from optical.device import FakeDevice
from optical.models import Alarm, NeState
from optical.rwa import Request
from optical.service import OpticalController
from scheduler import netconf as schedmap
from scheduler.profiles import SchedulerConfig
from scheduler.settings import SchedulerSettings
from srv6.models import (
    CandidatePath,
    Originator,
    ProtocolOrigin,
    SegmentList,
    Slice,
    SrPolicy,
    SrPolicyIntent,
)
from srv6.sdwan import SdwanPolicy
from tests.conftest import ROOT
from tests.controller.test_netconf_server import EDIT, Controller

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def cfg(body: str) -> str:
    return (f'<config xmlns="{NC}" xmlns:nc="{NC}"><cpn xmlns="urn:cpn:yang:cpn">{body}'
            "</cpn></config>")


INTENT = ("<sr-policy-intents><intent><headend>{h}</headend><color>{c}</color>"
          "<endpoint>{e}</endpoint>{extra}</intent></sr-policy-intents>")
SLICE = ("<slices><slice><name>{n}</name><color>{c}</color>"
         "<guaranteed-mbps>{g}</guaranteed-mbps><max-delay-ms>10</max-delay-ms>"
         "<flows><headend>MEC-GZ1</headend><endpoint>MEC-SZ1</endpoint></flows>"
         "</slice></slices>")


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    c = Controller(tmp_path_factory.mktemp("netconf-policy"))  # gba.yaml: sites' locators
    try:
        yield c
    finally:
        c.close()


def journal(ctl: Controller, kind: str, key: str) -> dict[str, Any]:
    ev = ctl.rest(f"/api/v1/events?kind={kind}&key={key}&newest_first=true&limit=1")
    return dict(ev["items"][0])


def test_intent_and_slice_commit_to_the_store_journaled(ctl: Controller) -> None:
    intent = INTENT.format(h="HUB-GZ", c=20, e="HUB-HK", extra=(
        "<constraints><max-delay-ms>8</max-delay-ms><exclude-nodes>HUB-SZ</exclude-nodes>"
        "<metric>delay</metric></constraints><name>gz-hk-gold</name><slice>gold</slice>"))
    sdwan = ("<sdwan-policies><policy><name>video</name><match><app>rtp-video</app></match>"
             "<sla><name>rt</name><max-delay-ms>30</max-delay-ms></sla>"
             "<transports>otn</transports><transports>internet</transports>"
             "<headends>MEC-GZ1</headends><endpoint>HUB-HK</endpoint><color>300</color>"
             "</policy></sdwan-policies>")
    with ctl.nc() as m:
        m.lock("candidate")
        m.edit_config(target="candidate", config=cfg(SLICE.format(n="gold", c=20, g=1000)
                                                        + intent + sdwan))
        m.validate(source="candidate")
        assert ctl.rt.store.get(Slice, "gold") is None  # candidate only
        m.commit()
        m.unlock("candidate")
        got = m.get_config(source="running", filter=("subtree", (
            '<cpn xmlns="urn:cpn:yang:cpn"><sr-policy-intents/></cpn>'))).data_xml
    el = ET.fromstring(got).find(f".//{Q}intent/{Q}constraints/{Q}exclude-nodes")
    assert el is not None and el.text == "HUB-SZ"
    pol = ctl.rt.store.get(SrPolicyIntent, "HUB-GZ~20~HUB-HK")
    assert pol is not None and pol.slice == "gold"
    assert pol.constraints.max_delay_ms == 8 and pol.constraints.exclude_nodes == ["HUB-SZ"]
    assert pol.constraints.metric == "delay"
    sl = ctl.rt.store.get(Slice, "gold")
    assert sl is not None and sl.guaranteed_mbps == 1000 and sl.flows[0].endpoint == "MEC-SZ1"
    sd = ctl.rt.store.get(SdwanPolicy, "video")
    assert sd is not None and [t.value for t in sd.transports] == ["otn", "internet"]
    for kind, key in (("sr-policy-intent", "HUB-GZ~20~HUB-HK"), ("slice", "gold"),
                      ("sdwan-policy", "video")):
        assert journal(ctl, kind, key)["actor"] == "netconf:carol"


def _rejected(m: Any, body: str) -> Any:
    before = m.get_config(source="candidate").data_xml
    with pytest.raises(RPCError) as info:
        m.edit_config(target="candidate", config=cfg(body))
    assert m.get_config(source="candidate").data_xml == before  # candidate unchanged
    return info.value


def test_invalid_intents_and_slices_are_rejected_with_error_path(ctl: Controller) -> None:
    with ctl.nc() as m:
        err = _rejected(m, INTENT.format(h="HUB-GZ", c=7, e="NOWHERE", extra=""))
        assert (err.tag, err.app_tag) == ("data-missing", "instance-required")
        assert err.path.strip() == ("/cpn:cpn/cpn:sr-policy-intents/cpn:intent"
                                    "[cpn:headend='HUB-GZ'][cpn:color='7']"
                                    "[cpn:endpoint='NOWHERE']/cpn:endpoint")
        assert "unknown node 'NOWHERE'" in err.message
        # an intent for a slice must carry the slice's colour
        err = _rejected(m, INTENT.format(h="HUB-SZ", c=21, e="HUB-HK",
                                         extra="<slice>gold</slice>"))
        assert err.path.strip().endswith("[cpn:endpoint='HUB-HK']/cpn:color")
        assert "not slice 'gold''s colour 20" in err.message
        err = _rejected(m, INTENT.format(h="HUB-GZ", c=9, e="HUB-HK",
                                         extra="<constraints><colour>1</colour></constraints>"))
        assert err.tag == "unknown-element"
        # MEC access links carry 40 Gbit/s: a 50 Gbit/s guarantee cannot be admitted
        err = _rejected(m, SLICE.format(n="huge", c=40, g=50000))
        assert err.tag == "operation-failed"
        assert err.path.strip().startswith("/cpn:cpn/cpn:slices/cpn:slice[cpn:name='huge']")
        assert "refused" in err.message and "bandwidth" in err.message
        err = _rejected(m, SLICE.format(n="dup", c=20, g=10))
        assert err.path.strip().endswith("/cpn:slice[cpn:name='dup']/cpn:color")
        err = _rejected(m, SLICE.format(n="neg", c=41, g=-3))
        assert err.path.strip() == "/cpn:cpn/cpn:slices/cpn:slice[cpn:name='neg']" \
            "/cpn:guaranteed-mbps"
    assert ctl.rt.store.get(Slice, "huge") is None


def test_deleting_a_node_an_intent_uses_fails_validation(ctl: Controller) -> None:
    site = "<sites><site><name>EDGE-X</name><kind>mec</kind><region>x</region></site></sites>"
    with ctl.nc() as m:  # site and intent in one edit: the rules see both
        m.edit_config(target="candidate", config=cfg(site + INTENT.format(
            h="DC-FS", c=5, e="EDGE-X", extra="")))
        m.commit()
        m.edit_config(target="candidate", config=cfg(
            '<sites><site nc:operation="delete"><name>EDGE-X</name></site></sites>'))
        with pytest.raises(RPCError) as info:
            m.validate(source="candidate")
        assert info.value.path.strip().endswith(
            "[cpn:color='5'][cpn:endpoint='EDGE-X']/cpn:endpoint")
        with pytest.raises(RPCError):
            m.commit()
        m.discard_changes()
    assert ctl.rt.store.get(SrPolicyIntent, "DC-FS~5~EDGE-X") is not None


def test_scheduling_policy_edit_commit_and_live_apply(ctl: Controller) -> None:
    body = ("<scheduler><queue-sort>fcfs</queue-sort><profile><name>fast</name>"
            "<plugin><name>node-resources-fit</name></plugin>"
            "<plugin><name>least-loaded</name></plugin><plugin><name>default-binder</name>"
            "</plugin><weight><plugin>least-loaded</plugin><value>3</value></weight>"
            "</profile><queue><name>batch</name><weight>2</weight><profile>fast</profile>"
            "</queue></scheduler>")
    with ctl.nc() as m:
        err = _rejected(m, "<scheduler><queue><name>q1</name><profile>nope</profile>"
                           "</queue></scheduler>")
        assert err.tag == "invalid-value"
        assert err.path.strip() == "/cpn:cpn/cpn:scheduler/cpn:queue[cpn:name='q1']"
        assert "unknown profile 'nope'" in err.message
        err = _rejected(m, "<scheduler><profile><name>p</name><plugin><name>no-such</name>"
                           "</plugin></profile></scheduler>")
        assert err.path.strip().startswith("/cpn:cpn/cpn:scheduler/cpn:profile[cpn:name='p']")
        m.edit_config(target="candidate", config=cfg(body))
        m.commit()
        xml = m.get_config(source="running", filter=("subtree", (
            '<cpn xmlns="urn:cpn:yang:cpn"><scheduler/></cpn>'))).data_xml
    assert "fast" in xml and "batch" in xml
    stored = ctl.rt.store.get(SchedulerSettings, "scheduler")
    assert stored is not None and stored.config.queue_sort == "fcfs"
    prof = stored.config.profiles["fast"]
    assert [p if isinstance(p, str) else p.name for p in prof.plugins] == [
        "node-resources-fit", "least-loaded", "default-binder"]
    assert prof.weights == {"least-loaded": 3.0}
    assert journal(ctl, "scheduler-config", "scheduler")["actor"] == "netconf:carol"
    comp = next(c for c in ctl.rt.components if c.name == "scheduler")
    deadline = time.monotonic() + 10
    while "fast" not in comp.inner.profiles.frameworks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert comp.inner.cfg.queues["batch"].profile == "fast"
    assert comp.inner.profiles.for_task("t", "batch").profile.name == "fast"
    with ctl.nc() as m:  # delete: back to the config file's section, nothing stored
        m.edit_config(target="candidate", config=cfg(
            '<scheduler nc:operation="delete"/>'))
        m.commit()
    assert ctl.rt.store.get(SchedulerSettings, "scheduler") is None


def _policy() -> SrPolicy:
    def cp(pref: int, disc: int, sids: list[str], name: str) -> CandidatePath:
        return CandidatePath(preference=pref, discriminator=disc, name=name,
                             protocol_origin=ProtocolOrigin.CONFIG,
                             originator=Originator(asn=65000, node=IPv6Address("fc00::1")),
                             segment_lists=[SegmentList(sids=[IPv6Address(s) for s in sids],
                                                        hops=["HUB-GZ", "HUB-HK"])])
    return SrPolicy(headend="HUB-GZ", color=20, endpoint="HUB-HK", name="gz-hk",
                    candidate_paths=[cp(100, 1, ["fc00:0:2::", "fc00:0:3::"], "backup"),
                                     cp(200, 2, ["fc00:0:3::"], "primary")])


def _optical(ctl: Controller) -> None:
    fib = ring_fibers(6)
    devs = {f"ne{i}": FakeDevice(f"ne{i}", ne_config(f"ne{i}", fib)) for i in range(6)}
    devs["ne2"].state = NeState(alarms=(Alarm("ne2", "a1", "los", "link-ne2-ne3",
                                              "2026-11-22T00:00:00Z"),))
    comp = OpticalComponent(OpticalSection())
    comp.ctl = OpticalController(devs)

    async def go() -> None:
        assert comp.ctl is not None
        await comp.ctl.start()
        await comp.ctl.create_path(Request("p1", "ne1", "ne3"))
        await comp.ctl.stop()
    asyncio.run(go())
    ctl.rt.settings.extra["optical"] = comp


def test_get_serves_sr_policy_optical_path_and_alarm_state(ctl: Controller) -> None:
    with ctl.rt.store.transaction("test", "seed SR policy") as txn:
        txn.put(_policy())
    _optical(ctl)
    try:
        with ctl.nc("dave") as m:  # a viewer may read state
            flt = ('<cpn xmlns="urn:cpn:yang:cpn"><state><sr-policies><policy>'
                   "<headend>HUB-GZ</headend></policy></sr-policies></state></cpn>")
            root = ET.fromstring(m.get(filter=("subtree", flt)).data_xml)
            pols = root.findall(f".//{Q}sr-policies/{Q}policy")
            assert len(pols) == 1 and pols[0].findtext(Q + "oper-state") == "up"
            cps = pols[0].findall(f"{Q}candidate-paths/{Q}candidate-path")
            best = [c for c in cps if c.findtext(Q + "is-best-candidate-path") == "true"]
            assert [c.findtext(Q + "name") for c in best] == ["primary"]
            assert cps[0].findtext(Q + "originator") == "65000-fc00::1"
            assert cps[0].findtext(Q + "protocol-origin") == "local"
            sids = [s.text for s in best[0].iter(Q + "sid-value")]
            assert sids == ["fc00:0:3::"]
            assert root.find(f".//{Q}compute-metrics") is None  # filtered out
            flt = ('<cpn xmlns="urn:cpn:yang:cpn"><state><optical-paths/><alarms/>'
                   "</state></cpn>")
            root = ET.fromstring(m.get(filter=("subtree", flt)).data_xml)
            path = root.find(f".//{Q}optical-paths/{Q}path")
            assert path is not None and path.findtext(Q + "id") == "p1"
            assert path.findtext(Q + "state") == "active"
            assert [n.text for n in path.findall(f"{Q}working/{Q}nodes")] == [
                "ne1", "ne2", "ne3"]
            alarms = root.findall(f".//{Q}alarms/{Q}alarm")
            assert ("ne2:link-ne2-ne3", "los") in {
                (a.findtext(Q + "resource"), a.findtext(Q + "alarm-type-id")) for a in alarms}
    finally:
        ctl.rt.settings.extra.pop("optical", None)


def test_policy_programmed_notification_on_sr_policy_change(ctl: Controller) -> None:
    with ctl.nc() as m:
        m.create_subscription()
        pol = _policy().model_copy(update={"color": 30})
        with ctl.rt.store.transaction("srv6", "program policy") as txn:
            txn.put(pol)
        body = None
        deadline = time.monotonic() + 10
        while body is None and time.monotonic() < deadline:
            n = m.take_notification(timeout=5)
            if n is not None:
                body = ET.fromstring(n.notification_xml).find(f".//{Q}policy-programmed")
        assert body is not None
        assert body.findtext(Q + "policy") == "HUB-GZ~30~HUB-HK"
        assert body.findtext(Q + "oper-state") == "up"
        assert body.findtext(Q + "active-candidate-path") == "primary"
        assert [s.text for s in body.findall(Q + "sid-value")] == ["fc00:0:3::"]


def test_unconfirmed_commit_of_a_slice_rolls_back(ctl: Controller) -> None:
    with ctl.nc() as m:
        m.edit_config(target="candidate", config=cfg(SLICE.format(n="silver", c=30, g=100)))
        m.commit(confirmed=True, timeout="1")
        assert ctl.rt.store.get(Slice, "silver") is not None
        deadline = time.monotonic() + 10
        while ctl.rt.store.get(Slice, "silver") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert ctl.rt.store.get(Slice, "silver") is None
    assert journal(ctl, "slice", "silver")["actor"] == "netconf:confirm-timeout"


def test_optical_ne_alarm_raised_and_cleared_as_notifications(ctl: Controller) -> None:
    import dataclasses

    _optical(ctl)
    comp = ctl.rt.settings.extra["optical"]
    snaps = comp.ctl.snaps

    def take(m: Any) -> ET.Element:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            n = m.take_notification(timeout=5)
            body = None if n is None else ET.fromstring(n.notification_xml).find(
                f".//{Q}alarm")
            if body is not None and body.findtext(Q + "condition") == "ne-alarm" and \
                    body.findtext(Q + "resource") == "ne4:port-1":
                return body
        raise AssertionError("no ne-alarm notification")

    try:
        with ctl.nc() as m:
            m.create_subscription()
            los = Alarm("ne4", "a9", "los", "port-1", "2026-11-22T00:00:00Z")
            snaps["ne4"] = dataclasses.replace(snaps["ne4"], state=NeState(alarms=(los,)))
            raised = take(m)
            assert raised.findtext(Q + "alarm-type-id") == "los"
            assert raised.findtext(Q + "cleared") == "false"
            snaps["ne4"] = dataclasses.replace(snaps["ne4"], state=NeState())
            assert take(m).findtext(Q + "cleared") == "true"
    finally:
        ctl.rt.settings.extra.pop("optical", None)


# ------------------------------------------------- edit parsing fuzz (no server needed)
_TAGS = ["sr-policy-intents", "intent", "slices", "slice", "sdwan-policies", "policy",
         "scheduler", "profile", "plugin", "weight", "queue", "tenant", "arg", "name",
         "value", "headend", "endpoint", "color", "constraints", "max-delay-ms", "flows",
         "guaranteed-mbps", "exclude-nodes", "match", "sla", "transports", "headends",
         "lending-limit", "resource", "queue-sort", "bogus"]
_TOP = ["sr-policy-intents", "slices", "sdwan-policies", "scheduler"]
_ENTRIES = ["intent", "slice", "policy", "profile", "queue", "tenant", "queue-sort", "bogus"]
_TEXT = st.sampled_from(["", "HUB-GZ", "HUB-HK", "MEC-GZ1", "20", "-1", "1e9", "x", "otn",
                         "fcfs", "least-loaded", "0.5", "[1]", "NOWHERE"])
_OPS = st.sampled_from([None, "merge", "replace", "create", "delete", "remove", "bad"])


@st.composite
def _element(draw: Any, depth: int = 0) -> ET.Element:
    tags = _TOP if depth == 0 else _ENTRIES if depth == 1 else _TAGS
    el = ET.Element(Q + draw(st.sampled_from(tags)))
    op = draw(_OPS)
    if op is not None:
        el.set(f"{{{NC}}}operation", op)
    if depth < 3 and draw(st.booleans()):
        for _ in range(draw(st.integers(0, 4))):
            el.append(draw(_element(depth + 1)))
    else:
        el.text = draw(_TEXT)
    return el


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path_factory.mktemp("fuzz") / "s.db")
    apply_config(s, load_config(ROOT / "examples" / "gba.yaml"))
    try:
        yield s
    finally:
        s.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(_element(), min_size=1, max_size=3))
def test_edit_fuzz_only_rpc_errors_and_failed_edits_change_nothing(
        fuzz_store: SqliteStore, body: list[ET.Element]) -> None:
    ds = Datastores(fuzz_store)
    config = ET.Element(f"{{{NC}}}config")
    root = ET.SubElement(config, Q + "cpn")
    root.extend(body)
    try:
        ds.edit("candidate", config, 1)
    except RpcError as err:
        assert err.tag and err.message
        assert ds.candidate is None  # the failed edit left no candidate behind
    else:  # whatever was accepted validates or is refused as an rpc-error, nothing else
        try:
            ds.validate("candidate")
        except RpcError as err:
            assert err.tag and err.path


def test_service_edit_still_maps_after_the_new_containers(fuzz_store: SqliteStore) -> None:
    ds = Datastores(fuzz_store)
    ds.edit("candidate", ET.fromstring(EDIT.format(latency=12)), 1)
    svc = ds.view("candidate")["service"]["video"]
    assert svc.requirements.max_latency_ms == 12  # type: ignore[attr-defined]


def test_committed_scheduling_policy_survives_a_restart(tmp_path: Any) -> None:
    store = SqliteStore(tmp_path / "s.db")
    ds = Datastores(store)
    ds.edit("candidate", ET.fromstring(cfg("<scheduler><queue><name>q</name><weight>4</weight>"
                                           "</queue></scheduler>")), 1)
    ds.commit(1, "carol")
    store.close()
    store = SqliteStore(tmp_path / "s.db")
    try:
        sched = Datastores(store).view("running")[SchedulerSettings.KIND]["scheduler"]
        assert sched.config.queues["q"].weight == 4  # type: ignore[attr-defined]
    finally:
        store.close()


# --------------------------------------------------------------- pure scheduler mapping
def test_scheduler_xml_round_trip() -> None:
    cfg_ = SchedulerConfig.model_validate({
        "queue_sort": "drf", "percentage_of_nodes": 50,
        "profiles": {"gpu": {"plugins": ["node-resources-fit", "least-loaded",
                                          "default-binder"],
                             "weights": {"least-loaded": 2}}},
        "queues": {"q": {"weight": 3, "profile": "gpu"}},
        "tenants": {"t": {"profile": "gpu", "lending_limit": {"gpu": 2}}}})
    el = schedmap.to_xml(cfg_)
    assert schedmap.apply_edit(SchedulerConfig(), el, "replace") == cfg_
    # merge: a queue's weight changes, everything else is kept
    patch = ET.fromstring(f'<scheduler xmlns="{Q[1:-1]}"><queue><name>q</name>'
                          "<weight>5</weight></queue></scheduler>")
    merged = schedmap.apply_edit(cfg_, patch, "merge")
    assert merged.queues["q"].weight == 5 and merged.queues["q"].profile == "gpu"
    assert merged.profiles == cfg_.profiles
