"""Controller-side driver of the OpenFlow steering app (``openflow_app``, own process).

Rules: sans-eventlet (plain sockets); one JSON line per request; an app error reply
becomes ``CommitError``, a dead socket ``ConnectionError``. ``of_rule`` renders a
``SteeringMatch`` into the app's rule format (IPv4; DSCP matched natively here, unlike
Linux FIB rules).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from controller.errors import CommitError, ConnectionError, ValidationError
from srv6.models import SteeringMatch

_PROTO = {"icmp": 1, "tcp": 6, "udp": 17}


def of_rule(match: SteeringMatch, priority: int = 100, output: int | str = "normal",
            set_dscp: int | None = None, set_eth_dst: str | None = None,
            set_ipv4_dst: str | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"eth_type": 0x0800}
    if match.src:
        m["ipv4_src"] = match.src.split("/")[0] if match.src.endswith("/32") or "/" not in \
            match.src else (match.src.split("/")[0], _mask(match.src))
    if match.dst:
        m["ipv4_dst"] = match.dst.split("/")[0] if match.dst.endswith("/32") or "/" not in \
            match.dst else (match.dst.split("/")[0], _mask(match.dst))
    if match.protocol:
        if match.protocol not in _PROTO:
            raise ValidationError.single("match.protocol", f"unknown {match.protocol!r}")
        m["ip_proto"] = _PROTO[match.protocol]
    for field, key in (("src_ports", "src"), ("dst_ports", "dst")):
        ports = getattr(match, field)
        if ports:
            if "-" in ports:
                raise ValidationError.single(f"match.{field}", "OpenFlow matches one port",
                                             "split the range into rules")
            if match.protocol not in ("udp", "tcp"):
                raise ValidationError.single("match.protocol", "ports need udp or tcp")
            m[f"{match.protocol}_{key}"] = int(ports)
    if match.dscp is not None:
        m["ip_dscp"] = match.dscp
    rule: dict[str, Any] = {"priority": priority, "match": m, "output": output}
    if set_dscp is not None:
        rule["set_dscp"] = set_dscp
    if set_eth_dst:
        rule["set_eth_dst"] = set_eth_dst
    if set_ipv4_dst:
        rule["set_ipv4_dst"] = set_ipv4_dst
    return rule


def _mask(prefix: str) -> str:
    import ipaddress

    return str(ipaddress.ip_network(prefix, strict=False).netmask)


class OpenFlowSteering:
    """Talks to a running ``openflow_app`` on 127.0.0.1:``api`` (a port number) or on the
    Unix socket ``api`` (a path)."""

    def __init__(self, api: int | str, timeout: float = 5.0) -> None:
        self.addr: tuple[str, int] | str = ("127.0.0.1", api) if isinstance(api, int) else api
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        if isinstance(self.addr, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self.addr)
            except OSError:
                s.close()
                raise
            return s
        return socket.create_connection(self.addr, timeout=self.timeout)

    def _call(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            with self._connect() as s:
                f = s.makefile("rwb")
                f.write(json.dumps(req).encode() + b"\n")
                f.flush()
                line = f.readline()
        except OSError as exc:
            raise ConnectionError(f"openflow steering app {self.addr}: {exc}") from exc
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise CommitError(f"openflow steering: {reply.get('error')}")
        return reply

    def datapaths(self) -> list[int]:
        return list(self._call({"op": "status"})["datapaths"])

    def apply(self, rules: list[dict[str, Any]]) -> int:
        return int(self._call({"op": "apply", "rules": rules})["installed"])
