"""The sans-I/O BGP session (RFC 4271 FSM for an originating speaker): a scripted router
on the other side, bytes only, no sockets."""

from __future__ import annotations

import pytest

from controller.errors import LocalProtocolError
from srv6.dataplane import bgp_wire as w
from srv6.dataplane.bgp_session import BgpSession, Established, PeerClosed, SessionError
from srv6.dataplane.state import SrPolicyRoute

V6 = SrPolicyRoute.of(10, "fc00:5::1", ["fc00:2::1"])
V4 = SrPolicyRoute.of(10, "10.0.0.5", ["fc00:2::1"])


def router_open(asn: int = 65000, hold: int = 30,
                families: tuple[tuple[int, int], ...] = ((2, 73),)) -> bytes:
    return w.encode_open(w.Open(asn, hold, "192.0.2.9", families))


def up(session: BgpSession, **kw: object) -> BgpSession:
    session.start()
    assert isinstance(session.receive_data(router_open(**kw))[0], w.Open)  # type: ignore[arg-type]
    assert session.state == "open_confirm"
    session.keepalive()
    (ev,) = session.receive_data(w.encode_keepalive())
    assert isinstance(ev, Established) and session.state == "established"
    return session


def test_open_announces_families_route_refresh_and_4_octet_as() -> None:
    s = BgpSession(65001, "192.0.2.1", hold_time=90)
    (mtype, body), = w.split(s.start())[0]
    got = w.decode_open(body)
    assert (mtype, got.asn, got.families, got.as4, got.route_refresh) == \
        (w.OPEN, 65001, ((1, 73), (2, 73)), True, True)


def test_established_negotiates_families_and_timers() -> None:
    s = up(BgpSession(65001, "192.0.2.1", peer_as=65000, hold_time=90))
    assert s.negotiated_families == ((2, 73),)
    assert s.timers() == (30.0, 10.0)  # the smaller hold time; keepalive = hold / 3
    update = w.decode_update(w.split(s.advertise(V6, "192.0.2.1"))[0][0][1])
    assert update.policies == (V6,)


def test_family_the_router_did_not_negotiate_is_refused() -> None:
    s = up(BgpSession(65001, "192.0.2.1"))
    with pytest.raises(LocalProtocolError, match="did not negotiate ipv4-srpolicy"):
        s.advertise(V4, "192.0.2.1")


def test_advertise_before_established_is_misuse() -> None:
    s = BgpSession(65001, "192.0.2.1")
    s.start()
    with pytest.raises(LocalProtocolError, match="not established"):
        s.advertise(V6, "192.0.2.1")


def test_wrong_peer_as_gets_bad_peer_as_notification() -> None:
    s = BgpSession(65001, "192.0.2.1", peer_as=65000)
    s.start()
    with pytest.raises(SessionError, match="expected 65000") as exc:
        s.receive_data(router_open(asn=64999))
    assert (exc.value.notification.code, exc.value.notification.subcode) == (2, 2)
    assert s.state == "closed"


def test_bad_hold_time_and_garbage_header_are_refused() -> None:
    s = BgpSession(65001, "192.0.2.1")
    s.start()
    with pytest.raises(SessionError) as exc:
        s.receive_data(router_open(hold=2))
    assert exc.value.notification.subcode == 6
    g = BgpSession(65001, "192.0.2.1")
    g.start()
    with pytest.raises(SessionError) as exc:
        g.receive_data(b"\x00" * 19)
    assert exc.value.notification.code == 1


def test_messages_split_across_reads_are_reassembled() -> None:
    s = BgpSession(65001, "192.0.2.1")
    s.start()
    events = []
    for b in router_open() + w.encode_keepalive():
        events.extend(s.receive_data(bytes([b])))
    assert [type(e) for e in events] == [w.Open, Established]


def test_route_refresh_and_notification_are_reported() -> None:
    s = up(BgpSession(65001, "192.0.2.1"))
    assert s.receive_data(w.encode_route_refresh(2, 73)) == [w.RouteRefresh(2, 73)]
    (ev,) = s.receive_data(w.encode_notification(w.Notification(6, 4)))
    assert isinstance(ev, PeerClosed) and s.state == "closed"
    assert s.close() == b""


def test_close_sends_cease() -> None:
    s = up(BgpSession(65001, "192.0.2.1"))
    (mtype, body), = w.split(s.close())[0]
    assert mtype == w.NOTIFICATION and body[:2] == bytes([6, 2])


def test_update_from_router_is_reported_not_acted_on() -> None:
    s = up(BgpSession(65001, "192.0.2.1"))
    ctx = w.PathContext(65000, False, True, "192.0.2.9", "192.0.2.1")
    (ev,) = s.receive_data(w.encode_policy_update(V6, ctx))
    assert isinstance(ev, w.Update) and ev.policies == (V6,)


def test_graceful_restart_negotiated_only_when_both_announce_it() -> None:
    s = BgpSession(65001, "192.0.2.1", restart_time=60, restarting=True)
    (_, body), = w.split(s.start())[0]
    sent = w.decode_open(body)
    assert (sent.restart_time, sent.restarting, sent.gr_families) == (60, True,
                                                                       ((1, 73), (2, 73)))
    s.receive_data(w.encode_open(w.Open(65000, 30, "192.0.2.9", ((2, 73),),
                                        restart_time=120)))
    s.receive_data(w.encode_keepalive())
    assert s.graceful_restart
    assert w.decode_update(w.split(s.end_of_rib())[0][0][1]).end_of_rib == (2, 73)
    plain = up(BgpSession(65001, "192.0.2.1", restart_time=60))
    assert not plain.graceful_restart  # the router did not announce it
