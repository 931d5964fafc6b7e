"""The NETCONF-over-SSH server (RFC 6242) as a controller component — a thin asyncssh
adapter around ``NetconfSession``.

Why asyncssh: it is maintained, asyncio-native (the controller's loop), supports
server-side public-key auth per user and the ``netconf`` subsystem directly. The PyPI
``netconf`` server package needs paramiko < 4 (it imports ``paramiko.dsskey``) and was
last released in 2020; paramiko is threaded, which would put a second concurrency
model into the controller.

Rules:
- Users authenticate with SSH public keys listed in the ``netconf:`` config section;
  each maps to a role (operator / tenant / viewer), as REST tokens do.
- One broken or hostile session (bad framing, oversized message) is closed; the
  server keeps serving the others.
- Store changes become RFC 5277 notifications for subscribed sessions:
  ``placement-changed`` (a job's site), ``alarm`` (metrics overloaded / unavailable /
  stale, raised or cleared; optical NE alarms, polled from the optical controller
  every ``alarm_poll_s``), ``alarm-changed`` (every change of the alarm store: id,
  type, resource, severity, acknowledged, text), ``policy-programmed`` (an SR policy was
  programmed, changed or removed: its oper-state, active candidate path and SIDs, from
  ``srv6``) and
  ``config-changed`` (everything else configurable).
- Plugin kinds notify through their plugin's ``notifications``
  (``controller.netconf.extension``: SR policies → ``policy-programmed``); a change
  of any other configurable list or container is ``config-changed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import asyncssh

from controller.errors import ConnectionError
from controller.events import StateChanged
from controller.logs import key_event
from controller.netconf import extension, xmlmap
from controller.netconf.config import NetconfSection, NetconfUser
from controller.netconf.datastore import Datastores
from controller.netconf.session import NetconfSession, SessionClosed
from controller.netconf.state import optical_source, state_tree
from controller.ops.models import Alarm
from controller.runtime import Runtime

log = logging.getLogger("cpn.netconf")
Q = xmlmap.Q


class _Auth(asyncssh.SSHServer):
    def __init__(self, keys: dict[str, list[asyncssh.SSHKey]]) -> None:
        self._keys = keys

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return any(k.public_data == key.public_data for k in self._keys.get(username, []))


def notifications_for(event: StateChanged) -> list[ET.Element]:
    out = []
    notifiers = extension.notifiers()
    configurable = set(xmlmap.by_kind()) | {c.cls.KIND for c in extension.containers()}
    for ch in event.changes:
        if ch.kind == "job":
            old = getattr(ch.previous, "site", None)
            new = getattr(ch.value, "site", None)
            if new != old:
                e = ET.Element(Q + "placement-changed")
                ET.SubElement(e, Q + "job").text = ch.key
                if new:
                    ET.SubElement(e, Q + "site").text = str(new)
                out.append(e)
        elif ch.kind == "metrics":
            for cond in ("overloaded", "stale"):
                was = bool(getattr(ch.previous, cond, False))
                now = bool(getattr(ch.value, cond, False))
                if was != now:
                    out.append(_alarm(ch.key, cond, cleared=not now))
            was_av = bool(getattr(ch.previous, "available", True))
            now_av = bool(getattr(ch.value, "available", True))
            if was_av != now_av:
                out.append(_alarm(ch.key, "unavailable", cleared=now_av))
        elif ch.kind == Alarm.KIND and isinstance(ch.value, Alarm):
            out.append(_store_alarm(ch.value))
        elif ch.kind in notifiers:
            body = notifiers[ch.kind](ch)
            if body is not None:
                out.append(body)
        elif ch.kind in configurable:
            e = ET.Element(Q + "config-changed")
            ET.SubElement(e, Q + "kind").text = ch.kind
            ET.SubElement(e, Q + "key").text = ch.key
            ET.SubElement(e, Q + "action").text = ch.action.value
            out.append(e)
    return out


def _alarm(key: str, condition: str, cleared: bool, type_id: str | None = None
           ) -> ET.Element:
    e = ET.Element(Q + "alarm")
    ET.SubElement(e, Q + "resource").text = key
    ET.SubElement(e, Q + "condition").text = condition
    if type_id is not None:
        ET.SubElement(e, Q + "alarm-type-id").text = type_id
    ET.SubElement(e, Q + "cleared").text = str(cleared).lower()
    return e


def _store_alarm(a: Alarm) -> ET.Element:
    """An alarm of the alarm store (GBA-6.7) raised, changed, acknowledged or cleared."""
    e = ET.Element(Q + "alarm-changed")
    for name, value in (("id", a.id), ("type", a.type), ("resource", a.resource),
                        ("severity", a.severity.value),
                        ("acknowledged", str(a.acknowledged).lower()), ("text", a.text)):
        ET.SubElement(e, Q + name).text = value
    return e


class NetconfServer:
    name = "netconf"

    def __init__(self, section: NetconfSection) -> None:
        self.section = section
        self._server: asyncssh.SSHAcceptor | None = None
        self.sessions: dict[int, tuple[NetconfSession, Any]] = {}
        self._sub: Any = None
        self._pump: asyncio.Task[None] | None = None
        self._alarm_task: asyncio.Task[None] | None = None
        self.alarm_poll_s = 1.0

    def _keys(self) -> dict[str, list[asyncssh.SSHKey]]:
        keys: dict[str, list[asyncssh.SSHKey]] = {}
        for u in self.section.users:
            try:
                if u.authorized_key:
                    keys.setdefault(u.name, []).append(
                        asyncssh.import_public_key(u.authorized_key))
                if u.authorized_keys_file:
                    for line in Path(u.authorized_keys_file).read_text().splitlines():
                        if line.strip() and not line.lstrip().startswith("#"):
                            keys.setdefault(u.name, []).append(
                                asyncssh.import_public_key(line.strip()))
            except (asyncssh.KeyImportError, OSError, ValueError) as exc:
                raise ConnectionError(f"netconf.users[{u.name}]: bad public key: {exc}") from exc
        return keys

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self.ds = Datastores(rt.store, cfg=rt.cfg)
        self.ds.resume()  # a confirmed commit a crash left unconfirmed is rolled back
        host, _, port = self.section.listen.rpartition(":")
        key_path = Path(self.section.host_key or rt.settings.state / "netconf_host_key")
        if not key_path.exists():
            key_path.parent.mkdir(parents=True, exist_ok=True)
            asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key_path))
            key_path.chmod(0o600)
        users = {u.name: u for u in self.section.users}
        keys = self._keys()

        async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
            await self._serve(process, users)

        try:
            self._server = await asyncssh.listen(
                host.strip("[]"), int(port), server_host_keys=[str(key_path)],
                server_factory=lambda: _Auth(keys), process_factory=handle, encoding=None,
                allow_scp=False, agent_forwarding=False, x11_forwarding=False)
        except OSError as exc:
            raise ConnectionError(f"NETCONF cannot listen on {self.section.listen}: "
                                  f"{exc.strerror}") from exc
        self._sub = rt.bus.subscribe(StateChanged, maxsize=1000)
        self._pump = asyncio.create_task(self._notify_loop())
        self._alarm_task = asyncio.create_task(self._optical_alarm_loop())
        key_event(log, "NETCONF server listening", listen=self.section.listen,
                  users=len(users))

    def _broadcast(self, bodies: list[ET.Element]) -> None:
        for sess, chan in list(self.sessions.values()):
            if not sess.subscribed:
                continue
            for body in bodies:
                with contextlib.suppress(Exception):
                    chan.write(sess.notification(body))

    async def _optical_alarm_loop(self) -> None:
        """Optical NE alarms are not store objects: compare the optical controller's
        alarm list every ``alarm_poll_s`` and notify raised / cleared ones."""
        known: set[tuple[str, str]] = set()
        while True:
            await asyncio.sleep(self.alarm_poll_s)
            optical = optical_source(self.rt)
            now = {(f"{a.ne}:{a.resource}", str(a.type))
                   for a in (optical.alarms() if optical is not None else ())}
            bodies = [_alarm(res, "ne-alarm", False, t) for res, t in sorted(now - known)]
            bodies += [_alarm(res, "ne-alarm", True, t) for res, t in sorted(known - now)]
            known = now
            if bodies:
                self._broadcast(bodies)

    async def _notify_loop(self) -> None:
        while True:
            event = await self._sub.get()
            assert isinstance(event, StateChanged)
            self._broadcast(notifications_for(event))

    def _kill(self, sid: int) -> bool:
        entry = self.sessions.get(sid)
        if entry is None:
            return False
        entry[1].close()
        return True

    async def _serve(self, process: asyncssh.SSHServerProcess[bytes],
                     users: dict[str, NetconfUser]) -> None:
        if process.subsystem != "netconf":
            process.stderr.write(b"only the netconf subsystem is served here\n")
            process.exit(1)
            return
        user = users[process.get_extra_info("username")]
        sess = NetconfSession(self.ds, user.name, user.role, state_xml=lambda: state_tree(
            self.rt), max_message=self.section.max_message_bytes, kill=self._kill)
        self.sessions[sess.id] = (sess, process.stdout)
        log.info("netconf session %d opened by %s (%s)", sess.id, user.name, user.role.value)
        try:
            process.stdout.write(sess.start())
            while not sess.closed:
                data = await process.stdin.read(65536)
                if not data:
                    break
                out = sess.receive(data)
                if out:
                    process.stdout.write(out)
        except SessionClosed as exc:
            log.warning("netconf session %d closed: %s", sess.id, exc)
        except (asyncssh.Error, ConnectionResetError, BrokenPipeError):
            pass
        finally:
            self.sessions.pop(sess.id, None)
            self.ds.release_session(sess.id)
            with contextlib.suppress(Exception):
                process.exit(0)
            log.info("netconf session %d ended", sess.id)

    async def stop(self) -> None:
        if getattr(self, "ds", None) is not None:
            self.ds.stop()  # an unconfirmed commit does not outlive the controller
        for task in (self._pump, self._alarm_task):
            if task is not None:
                task.cancel()
        if self._sub is not None:
            self._sub.close()
        for _, chan in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                chan.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
