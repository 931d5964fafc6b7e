"""NETCONF northbound against a real SSH server with ncclient as the client."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest
from ncclient import manager
from ncclient.operations import RPCError

from controller.auth import digest
from controller.config import parse_config
from controller.runtime import Runtime, Settings
from controller.wiring import build
from tests.conftest import ROOT

EDIT = """<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
  <cpn xmlns="urn:cpn:yang:cpn"><services><service>
    <name>video</name><requirements><max-latency-ms>{latency}</max-latency-ms></requirements>
  </service></services></cpn></config>"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Controller:
    def __init__(self, tmp: Path) -> None:
        self.keys: dict[str, Path] = {}
        users = []
        for name, role in (("carol", "operator"), ("dave", "viewer"), ("erin", "operator")):
            key = asyncssh.generate_private_key("ssh-ed25519")
            path = tmp / f"{name}.key"
            key.write_private_key(str(path))
            self.keys[name] = path
            pub = key.export_public_key().decode().strip()
            users.append(f"    - {{name: {name}, role: {role}, authorized_key: '{pub}'}}")
        self.nc_port, self.api_port = free_port(), free_port()
        text = (ROOT / "examples" / "gba.yaml").read_text() + (
            f"\nnetconf:\n  listen: 127.0.0.1:{self.nc_port}\n  users:\n" + "\n".join(users) + "\n")
        cfg = parse_config(text, "gba+netconf.yaml")
        self.rt = Runtime(cfg, Settings(api=("127.0.0.1", self.api_port),
                                        dns=("127.0.0.1", free_port()), state=tmp))
        self.rt.apply_config()
        self.rt.store.add_token(digest("op-token-0123456789"), "ops", "operator", None)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(20), "controller did not start"

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.rt.start(build(self.rt))
            self._ready.set()
            await self._stop.wait()
            await self.rt.stop()

        asyncio.run(main())

    def close(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        self.rt.store.close()

    def nc(self, user: str = "carol") -> Any:
        return manager.connect(host="127.0.0.1", port=self.nc_port, username=user,
                               key_filename=str(self.keys[user]), hostkey_verify=False,
                               allow_agent=False, look_for_keys=False, timeout=10)

    def rest(self, path: str) -> Any:
        return httpx.get(f"http://127.0.0.1:{self.api_port}{path}",
                         headers={"Authorization": "Bearer op-token-0123456789"}).json()


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    c = Controller(tmp_path_factory.mktemp("netconf"))
    try:
        yield c
    finally:
        c.close()


def latency(ctl: Controller) -> float:
    return float(ctl.rest("/api/v1/services/video")["requirements"]["max_latency_ms"])


def test_capabilities_and_get_config(ctl: Controller) -> None:
    with ctl.nc() as m:
        caps = m.server_capabilities  # ncclient resolves ':candidate' abbreviations
        assert ":candidate" in caps and ":confirmed-commit:1.1" in caps
        assert "urn:ietf:params:netconf:base:1.1" in caps
        # cpn is YANG 1.1: learned from the YANG library, not the hello (RFC 7950 §5.6.4)
        assert any(c.startswith("urn:ietf:params:netconf:capability:yang-library:1.0?"
                                "revision=2019-01-04&module-set-id=") for c in set(caps))
        assert not any(c.startswith("urn:cpn:yang:cpn") for c in set(caps))
        reply = m.get_config(source="running", filter=("subtree", (
            '<cpn xmlns="urn:cpn:yang:cpn"><services><service><name>video</name>'
            "</service></services></cpn>")))
        xml = reply.data_xml
        assert "198.51.100.10" in xml and "render" not in xml


def test_candidate_validate_confirmed_commit_confirm(ctl: Controller) -> None:
    assert latency(ctl) == 20
    with ctl.nc() as m:
        m.lock("candidate")
        m.edit_config(target="candidate", config=EDIT.format(latency=35))
        m.validate(source="candidate")
        assert latency(ctl) == 20  # not yet in running
        m.commit(confirmed=True, timeout="30")
        assert latency(ctl) == 35
        m.commit()  # confirm
        m.unlock("candidate")
    time.sleep(0.2)
    assert latency(ctl) == 35
    events = ctl.rest("/api/v1/events?kind=service&key=video&newest_first=true&limit=1")
    assert events["items"][0]["actor"] == "netconf:carol"


def test_unconfirmed_commit_rolls_back_on_timeout(ctl: Controller) -> None:
    before = latency(ctl)
    with ctl.nc() as m:
        m.edit_config(target="candidate", config=EDIT.format(latency=77))
        m.commit(confirmed=True, timeout="1")
        assert latency(ctl) == 77
        deadline = time.monotonic() + 10
        while latency(ctl) != before and time.monotonic() < deadline:
            time.sleep(0.1)
    assert latency(ctl) == before


def test_invalid_edit_is_rejected_with_error_path_and_candidate_unchanged(
        ctl: Controller) -> None:
    with ctl.nc() as m:
        with pytest.raises(RPCError) as info:
            m.edit_config(target="candidate", config=EDIT.format(latency="-5"))
        err = info.value
        assert err.tag == "invalid-value"
        assert err.path.strip() == ("/cpn:cpn/cpn:services/cpn:service[cpn:name='video']"
                                    "/cpn:requirements/cpn:max-latency-ms")
        cand = m.get_config(source="candidate").data_xml
        run = m.get_config(source="running").data_xml
        assert cand == run
        bad_site = ('<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><cpn '
                    'xmlns="urn:cpn:yang:cpn"><services><service><name>video</name>'
                    "<instances><site>NOWHERE</site><address>10.9.9.9</address></instances>"
                    "</service></services></cpn></config>")
        m.edit_config(target="candidate", config=bad_site)
        with pytest.raises(RPCError) as info:
            m.validate(source="candidate")
        assert "unknown site 'NOWHERE'" in info.value.message
        with pytest.raises(RPCError):
            m.commit()
        m.discard_changes()
        with pytest.raises(RPCError) as info:
            m.edit_config(target="candidate", config=EDIT.replace("max-latency-ms", "colour"))
        assert info.value.tag == "unknown-element"


def test_viewer_is_denied(ctl: Controller) -> None:
    with ctl.nc("dave") as m:
        assert "video" in m.get_config(source="running").data_xml
        with pytest.raises(RPCError) as info:
            m.edit_config(target="candidate", config=EDIT.format(latency=5))
        assert info.value.tag == "access-denied"


def test_lock_blocks_other_sessions(ctl: Controller) -> None:
    with ctl.nc("carol") as a, ctl.nc("erin") as b:
        a.lock("candidate")
        with pytest.raises(RPCError) as info:
            b.edit_config(target="candidate", config=EDIT.format(latency=9))
        assert info.value.tag == "in-use"
        with pytest.raises(RPCError) as info:
            b.lock("candidate")
        assert info.value.tag == "lock-denied"
        a.unlock("candidate")


def test_notifications_on_changes(ctl: Controller) -> None:
    with ctl.nc() as m:
        m.create_subscription()
        r = httpx.post(f"http://127.0.0.1:{ctl.api_port}/api/v1/sites",
                       headers={"Authorization": "Bearer op-token-0123456789"},
                       json={"name": "MEC-NEW", "kind": "mec", "region": "x"})
        assert r.status_code == 201
        n = m.take_notification(timeout=10)
        assert n is not None and "config-changed" in n.notification_xml
        assert "MEC-NEW" in n.notification_xml


def test_garbage_session_is_closed_and_others_keep_working(ctl: Controller) -> None:
    async def garbage() -> bytes:
        async with asyncssh.connect("127.0.0.1", ctl.nc_port, username="carol",
                                    client_keys=[str(ctl.keys["carol"])],
                                    known_hosts=None) as conn:
            proc = await conn.create_process(subsystem="netconf", encoding=None)
            await proc.stdout.readuntil(b"]]>]]>")
            proc.stdin.write(b"this is not a hello]]>]]>")
            rest = await asyncio.wait_for(proc.stdout.read(), 10)
            return rest

    assert asyncio.run(garbage()) == b""  # closed without a reply
    with ctl.nc() as m:
        assert "video" in m.get_config(source="running").data_xml
