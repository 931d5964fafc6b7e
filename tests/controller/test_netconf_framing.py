"""Sans-I/O NETCONF framing and session tests (no sockets), with fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.errors import RemoteProtocolError
from controller.models import Role, Site
from controller.netconf.datastore import Datastores
from controller.netconf.framing import FrameDecoder, encode
from controller.netconf.session import NetconfSession, SessionClosed
from controller.store import SqliteStore

HELLO11 = (b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>'
           b"<capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>")


def test_eom_and_chunked_round_trip() -> None:
    d = FrameDecoder()
    d.feed(encode(b"<a/>", False) + encode(b"<b/>", False)[:3])
    assert list(d.messages()) == [b"<a/>"]
    d.feed(encode(b"<b/>", False)[3:])
    assert list(d.messages()) == [b"<b/>"]
    d.chunked = True
    msg = b"<rpc>" + b"x" * 100 + b"</rpc>"
    wire = encode(msg, True)
    for i in range(len(wire)):  # byte by byte
        d.feed(wire[i:i + 1])
    assert list(d.messages()) == [msg]
    # a message split into several chunks (RFC 6242 §4.2 example)
    d.feed(b"\n#4\n<rpc\n#18\n message-id=\"102\"\n\n#79\n" + b" " * 79 + b"\n##\n")
    assert list(d.messages()) == [b'<rpc message-id="102"\n' + b" " * 79]


@pytest.mark.parametrize("bad", [b"\n#0\n", b"\n#abc\n", b"xx#4\nabcd", b"\n#99999999999\n"])
def test_bad_chunks_are_protocol_errors(bad: bytes) -> None:
    d = FrameDecoder()
    d.chunked = True
    with pytest.raises(RemoteProtocolError):
        d.feed(bad)


def test_oversized_message_is_refused() -> None:
    d = FrameDecoder(max_message=4096)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        d.feed(b"a" * 5000)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_framing_fuzz_never_crashes_unexpectedly(data: bytes, chunked: bool) -> None:
    d = FrameDecoder(max_message=1024)
    d.chunked = chunked
    try:
        d.feed(data)
        list(d.messages())
    except RemoteProtocolError:
        pass


@pytest.fixture
def session(tmp_path: Path) -> NetconfSession:
    store = SqliteStore(tmp_path / "s.db")
    with store.transaction("t") as txn:
        txn.put(Site(name="A", kind="mec", region="r"))
    s = NetconfSession(Datastores(store), "carol", Role.OPERATOR)
    assert b"base:1.1" in s.start()
    s.receive(encode(HELLO11, False))
    assert s.chunked
    return s


def rpc(body: str, mid: str = "1") -> bytes:
    return encode(f'<rpc message-id="{mid}" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
                  f"{body}</rpc>".encode(), True)


def test_rpc_errors_for_malformed_input(session: NetconfSession) -> None:
    out = session.receive(encode(b"<rpc message-id='1'><get></rpc>", True))
    assert b"malformed-message" in out
    out = session.receive(encode(b"<!DOCTYPE x [<!ENTITY a 'b'>]><rpc/>", True))
    assert b"malformed-message" in out
    out = session.receive(rpc("<frobnicate/>"))
    assert b"operation-not-supported" in out and b'message-id="1"' in out
    out = session.receive(encode(b'<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
                                 b"<get/></rpc>", True))
    assert b"missing-attribute" in out


def test_get_config_in_process(session: NetconfSession) -> None:
    out = session.receive(rpc("<get-config><source><running/></source></get-config>"))
    assert b"<cpn:name>A</cpn:name>" in out and b"rpc-reply" in out


def test_broken_framing_closes_the_session(session: NetconfSession) -> None:
    with pytest.raises(SessionClosed):
        session.receive(b"garbage without chunk header")
    assert session.closed


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_rpc_fuzz_gives_replies_or_closes(data: bytes) -> None:
    store = SqliteStore(":memory:")
    s = NetconfSession(Datastores(store), "u", Role.VIEWER)
    s.start()
    s.receive(encode(HELLO11, False))
    try:
        s.receive(encode(data, True))
    except SessionClosed:
        pass
    store.close()


def test_a_reply_after_a_commit_leaves_once_the_store_made_it_durable(
        session: NetconfSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """Acknowledged means durable: an edit of running is replied to after
    ``make_durable``; a read that committed nothing does not wait for the disk."""
    store = session.ds.store
    seen: list[int] = []
    real = store.make_durable
    monkeypatch.setattr(store, "make_durable", lambda: (seen.append(store.last_seq()),
                                                        real())[1])
    session.receive(rpc("<get-config><source><running/></source></get-config>"))
    assert seen == []
    nc = "urn:ietf:params:xml:ns:netconf:base:1.0"
    out = session.receive(rpc(
        f'<edit-config><target><candidate/></target><config xmlns="{nc}"><cpn '
        'xmlns="urn:cpn:yang:cpn"><sites><site><name>B</name><kind>mec</kind>'
        "<region>x</region></site></sites></cpn></config></edit-config>", "2"))
    assert b"<ok" in out and seen == [], out  # the candidate is not the store
    out = session.receive(rpc("<commit/>", "3"))
    assert b"<ok" in out, out
    assert seen == [store.last_seq()] and store.get(Site, "B") is not None
