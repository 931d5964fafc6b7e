"""Contract suite for both ``OpticalDevice`` backends: in-memory and NETCONF/netconfd."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from labs.optical.fixture import ne_config, ring_fibers
from labs.optical.ne import LabNe, make_keys
from optical.device import FakeDevice
from optical.netconf import NetconfDevice
from tests.conftest import have, needs_netns
from tests.optical.contract import DeviceContract


class TestFakeDevice(DeviceContract):
    @pytest.fixture
    def device(self) -> FakeDevice:
        return FakeDevice("ne0", ne_config("ne0", ring_fibers(6)))


@pytest.fixture(scope="module")
def lab_ne(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNe]:
    from ncclient import manager

    from optical.codec import render_base
    base: Path = tmp_path_factory.mktemp("ne")
    key, host = make_keys(base)
    ne = LabNe("ne0", base, key, host)
    try:
        ne.start()
        ne.wait_ready()
        with manager.connect(host="127.0.0.1", port=ne.port, username="root",
                             key_filename=str(key), hostkey_verify=False, allow_agent=False,
                             look_for_keys=False, timeout=10) as m:
            m.edit_config(target="candidate",
                          config=render_base(ne_config("ne0", ring_fibers(6))))
            m.commit()
        yield ne
    finally:
        ne.stop()


@needs_netns
@pytest.mark.lab
@pytest.mark.skipif(not have("netconfd"), reason="needs netconfd")
class TestNetconfDevice(DeviceContract):
    @pytest.fixture
    def device(self, lab_ne: LabNe) -> Iterator[NetconfDevice]:
        dev = NetconfDevice("ne0", "127.0.0.1", lab_ne.port, "root", str(lab_ne.client_key))
        yield dev
        asyncio.run(dev.close())
