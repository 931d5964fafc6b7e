"""Interface carrier from real kernels (namespaces, veth): a peer going down is seen as
carrier loss at once, and back up; the parser refuses truncated messages."""

from __future__ import annotations

import queue

import pytest

from controller.errors import RemoteProtocolError
from labs.netns import Lab
from srv6.intents.linkwatch import LinkWatcher, parse_links
from tests.conftest import needs_netns


@needs_netns
def test_peer_down_is_carrier_loss_and_back_up() -> None:
    got: queue.Queue[tuple[str, str, bool]] = queue.Queue()
    with Lab("lw") as lab:
        a, b = lab.ns("a"), lab.ns("b")
        lab.link(a, b, "tob", "toa", ["fd00::1/64"], ["fd00::2/64"])
        w = LinkWatcher({"A": a.name}, {"A": {"tob"}}, lambda *ev: got.put(ev))
        w.start()
        try:
            assert got.get(timeout=5) == ("A", "tob", True)  # first reading
            b.run("ip link set dev toa down")  # the far end: A keeps its address
            assert got.get(timeout=5) == ("A", "tob", False)
            b.run("ip link set dev toa up")
            assert got.get(timeout=5) == ("A", "tob", True)
            a.run("ip link add dev other type veth peer name other2")  # not watched
            with pytest.raises(queue.Empty):
                got.get(timeout=0.3)
        finally:
            w.stop()


def test_truncated_link_message_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_links(b"\x40\x00\x00\x00\x10\x00" + b"\x00" * 14)
    assert parse_links(b"") == ({}, False)
