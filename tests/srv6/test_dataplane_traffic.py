"""``labs.traffic`` accounting (sans-I/O) and wire format."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labs.traffic import Accounting, decode, encode


def test_loss_dup_reorder_counted() -> None:
    acc = Accounting(expected=6)
    for i, seq in enumerate([0, 1, 3, 2, 3, 5]):
        acc.feed(seq, 0, i * 1_000_000)
    s = acc.summary()
    assert (s["lost"], s["duplicates"], s["reordered"], s["unique"]) == (1, 1, 1, 5)
    assert s["first_missing"] == [4]
    assert s["max_gap_ms"] == 1.0


def test_short_datagram_rejected() -> None:
    with pytest.raises(ValueError, match="shorter"):
        decode(b"123")


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 1500))
def test_roundtrip(seq: int, ts: int, size: int) -> None:
    data = encode(seq, ts, size)
    assert len(data) == max(size, 16) and decode(data) == (seq, ts)


def test_datagrams_queued_when_the_receiver_is_stopped_are_counted_not_lost() -> None:
    """A receiver stopped by SIGTERM returned at once, so frames already in its socket
    buffer were reported lost (cpn lab ha-video counted 6 'lost' frames at a leader
    change with no gap in the stream). It now drains what already arrived."""
    import json
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:  # a free UDP port number on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recv = subprocess.Popen([sys.executable, "-m", "labs.traffic", "recv", str(port),
                             "--bind", "127.0.0.1", "--idle", "60"], stdout=subprocess.PIPE)
    try:
        assert recv.stdout is not None and b"listening" in recv.stdout.readline()
        recv.send_signal(signal.SIGSTOP)  # it cannot read: the datagrams queue up
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for seq in range(50):
                s.sendto(encode(seq, time.time_ns()), ("127.0.0.1", port))
        recv.send_signal(signal.SIGTERM)
        recv.send_signal(signal.SIGCONT)
        out, _ = recv.communicate(timeout=20)
    finally:
        if recv.poll() is None:
            recv.kill()
    got = json.loads(out.decode().strip().splitlines()[-1])
    assert got["unique"] == 50 and got["lost"] == 0, got
