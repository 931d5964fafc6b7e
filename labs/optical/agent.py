"""NE behaviour process: plays the optical hardware of one lab NE, over NETCONF only.

Rules:
- Talks only to its own NE (netconfd) through NETCONF; writes only ``ne-state`` and the
  ``channel-plan/in-use`` leaf-lists — never the controller's cross-connects.
- Commands on stdin, one per line, each answered ``ok <cmd>`` (or ``err ...``) on stdout:
  ``cut LINK`` / ``repair LINK`` (fiber cut ⇒ LOS alarm, OMSP/OLP 1+1 switch to the
  protect link after hold-off, xcs on an unprotected cut link go down),
  ``occupy DEGREE CHANNEL`` (a local xc takes that channel — makes a controller edit
  on the same degree/channel violate the YANG ``unique`` rule: an injected NE fault),
  ``release`` and ``sync``.
- Reacts to committed cross-connects (netconf-config-change notifications, 0.5 s poll as
  a fallback) by recomputing xc oper-status and in-use channels.
- Revertive groups go back to working ``wait-to-restore-ms`` after the repair.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from typing import Any

from ncclient import manager

from optical.codec import FILTER, NC, NS, parse_snapshot, render_state
from optical.models import Alarm, NeSnapshot, NeState
from optical.netconf import tune_ncclient


class Agent:
    def __init__(self, name: str, port: int, key: str) -> None:
        self.name = name
        self.port, self.key = port, key
        self.m = self._connect()
        self.cut: set[str] = set()
        self.repaired_at: dict[str, float] = {}
        self.active: dict[str, str] = {}
        self.switches: dict[str, int] = {}
        self.last: str = ""
        self.last_inuse: dict[str, tuple[int, ...]] = {}

    def _connect(self) -> Any:
        tune_ncclient()
        return manager.connect(host="127.0.0.1", port=self.port, username="root",
                               key_filename=self.key, hostkey_verify=False,
                               allow_agent=False, look_for_keys=False, timeout=10)

    def snapshot(self) -> NeSnapshot:
        return parse_snapshot(self.name, self.m.get(filter=FILTER).data_xml)

    def write(self, xml: str) -> None:
        for _ in range(100):
            try:
                self.m.lock("candidate")
            except Exception:  # lock-denied while the controller provisions
                time.sleep(0.05)
                continue
            try:
                self.m.discard_changes()
                self.m.edit_config(target="candidate", config=xml)
                self.m.commit()
            finally:
                self.m.unlock("candidate")
            return
        raise RuntimeError("candidate stayed locked")

    def reconcile(self) -> None:
        snap = self.snapshot()
        cfg, now = snap.config, time.monotonic()
        alarms = [Alarm(self.name, f"los-{lk}", "los", lk) for lk in sorted(self.cut)]
        for g in cfg.groups.values():
            cur = self.active.get(g.name, "working")
            if cur == "working" and g.working_link in self.cut and g.protect_link not in self.cut:
                time.sleep(g.hold_off_ms / 1000)
                cur = "protect"
                self.switches[g.name] = self.switches.get(g.name, 0) + 1
            elif (cur == "protect" and g.revertive and g.working_link not in self.cut
                  and now - self.repaired_at.get(g.working_link, 0) >= g.wait_to_restore_ms / 1000):
                cur = "working"
                self.switches[g.name] = self.switches.get(g.name, 0) + 1
            self.active[g.name] = cur
            if cur == "protect":
                alarms.append(Alarm(self.name, f"ps-{g.name}", "protection-switch", g.name))
        covered = {g.working_link for g in cfg.groups.values()
                   if self.active.get(g.name) == "protect"}
        xcs = {}
        for x in cfg.xcs.values():
            links = {cfg.degrees.get(d, "") for d in (x.a_degree, x.z_degree) if d is not None}
            down = any(lk in self.cut and lk not in covered for lk in links)
            xcs[x.name] = "down" if down else "up"
        st = NeState({lk: ("down" if lk in self.cut else "up") for lk in cfg.links}, xcs,
                     {g: self.active.get(g, "working") for g in cfg.groups},
                     {g: self.switches.get(g, 0) for g in cfg.groups}, tuple(alarms))
        xml = render_state(st)
        inuse: dict[str, set[int]] = {lk: set() for lk in cfg.links}
        for x in cfg.xcs.values():
            for d in (x.a_degree, x.z_degree):
                if d is not None and cfg.degrees.get(d) in inuse:
                    inuse[cfg.degrees[d]].add(x.channel)
        want = {lk: tuple(sorted(v)) for lk, v in inuse.items()}
        if xml != self.last:
            self.write(xml)
            self.last = xml
        if want != self.last_inuse:
            body = "".join(
                f'<link><id>{lk}</id><channel-plan xmlns:nc="{NC}" nc:operation="replace">'
                + "".join(f"<in-use>{c}</in-use>" for c in chans) + "</channel-plan></link>"
                for lk, chans in want.items())
            self.write(f'<config><device xmlns="{NS}">{body}</device></config>')
            self.last_inuse = want

    def command(self, line: str) -> str:
        parts = line.split()
        if not parts:
            return ""
        op, args = parts[0], parts[1:]
        if op == "cut":
            self.cut.add(args[0])
        elif op == "repair":
            self.cut.discard(args[0])
            self.repaired_at[args[0]] = time.monotonic()
        elif op == "occupy":
            deg, ch = int(args[0]), int(args[1])
            self.write(f'<config><device xmlns="{NS}"><och-xc><name>local-occupied</name>'
                       f'<path>local</path><channel>{ch}</channel><a-degree>{deg}</a-degree>'
                       f'</och-xc></device></config>')
        elif op == "release":
            self.write(f'<config xmlns:nc="{NC}"><device xmlns="{NS}"><och-xc '
                       f'nc:operation="remove"><name>local-occupied</name></och-xc>'
                       f'</device></config>')
        elif op != "sync":
            return f"err unknown command {op}"
        self.reconcile()
        return f"ok {line}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    a = ap.parse_args(argv)
    agent = Agent(a.name, a.port, a.key)
    notif = agent._connect()
    notif.create_subscription()
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdin() -> None:
        for raw in sys.stdin:
            lines.put(raw.strip())
        lines.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    agent.reconcile()
    print("ok ready", flush=True)
    next_poll = time.monotonic() + 0.5
    while True:
        try:
            line = lines.get(timeout=0.05)
        except queue.Empty:
            line = ""
        if line is None:
            return 0
        try:
            if line:
                print(agent.command(line), flush=True)
            changed = False
            while notif.take_notification(block=False) is not None:
                changed = True
            if changed or time.monotonic() >= next_poll:
                agent.reconcile()
                next_poll = time.monotonic() + 0.5
        except Exception as exc:  # keep the NE alive; report on stdout
            print(f"err {line}: {exc}".replace("\n", " "), flush=True)


if __name__ == "__main__":
    sys.exit(main())
