"""``OpticalDevice`` over NETCONF/SSH (ncclient) — the thin I/O adapter.

Rules:
- ncclient is blocking: each call runs in a worker thread; one RPC session per NE
  (serialised by a lock) plus one notification session.
- ncclient/paramiko exceptions are converted here: transport ⇒ ``ConnectionError``,
  rpc-error ⇒ ``CommitError`` with NE, rpc name, error-tag, error-path and message.
- yuma123 2.13 quirk (seen in the lab): a ``<commit>`` right after ``<validate>`` on the
  candidate answers ``<ok/>`` but leaves running unchanged. So validation is done by
  ``edit-config`` with ``test-option test-then-set`` (the edit is validated before it is
  applied) and a real ``<validate>`` rpc only when ``validate_rpc=True``.
- A lock held by someone else (``lock-denied``) is retried for ``lock_wait_s``.
- ncclient 0.7.1 sends a queued rpc only after its session thread's ``select`` times
  out (``TICK`` = 0.1 s), i.e. ~100 ms per rpc; measured 6 rpcs ≈ 0.6 s per NE. We set
  ``TICK`` to ``NCCLIENT_TICK_S`` (10 ms) before opening sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from controller.errors import CommitError, ConnectionError
from optical.codec import FILTER, parse_notification, parse_snapshot, render_edit
from optical.device import NoticeHandler
from optical.ifstate import GET_DATA, IfState, parse_interfaces
from optical.models import NeEdit, NeSnapshot

log = logging.getLogger("cpn.optical.netconf")
NCCLIENT_TICK_S = 0.01


def tune_ncclient() -> None:
    import ncclient.transport.session as ses
    ses.TICK = NCCLIENT_TICK_S  # type: ignore[attr-defined]


def rpc_error_text(exc: BaseException) -> str:
    tag = getattr(exc, "tag", None) or ""
    path = getattr(exc, "path", None) or ""
    msg = getattr(exc, "message", None) or str(exc)
    return f"{tag}: {msg.strip()}" + (f" (at {path.strip()})" if path else "")


class NetconfDevice:
    """One NE over NETCONF/SSH with key auth."""

    def __init__(self, name: str, host: str, port: int, user: str = "root",
                 key: str | None = None, timeout_s: float = 10.0, validate_rpc: bool = False,
                 lock_wait_s: float = 3.0) -> None:
        self.name, self.host, self.port, self.user, self.key = name, host, port, user, key
        self.timeout_s, self.validate_rpc, self.lock_wait_s = timeout_s, validate_rpc, lock_wait_s
        self._m: Any = None
        self._nm: Any = None
        self._lock = threading.Lock()
        self._confirmed = False
        self._locked = False
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    # --- sessions --------------------------------------------------------------------
    def _connect(self) -> Any:
        from ncclient import manager
        from ncclient.transport.errors import TransportError

        tune_ncclient()
        try:
            return manager.connect(
                host=self.host, port=self.port, username=self.user, key_filename=self.key,
                hostkey_verify=False, allow_agent=False, look_for_keys=False,
                timeout=self.timeout_s)
        except (TransportError, OSError) as exc:
            raise ConnectionError(f"NE {self.name} ({self.host}:{self.port}) unreachable: "
                                  f"{exc}") from None

    def _session(self) -> Any:
        if self._m is None or not self._m.connected:
            self._m = self._connect()
        return self._m

    def _call(self, what: str, fn: Any) -> Any:
        from ncclient.operations.errors import TimeoutExpiredError
        from ncclient.operations.rpc import RPCError
        from ncclient.transport.errors import TransportError

        try:
            return fn(self._session())
        except RPCError as exc:
            raise CommitError(f"NE {self.name}: {what} rejected: {rpc_error_text(exc)}") from None
        except TimeoutExpiredError:
            # the NE did not answer in time: the session's state is unknown, drop it
            with contextlib.suppress(Exception):
                self._m._session.close()  # the transport only: an RPC could hang too
            self._m = None
            raise ConnectionError(f"NE {self.name}: {what}: no reply in time (session "
                                  "dropped)") from None
        except (TransportError, OSError) as exc:
            self._m = None
            raise ConnectionError(f"NE {self.name}: {what} failed, session lost: {exc}") from None

    # --- OpticalDevice ---------------------------------------------------------------
    async def discover(self) -> NeSnapshot:
        return await asyncio.to_thread(self._discover)

    def _discover(self) -> NeSnapshot:
        with self._lock:
            reply = self._call("get", lambda m: m.get(filter=FILTER))
        return parse_snapshot(self.name, reply.data_xml)

    async def interfaces(self) -> dict[str, IfState]:
        """RFC 8343 interface state from the NMDA operational datastore (get-data)."""
        return await asyncio.to_thread(self._interfaces)

    def _interfaces(self) -> dict[str, IfState]:
        from ncclient.xml_ import to_ele
        with self._lock:
            reply = self._call("get-data", lambda m: m.dispatch(to_ele(GET_DATA)))
        return parse_interfaces(self.name, reply.xml)

    async def subscribe(self, handler: NoticeHandler) -> None:
        await asyncio.to_thread(self._subscribe, handler)

    def _subscribe(self, handler: NoticeHandler) -> None:
        self._nm = self._connect()
        self._nm.create_subscription()
        self._stop.clear()
        self._reader = threading.Thread(target=self._read, args=(self._nm, handler),
                                        name=f"ncnotif-{self.name}", daemon=True)
        self._reader.start()

    def _read(self, nm: Any, handler: NoticeHandler) -> None:
        from controller.errors import RemoteProtocolError
        while not self._stop.is_set() and nm.connected:
            n = nm.take_notification(block=True, timeout=0.2)
            if n is None:
                continue
            try:
                handler(parse_notification(self.name, n.notification_xml))
            except RemoteProtocolError as exc:
                log.warning("ignored notification: %s", exc)
        if not self._stop.is_set():
            from optical.codec import Notice
            handler(Notice(self.name, "session-lost"))

    async def prepare(self, edit: NeEdit, confirm_timeout_s: int = 30) -> None:
        await asyncio.to_thread(self._prepare, edit, confirm_timeout_s)

    def _prepare(self, edit: NeEdit, confirm_timeout_s: int) -> None:
        with self._lock:
            deadline = time.monotonic() + self.lock_wait_s
            while True:
                try:
                    self._call("lock", lambda m: m.lock("candidate"))
                    break
                except CommitError as exc:
                    if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            self._locked = True
            try:
                self._call("discard-changes", lambda m: m.discard_changes())
                cfg = render_edit(edit)
                self._call("edit-config", lambda m: m.edit_config(
                    target="candidate", config=cfg, test_option="test-then-set"))
                if self.validate_rpc:
                    self._call("validate", lambda m: m.validate(source="candidate"))
                self._call("commit", lambda m: m.commit(confirmed=True,
                                                       timeout=str(confirm_timeout_s)))
                self._confirmed = True
            except BaseException:
                self._cancel_locked()
                raise

    async def confirm(self) -> None:
        await asyncio.to_thread(self._confirm)

    def _confirm(self) -> None:
        with self._lock:
            self._call("commit", lambda m: m.commit())
            self._confirmed = False
            self._unlock()

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            try:
                self._call("unlock", lambda m: m.unlock("candidate"))
            except (CommitError, ConnectionError) as exc:
                log.warning("NE %s: unlock failed: %s", self.name, exc)

    async def cancel(self) -> None:
        await asyncio.to_thread(self._cancel)

    def _cancel(self) -> None:
        with self._lock:
            self._cancel_locked()

    def _cancel_locked(self) -> None:
        for what, fn, cond in (
                ("cancel-commit", lambda m: m.cancel_commit(), self._confirmed),
                ("discard-changes", lambda m: m.discard_changes(), self._locked)):
            if cond:
                try:
                    self._call(what, fn)
                except (CommitError, ConnectionError) as exc:
                    log.warning("NE %s: %s during rollback failed: %s", self.name, what, exc)
        self._confirmed = False
        self._unlock()

    async def close(self) -> None:
        self._stop.set()
        for m in (self._m, self._nm):
            if m is not None:
                try:
                    await asyncio.to_thread(m.close_session)
                except Exception:
                    pass
        self._m = self._nm = None
