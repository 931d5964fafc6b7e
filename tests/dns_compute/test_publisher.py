"""DnsPublisher contract (one suite, every backend) + Knot specifics: TSIG errors,
SOA-serial prerequisite, NOTIFY/IXFR to a secondary (issue 5 §3, §4)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.errors import CommitError, ConnectionError
from dns_compute.keeper import ZoneKeeper
from dns_compute.publisher import (
    DnsPublisher,
    KnotPublisher,
    MemoryPublisher,
    diff,
    managed,
)
from dns_compute.zone import Zone
from labs.knot import KnotServer, free_port, knotd_path, new_secret
from tests.dns_compute.topo import ZONE, dns_section, entities, overloaded

needs_knot = pytest.mark.skipif(knotd_path() is None, reason="needs knotd")


def zones() -> tuple[Zone, Zone]:
    k = ZoneKeeper(ZONE, dns_section())
    k.load(entities())
    v1 = k.rebuild()
    k.load([overloaded("MEC-1")])
    v2 = k.rebuild()
    assert v1 is not None and v2 is not None
    return v1.zone, v2.zone


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_diff_is_minimal() -> None:
    z1, z2 = zones()
    d = diff(managed(z1), managed(z2))
    changed = {k for k, _ in d.delete} | {k for k, _, _ in d.add} | \
        {(r.name, r.rdtype) for r in d.replace}
    assert ("video.svc.cpn.example.", "A") in changed
    assert ("_compute.mec-2.cpn.example.", "TXT") not in changed  # untouched → not sent
    assert diff(managed(z1), managed(z1)).empty


class PublisherContract:
    """Every ``DnsPublisher`` backend passes this suite."""

    @pytest.fixture
    def publisher(self, tmp_path: Path) -> Iterator[DnsPublisher]:
        raise NotImplementedError

    def test_publish_then_read_back(self, publisher: DnsPublisher) -> None:
        z1, _ = zones()
        res = run(publisher.sync(z1))
        total = sum(len(r.rdatas) for r in managed(z1).values())
        # A primary may already hold some records (e.g. ns A from its zone file).
        assert not res.skipped and 0 < res.added <= total  # type: ignore[attr-defined]
        assert run(publisher.records()) == managed(z1)

    def test_same_zone_twice_sends_nothing(self, publisher: DnsPublisher) -> None:
        z1, _ = zones()
        run(publisher.sync(z1))
        assert run(publisher.sync(z1)).skipped  # type: ignore[attr-defined]

    def test_change_is_diff_only(self, publisher: DnsPublisher) -> None:
        z1, z2 = zones()
        first = run(publisher.sync(z1))
        res = run(publisher.sync(z2))
        assert 0 < res.added < first.added  # type: ignore[attr-defined]
        assert res.serial > first.serial  # type: ignore[attr-defined]
        assert run(publisher.records()) == managed(z2)


class TestMemoryPublisher(PublisherContract):
    @pytest.fixture
    def publisher(self, tmp_path: Path) -> Iterator[DnsPublisher]:
        yield MemoryPublisher()


@pytest.fixture
def knot(tmp_path: Path) -> Iterator[KnotServer]:
    with KnotServer(tmp_path / "primary", free_port()) as k:
        yield k


def knot_publisher(k: KnotServer, **kw: object) -> KnotPublisher:
    args: dict[str, object] = {"tsig_name": k.key_name, "tsig_secret": k.secret,
                               "retries": 2, "backoff_s": 0.01, **kw}
    return KnotPublisher(ZONE, "127.0.0.1", k.port, **args)  # type: ignore[arg-type]


@needs_knot
class TestKnotPublisher(PublisherContract):
    @pytest.fixture
    def publisher(self, knot: KnotServer) -> Iterator[DnsPublisher]:
        yield knot_publisher(knot)


@needs_knot
def test_bad_secret_is_badsig(knot: KnotServer) -> None:
    z1, _ = zones()
    pub = knot_publisher(knot, tsig_secret=new_secret())
    with pytest.raises(CommitError, match="BADSIG"):
        run(pub.sync(z1))


@needs_knot
def test_unknown_key_is_badkey(knot: KnotServer) -> None:
    z1, _ = zones()
    pub = knot_publisher(knot, tsig_name="nobody")
    with pytest.raises(CommitError, match="BADKEY"):
        run(pub.sync(z1))


@needs_knot
def test_refused_update_names_the_acl(tmp_path: Path) -> None:
    """A zone the primary does not serve ⇒ REFUSED/NOTAUTH as a CommitError with a fix."""
    z1, _ = zones()
    with KnotServer(tmp_path / "other", free_port(), zone="other.example") as k:
        pub = knot_publisher(k)
        with pytest.raises(CommitError, match="refused|REFUSED|NOTAUTH"):
            run(pub.sync(z1))


@needs_knot
def test_unreachable_primary_retries_then_connection_error() -> None:
    z1, _ = zones()
    pub = KnotPublisher(ZONE, "127.0.0.1", free_port(), "k", new_secret(), timeout_s=0.2,
                        retries=2, backoff_s=0.01)
    with pytest.raises(ConnectionError, match="after 2 attempts"):
        run(pub.sync(z1))


@needs_knot
def test_serial_prerequisite_detects_foreign_change(knot: KnotServer) -> None:
    """Someone else updates the zone between our syncs: our UPDATE's SOA prerequisite
    fails (NXRRSET), the publisher re-reads the zone and converges on a fresh diff."""
    z1, z2 = zones()
    ours, theirs = knot_publisher(knot), knot_publisher(knot)
    run(ours.sync(z1))
    run(theirs.sync(z2))  # bumps the serial behind `ours`' back
    res = run(ours.sync(z2))
    assert res.attempts == 2 and res.skipped  # type: ignore[attr-defined]
    assert run(ours.records()) == managed(z2)


@needs_knot
def test_foreign_change_is_repaired_even_when_we_have_nothing_to_send(
        knot: KnotServer) -> None:
    z1, z2 = zones()
    ours, theirs = knot_publisher(knot), knot_publisher(knot)
    run(ours.sync(z1))
    run(theirs.sync(z2))
    res = run(ours.sync(z1))  # by our books nothing changed; the serial says otherwise
    assert not res.skipped  # type: ignore[attr-defined]
    assert run(ours.records()) == managed(z1)


@needs_knot
def test_secondary_gets_notify_and_ixfr(tmp_path: Path) -> None:
    z1, z2 = zones()
    sport, pport = free_port(), free_port()
    prim = KnotServer(tmp_path / "p", pport, notify=[sport])
    with prim, KnotServer(tmp_path / "s", sport, primary=("127.0.0.1", pport),
                          secret=prim.secret) as sec:
        pub = knot_publisher(prim)
        run(pub.sync(z1))
        res = run(pub.sync(z2))
        deadline = time.monotonic() + 10
        while sec.serial() != res.serial and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)
        assert sec.serial() == res.serial  # type: ignore[attr-defined]
    log = sec.log_path.read_text()
    assert "notify, incoming" in log and "IXFR, incoming" in log


def test_stop_ends_follow_task_even_if_a_cancellation_is_swallowed() -> None:
    """Regression: the bench hung in rt.stop() because a cancellation delivered while
    dnspython sat in asyncio.wait_for was lost (CPython 3.11, gh-86296)."""
    from dns_compute.publisher import PublishResult

    z1, _ = zones()
    pub = KnotPublisher(ZONE, "127.0.0.1", 9, "k", new_secret())

    async def swallowing_sync(zone: Zone) -> PublishResult:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass  # what the 3.11 race does to the cancellation
        return PublishResult(0, 0, 1, 0, 0.0, skipped=True)

    pub.sync = swallowing_sync  # type: ignore[method-assign]

    async def main() -> None:
        await pub.start()
        pub.follow(z1)
        await asyncio.sleep(0.01)
        await asyncio.wait_for(pub.stop(), 5)
        assert pub._task is not None and pub._task.done()

    asyncio.run(main())
