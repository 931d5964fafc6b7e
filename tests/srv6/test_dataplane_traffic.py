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
