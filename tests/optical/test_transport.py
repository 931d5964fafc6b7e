"""The optical provider of the reconciler's ``Transport`` (``optical.transport``) on
in-memory NEs: an on-demand link's OTN path is provisioned and read back, released and
read back gone; an RWA refusal touches no NE; an NE refusal leaves nothing anywhere;
bad ``otn_links`` config names the field (issue 14 item 4)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from labs.optical.fixture import ne_config, ring_fibers
from optical.config import OpticalSection, OtnLinkSpec
from optical.device import FakeDevice
from optical.rwa import OsnrModel
from optical.service import OpticalController
from optical.transport import OtnTransport, path_id
from srv6.intents.crosslayer import Transport

LINK = "HA~HB"


def fakes() -> dict[str, FakeDevice]:
    fib = ring_fibers(6)
    return {f"ne{i}": FakeDevice(f"ne{i}", ne_config(f"ne{i}", fib)) for i in range(6)}


def run(devs: dict[str, FakeDevice], body: object, osnr: OsnrModel | None = None) -> None:
    async def go() -> None:
        ctl = OpticalController(devs, osnr=osnr)
        await ctl.start()
        t = OtnTransport(ctl, {LINK: OtnLinkSpec(a="ne1", z="ne4")},
                         asyncio.get_running_loop(), wait_s=2)
        assert isinstance(t, Transport)
        try:
            await body(t, ctl)  # type: ignore[operator]
        finally:
            await ctl.stop()
    asyncio.run(go())


def xcs(devs: dict[str, FakeDevice]) -> dict[str, list[str]]:
    return {n: sorted(d.running.xcs) for n, d in devs.items() if d.running.xcs}


def test_ensure_provisions_reads_back_and_release_removes() -> None:
    devs = fakes()
    seen: dict[str, object] = {}

    async def body(t: OtnTransport, ctl: OpticalController) -> None:
        assert not t.up(LINK) and not t.provisioned()
        res = await asyncio.to_thread(t.ensure, LINK)
        assert res.ok and res.path == path_id(LINK) == "xl-HA.HB"
        assert res.nes[0] == "ne1" and res.nes[-1] == "ne4" and res.channel >= 1
        assert t.up(LINK) and list(t.provisioned()) == [LINK]
        assert ctl.paths["xl-HA.HB"].ip_links == (LINK,)
        seen["lit"] = xcs(devs)
        again = await asyncio.to_thread(t.ensure, LINK)  # idempotent
        assert again.ok and len(ctl.paths) == 1
        gone = await asyncio.to_thread(t.release, LINK)
        assert gone.ok and not t.provisioned() and not t.up(LINK)
    run(devs, body)
    lit = seen["lit"]
    assert isinstance(lit, dict) and set(lit) >= {"ne1", "ne4"}
    assert not xcs(devs)  # every cross-connect deleted on every NE


def test_unreachable_reach_is_refused_before_any_ne_is_touched() -> None:
    devs = fakes()

    async def body(t: OtnTransport, ctl: OpticalController) -> None:
        res = await asyncio.to_thread(t.ensure, LINK)
        assert not res.ok and res.constraint == "optical:osnr-infeasible"
        assert "ne1–ne4" in res.reason and "regenerator" in res.fix
        assert not ctl.paths and not t.provisioned()
    run(devs, body, osnr=OsnrModel(margin_db=60.0))
    assert all("edit-config" not in d.rpcs for d in devs.values())


def test_ne_refusal_leaves_nothing_and_forgets_the_path() -> None:
    devs = fakes()
    devs["ne4"].reject = "invalid-value: transceiver busy"

    async def body(t: OtnTransport, ctl: OpticalController) -> None:
        res = await asyncio.to_thread(t.ensure, LINK)
        assert not res.ok and res.constraint == "optical:ne-refused"
        assert "ne4" in res.reason and "transceiver busy" in res.reason
        assert not ctl.paths and not t.provisioned()
    run(devs, body)
    assert not xcs(devs)


def test_called_on_its_own_loop_is_refused_not_deadlocked() -> None:
    async def body(t: OtnTransport, ctl: OpticalController) -> None:
        with pytest.raises(RuntimeError, match="worker thread"):
            t.ensure(LINK)
    run(fakes(), body)


def test_otn_links_config_names_the_unknown_ne() -> None:
    ne = [{"name": "ne0"}, {"name": "ne1"}]
    with pytest.raises(ValidationError, match=r"otn_links.HA~HB.z: unknown NE 'ne9'"):
        OpticalSection.model_validate({"ne": ne, "otn_links": {
            "HA~HB": {"a": "ne0", "z": "ne9"}}})
    with pytest.raises(ValidationError, match="a and z are both 'ne0'"):
        OpticalSection.model_validate({"ne": ne, "otn_links": {
            "HA~HB": {"a": "ne0", "z": "ne0"}}})
    ok = OpticalSection.model_validate({"ne": ne, "otn_links": {
        "HA~HB": {"a": "ne0", "z": "ne1", "rate": "rate-400G"}}})
    assert ok.otn_links["HA~HB"].rate.value == "rate-400G"
