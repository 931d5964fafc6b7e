"""The ``OpticalDevice`` contract: every backend (fake, NETCONF/netconfd) passes it.

Subclasses provide the ``device`` fixture: a fresh-enough device named ``ne0`` holding
the base config of ``labs.optical.fixture.ne_config("ne0", ring_fibers(6))``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from controller.errors import CommitError
from optical.codec import Notice
from optical.device import OpticalDevice
from optical.models import NeEdit, OchXc

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class DeviceContract:
    def test_discover_reports_degrees_links_and_groups(self, device: OpticalDevice) -> None:
        snap = run(device.discover())
        assert snap.config.degrees[1] == "f0-1"
        assert snap.config.links["f0-1"].remote_ne == "ne1"
        assert snap.config.links["f0-1"].srlgs == ("duct-0",)
        assert snap.config.groups["omsp-f0-1"].protect_link == "f0-1p"

    def test_prepare_confirm_puts_xc_in_running(self, device: OpticalDevice) -> None:
        xc = OchXc("c-ok", "c-ok", 11, a_port="p1", z_degree=1)

        async def go() -> set[str]:
            await device.prepare(NeEdit(xcs=(xc,)))
            await device.confirm()
            return set((await device.discover()).config.xcs)
        assert "c-ok" in run(go())
        run(self._remove(device, "c-ok"))

    async def _remove(self, device: OpticalDevice, name: str) -> None:
        await device.prepare(NeEdit(delete=(("och-xc", name),)))
        await device.confirm()

    def test_cancel_after_confirmed_commit_restores_running(self, device: OpticalDevice) -> None:
        xc = OchXc("c-cancel", "c-cancel", 12, a_port="p1", z_degree=2)

        async def go() -> tuple[set[str], set[str]]:
            await device.prepare(NeEdit(xcs=(xc,)))
            mid = set((await device.discover()).config.xcs)
            await device.cancel()
            return mid, set((await device.discover()).config.xcs)
        mid, after = run(go())
        assert "c-cancel" in mid          # confirmed-commit applied it to running ...
        assert "c-cancel" not in after    # ... and cancel-commit took it back

    def test_rejected_edit_names_ne_and_changes_nothing(self, device: OpticalDevice) -> None:
        bad = OchXc("c-bad", "c-bad", 13, a_port="p1", z_degree=31)  # no degree 31

        async def go() -> set[str]:
            with pytest.raises(CommitError, match="NE ne0"):
                await device.prepare(NeEdit(xcs=(bad,)))
            await device.cancel()
            return set((await device.discover()).config.xcs)
        assert "c-bad" not in run(go())

    def test_duplicate_channel_on_degree_is_rejected(self, device: OpticalDevice) -> None:
        a = OchXc("c-a", "c-a", 14, a_degree=3, z_port="p1")
        b = OchXc("c-b", "c-b", 14, a_degree=3, z_port="p2")

        async def go() -> set[str]:
            with pytest.raises(CommitError, match="NE ne0"):
                await device.prepare(NeEdit(xcs=(a, b)))
            await device.cancel()
            return set((await device.discover()).config.xcs)
        assert not {"c-a", "c-b"} & run(go())

    def test_subscription_reports_config_change(self, device: OpticalDevice) -> None:
        got: list[Notice] = []
        seen = threading.Event()

        def on(n: Notice) -> None:
            got.append(n)
            if n.kind == "config-change":
                seen.set()

        async def go() -> None:
            await device.subscribe(on)
            await device.prepare(NeEdit(xcs=(OchXc("c-n", "c-n", 15, a_port="p1",
                                                   z_degree=1),)))
            await device.confirm()
            await asyncio.to_thread(seen.wait, 5)
            await self._remove(device, "c-n")
        run(go())
        assert any(n.kind == "config-change" and n.ne == "ne0" for n in got)
