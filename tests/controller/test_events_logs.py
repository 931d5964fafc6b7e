from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from controller import logs
from controller.events import Event, EventBus, StateChanged
from controller.models import Site
from controller.store import SqliteStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Event):
    n: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Other(Event):
    pass


def test_bus_fans_out_by_type_and_bounds_slow_subscribers() -> None:
    async def main() -> tuple[list[int], int, int, list[int]]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        pings = bus.subscribe(Ping, maxsize=3)
        everything = bus.subscribe(critical=True)
        handled: list[int] = []
        bus.on(Ping, lambda e: handled.append(e.n))
        for i in range(5):
            bus.publish(Ping(n=i))
        bus.publish(Other())
        got = [(await pings.get()).n for _ in range(3)]  # type: ignore[attr-defined]
        return got, pings.dropped, everything.queue.qsize(), handled

    got, dropped, total, handled = asyncio.run(main())
    assert got == [2, 3, 4] and dropped == 2  # oldest dropped, newest kept
    assert total == 6 and handled == [0, 1, 2, 3, 4]


def test_publish_from_another_thread_lands_on_the_loop() -> None:
    async def main() -> int:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        sub = bus.subscribe(Ping)
        t = threading.Thread(target=lambda: bus.publish(Ping(n=7)))
        t.start()
        t.join()
        ev = await asyncio.wait_for(sub.get(), 2)
        assert isinstance(ev, Ping)
        return ev.n

    assert asyncio.run(main()) == 7


def test_store_commits_become_state_changed_events(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    bus = EventBus()
    seen: list[StateChanged] = []
    bus.on(StateChanged, seen.append)
    store.subscribe(lambda ch: bus.publish(StateChanged(changes=tuple(ch))))
    with store.transaction("a") as txn:
        txn.put(Site(name="A", kind="mec", region="r"))
    store.close()
    assert seen and seen[0].kinds() == {"site"}


def test_logs_carry_gbt_8_4_fields_and_are_searchable(tmp_path: Path) -> None:
    path = logs.setup("debug", tmp_path, process_name="cpn-test")
    assert path is not None
    log = logging.getLogger("cpn.test")
    log.info("ordinary line")
    logs.key_event(log, "flow moved", service="video", to="MEC-2")
    log.error("bad thing on MEC-1")
    for h in logging.getLogger().handlers:
        h.flush()
    rec = json.loads(path.read_text().splitlines()[-1])
    assert set(rec) >= {"level", "module", "pid", "process", "time", "content"}
    assert rec["process"] == "cpn-test" and rec["module"] == "cpn.test"
    keys = list(logs.search(tmp_path, level="key"))
    assert [r["content"] for r in keys] == ["flow moved", "bad thing on MEC-1"]
    assert keys[0]["fields"] == {"service": "video", "to": "MEC-2"}
    assert [r["content"] for r in logs.search(tmp_path, grep="mec-1")] == ["bad thing on MEC-1"]
    logs.setup("info")  # detach the file handler


def test_runtime_events_carry_actor_and_reason(tmp_path: Path) -> None:
    from controller.runtime import Runtime, Settings

    rt = Runtime(None, Settings(state=tmp_path))
    seen: list[StateChanged] = []
    rt.bus.on(StateChanged, seen.append)
    with rt.store.transaction("api:ops", "expansion") as txn:
        txn.put(Site(name="A", kind="mec", region="r"))
    rt.store.close()
    assert [(e.actor, e.reason) for e in seen] == [("api:ops", "expansion")]
