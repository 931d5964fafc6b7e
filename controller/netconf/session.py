"""One NETCONF session, sans-I/O: bytes in, bytes out (RFC 6241, RFC 5277, NACM-style).

Rules:
- ``start()`` returns the server hello; ``receive(data)`` returns the bytes to send
  back (replies, in order). Nothing here touches a socket.
- The server hello advertises base:1.0 and base:1.1, :candidate, :confirmed-commit:1.1,
  :validate:1.1, :rollback-on-error, :notification, :interleave and the ``cpn`` module.
  Chunked framing starts right after both hellos when both sides speak base:1.1.
- Malformed XML, a DOCTYPE, or a message with no message-id ⇒ rpc-error
  (malformed-message); broken framing or an oversized message ⇒ the session closes.
- Authorisation (NACM-style, RFC 8341): operators may do everything; viewers and
  tenants only read (get, get-config, subscriptions) — any other operation is refused
  with ``access-denied``.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from controller.errors import RemoteProtocolError
from controller.models import Role
from controller.netconf import framing, library, xmlmap
from controller.netconf.datastore import Datastores, RpcError
from controller.netconf.xmlmap import BASE_NS

NC = f"{{{BASE_NS}}}"
NOTIF_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
BASE11 = "urn:ietf:params:netconf:base:1.1"
NCM = f"{{{library.NCM_NS}}}"
#: protocol capabilities; the module ones come from ``library.capabilities()``
BASE_CAPABILITIES = (
    "urn:ietf:params:netconf:base:1.0",
    BASE11,
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:validate:1.1",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
    "urn:ietf:params:netconf:capability:notification:1.0",
    "urn:ietf:params:netconf:capability:interleave:1.0",
)
READ_OPS = frozenset({"get", "get-config", "close-session", "create-subscription",
                      "get-schema"})


def capabilities() -> list[str]:
    return [*BASE_CAPABILITIES, *library.capabilities()]

_ids = itertools.count(1)

ET.register_namespace("", BASE_NS)


class SessionClosed(Exception):
    """The session ended (close-session, kill-session or a framing error)."""


def _q(tag: str) -> str:
    return tag.split("}", 1)[-1]


class NetconfSession:
    """A server-side NETCONF session for one authenticated user."""

    def __init__(self, ds: Datastores, user: str, role: Role, *, state_xml: Any = None,
                 max_message: int = 16 * 1024 * 1024, kill: Any = None) -> None:
        self.id = next(_ids)
        self.ds = ds
        self.user = user
        self.role = role
        self.decoder = framing.FrameDecoder(max_message)
        self.hello_done = False
        self.chunked = False
        self.subscribed = False
        self.closed = False
        self._state_xml = state_xml  # callable -> Element of config false data
        self._kill = kill  # callable(session_id) -> bool

    # -- hello -----------------------------------------------------------------------
    def start(self) -> bytes:
        hello = ET.Element(NC + "hello")
        caps = ET.SubElement(hello, NC + "capabilities")
        for cap in capabilities():
            ET.SubElement(caps, NC + "capability").text = cap
        ET.SubElement(hello, NC + "session-id").text = str(self.id)
        return framing.encode(self._xml(hello), False)

    def _xml(self, el: ET.Element) -> bytes:
        return b'<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(el)

    def _send(self, el: ET.Element) -> bytes:
        return framing.encode(self._xml(el), self.chunked)

    # -- input -------------------------------------------------------------------------
    def receive(self, data: bytes) -> bytes:
        """Feed bytes; returns replies to send. Raises ``SessionClosed`` at the end."""
        out = bytearray()
        seq = self.ds.store.last_seq()
        try:
            self.decoder.feed(data)
            for msg in self.decoder.messages():
                out += self._handle(msg)
                if self.closed:
                    break
        except RemoteProtocolError as exc:
            self.closed = True
            raise SessionClosed(f"framing error: {exc}") from exc
        if out and self.ds.store.last_seq() != seq:
            # acknowledged means durable: what the replies report is on disk before they
            # leave (the SQLite store's group fsync; absent on a store whose commits are
            # durable already, etcd)
            durable = getattr(self.ds.store, "make_durable", None)
            if durable is not None:
                durable()
        return bytes(out)

    def _handle(self, msg: bytes) -> bytes:
        if b"<!DOCTYPE" in msg or b"<!ENTITY" in msg:
            return self._error_reply(None, RpcError("malformed-message",
                                                    "DTDs and entities are not allowed", "rpc"))
        try:
            root = ET.fromstring(msg)
        except ET.ParseError as exc:
            if not self.hello_done:
                self.closed = True
                raise SessionClosed(f"malformed hello: {exc}") from exc
            return self._error_reply(None, RpcError("malformed-message",
                                                    f"not well-formed XML: {exc}", "rpc"))
        if not self.hello_done:
            return self._hello(root)
        if root.tag != NC + "rpc":
            return self._error_reply(None, RpcError("malformed-message", f"expected <rpc>, "
                                                    f"got <{_q(root.tag)}>", "rpc"))
        mid = root.get("message-id")
        if mid is None:
            return self._error_reply(root, RpcError("missing-attribute", "rpc without "
                                                    "message-id", "rpc",
                                                    info={"bad-attribute": "message-id",
                                                          "bad-element": "rpc"}))
        ops = [c for c in root if isinstance(c.tag, str)]
        if len(ops) != 1:
            return self._error_reply(root, RpcError("malformed-message",
                                                    "an rpc must hold exactly one operation",
                                                    "rpc"))
        try:
            reply = self._dispatch(ops[0])
        except RpcError as err:
            return self._error_reply(root, err)
        return self._reply(root, reply)

    def _hello(self, root: ET.Element) -> bytes:
        if root.tag != NC + "hello":
            self.closed = True
            raise SessionClosed("expected a <hello> first")
        caps = {(c.text or "").strip() for c in root.iter(NC + "capability")}
        if root.find(NC + "session-id") is not None:
            self.closed = True
            raise SessionClosed("a client hello must not carry a session-id")
        if not caps & {"urn:ietf:params:netconf:base:1.0", BASE11}:
            self.closed = True
            raise SessionClosed("client speaks no common base capability")
        self.hello_done = True
        if BASE11 in caps:
            self.chunked = True
            self.decoder.chunked = True
        return b""

    # -- replies -----------------------------------------------------------------------
    def _reply(self, rpc: ET.Element, body: ET.Element | None) -> bytes:
        reply = ET.Element(NC + "rpc-reply", dict(rpc.attrib))
        if body is None:
            ET.SubElement(reply, NC + "ok")
        else:
            reply.append(body)
        return self._send(reply)

    def _error_reply(self, rpc: ET.Element | None, err: RpcError) -> bytes:
        reply = ET.Element(NC + "rpc-reply", dict(rpc.attrib) if rpc is not None else {})
        e = ET.SubElement(reply, NC + "rpc-error")
        ET.SubElement(e, NC + "error-type").text = err.type
        ET.SubElement(e, NC + "error-tag").text = err.tag
        ET.SubElement(e, NC + "error-severity").text = err.severity
        if err.app_tag:
            ET.SubElement(e, NC + "error-app-tag").text = err.app_tag
        if err.path:
            ET.SubElement(e, NC + "error-path").text = err.path
        msg = ET.SubElement(e, NC + "error-message")
        msg.text = err.message
        msg.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        if err.info:
            info = ET.SubElement(e, NC + "error-info")
            for k, v in err.info.items():
                ET.SubElement(info, NC + k).text = v
        return self._send(reply)

    # -- operations --------------------------------------------------------------------
    def _dispatch(self, op: ET.Element) -> ET.Element | None:
        name = _q(op.tag)
        if op.tag.startswith(f"{{{NOTIF_NS}}}") and name == "create-subscription":
            self._subscribe()
            return None
        if op.tag == NCM + "get-schema":
            return self._get_schema(op)
        if not op.tag.startswith(NC):
            raise RpcError("operation-not-supported", f"unknown operation {op.tag!r}",
                           "protocol")
        if self.role is not Role.OPERATOR and name not in READ_OPS:
            raise RpcError("access-denied", f"user {self.user!r} with role "
                           f"{self.role.value} may not perform {name}", "protocol")
        handler = getattr(self, "_op_" + name.replace("-", "_"), None)
        if handler is None:
            raise RpcError("operation-not-supported", f"{name} is not supported", "protocol")
        result: ET.Element | None = handler(op)
        return result

    @staticmethod
    def _target(op: ET.Element, which: str) -> str:
        holder = op.find(NC + which)
        if holder is None or len(holder) != 1:
            raise RpcError("missing-element", f"<{which}> must name one datastore",
                           "protocol", info={"bad-element": which})
        return _q(holder[0].tag)

    def _data(self, trees: list[ET.Element], op: ET.Element) -> ET.Element:
        data = ET.Element(NC + "data")
        flt = op.find(NC + "filter")
        if flt is None:
            data.extend(trees)
            return data
        if flt.get("type", "subtree") != "subtree":
            raise RpcError("invalid-value", "only subtree filters are supported", "protocol",
                           info={"bad-attribute": "type"})
        for sel in flt:
            for tree in trees:
                picked = subtree_filter(tree, sel)
                if picked is not None:
                    data.append(picked)
        return data

    def _op_get_config(self, op: ET.Element) -> ET.Element:
        src = self._target(op, "source")
        return self._data([xmlmap.config_tree(self.ds.view(src))], op)

    def _op_get(self, op: ET.Element) -> ET.Element:
        tree = xmlmap.config_tree(self.ds.view("running"))
        if self._state_xml is not None:
            tree.append(self._state_xml())
        return self._data([tree, library.yang_library_xml(), library.modules_state_xml(),
                           library.netconf_state_xml(capabilities(), self.ds.lock_state())],
                          op)

    def _get_schema(self, op: ET.Element) -> ET.Element:
        ident = (op.findtext(NCM + "identifier") or "").strip()
        if not ident:
            raise RpcError("missing-element", "get-schema needs <identifier>", "protocol",
                           info={"bad-element": "identifier"})
        try:
            text = library.get_schema(ident, op.findtext(NCM + "version"),
                                      op.findtext(NCM + "format"))
        except library.SchemaError as exc:
            raise RpcError(exc.tag, str(exc), "application", app_tag=exc.app_tag) from exc
        data = ET.Element(NCM + "data")
        data.text = text
        return data

    def _op_edit_config(self, op: ET.Element) -> None:
        target = self._target(op, "target")
        default = (op.findtext(NC + "default-operation") or "merge").strip()
        if default not in ("merge", "replace", "none"):
            raise RpcError("invalid-value", f"bad default-operation {default!r}", "protocol")
        err_opt = (op.findtext(NC + "error-option") or "stop-on-error").strip()
        if err_opt not in ("stop-on-error", "rollback-on-error"):
            raise RpcError("operation-not-supported", f"error-option {err_opt} not supported "
                           "(edits are all-or-nothing)", "protocol")
        config = op.find(NC + "config")
        if config is None:
            raise RpcError("missing-element", "edit-config needs <config>", "protocol",
                           info={"bad-element": "config"})
        self.ds.edit(target, config, self.id, default)

    def _op_validate(self, op: ET.Element) -> None:
        holder = op.find(NC + "source")
        if holder is not None and len(holder) == 1 and holder[0].tag == NC + "config":
            self.ds.validate_config(holder[0])  # :validate:1.1 — an inline <config>
            return
        self.ds.validate(self._target(op, "source"))

    def _op_commit(self, op: ET.Element) -> None:
        confirmed = op.find(NC + "confirmed") is not None
        timeout = (op.findtext(NC + "confirm-timeout") or "").strip()
        # RFC 6241 §8.4.5.1: confirm-timeout is a uint32 of seconds, 1 and up
        if timeout and (not timeout.isdigit() or not 0 < int(timeout) < 2**32):
            raise RpcError("invalid-value", f"confirm-timeout {timeout!r} is not a whole "
                           "number of seconds from 1 to 4294967295", "protocol",
                           info={"bad-element": "confirm-timeout"})
        persist = op.findtext(NC + "persist")
        persist_id = op.findtext(NC + "persist-id")
        if not confirmed and (timeout or persist is not None):
            raise RpcError("invalid-value", "confirm-timeout and persist go with <confirmed/>",
                           "protocol", info={"bad-element": "confirm-timeout" if timeout
                                             else "persist"})
        self.ds.commit(self.id, self.user, confirmed=confirmed,
                       timeout_s=float(timeout) if timeout else 600.0,
                       persist=persist.strip() if persist is not None else None,
                       persist_id=persist_id.strip() if persist_id is not None else None)

    def _op_cancel_commit(self, op: ET.Element) -> None:
        persist_id = op.findtext(NC + "persist-id")
        self.ds.cancel_commit(self.id, self.user,
                              persist_id.strip() if persist_id is not None else None)

    def _op_discard_changes(self, op: ET.Element) -> None:
        self.ds.discard()

    def _op_copy_config(self, op: ET.Element) -> None:
        target = self._target(op, "target")
        holder = op.find(NC + "source")
        if holder is None or len(holder) != 1:
            raise RpcError("missing-element", "<source> must name one datastore or hold "
                           "<config>", "protocol", info={"bad-element": "source"})
        src = holder[0]
        if src.tag == NC + "config":
            self.ds.copy(target, None, src, self.id)
        else:
            self.ds.copy(target, _q(src.tag), None, self.id)

    def _op_lock(self, op: ET.Element) -> None:
        self.ds.lock(self._target(op, "target"), self.id)

    def _op_unlock(self, op: ET.Element) -> None:
        self.ds.unlock(self._target(op, "target"), self.id)

    def _op_close_session(self, op: ET.Element) -> None:
        self.closed = True

    def _op_kill_session(self, op: ET.Element) -> None:
        sid = (op.findtext(NC + "session-id") or "").strip()
        if not sid.isdigit() or int(sid) == self.id:
            raise RpcError("invalid-value", "kill-session needs another session's id",
                           "protocol")
        if self._kill is None or not self._kill(int(sid)):
            raise RpcError("invalid-value", f"no session {sid}", "protocol")

    def _subscribe(self) -> None:
        if self.subscribed:
            raise RpcError("operation-failed", "already subscribed", "protocol")
        self.subscribed = True

    def notification(self, body: ET.Element) -> bytes:
        n = ET.Element(f"{{{NOTIF_NS}}}notification")
        ET.SubElement(n, f"{{{NOTIF_NS}}}eventTime").text = \
            datetime.now(UTC).isoformat().replace("+00:00", "Z")
        n.append(body)
        return self._send(n)


def subtree_filter(data: ET.Element, sel: ET.Element) -> ET.Element | None:
    """RFC 6241 §6 subtree filtering of ``data`` by selection node ``sel`` (same level)."""
    if sel.tag != data.tag:
        return None
    children = [c for c in sel if isinstance(c.tag, str)]
    if not children:
        text = (sel.text or "").strip()
        if text and (data.text or "").strip() != text:
            return None
        return data  # selection node: the whole subtree
    matches = [c for c in children if not len(c) and (c.text or "").strip()]
    for m in matches:  # content-match nodes: all must match a child
        if not any(d.tag == m.tag and (d.text or "").strip() == (m.text or "").strip()
                   for d in data):
            return None
    out = ET.Element(data.tag, dict(data.attrib))
    others = [c for c in children if c not in matches]
    if not others:
        for d in data:
            out.append(d)
        return out
    for m in matches:
        for d in data:
            if d.tag == m.tag:
                out.append(d)
    for s in others:
        for d in data:
            picked = subtree_filter(d, s)
            if picked is not None and picked not in out:
                out.append(picked)
    return out
