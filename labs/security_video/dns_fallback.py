"""Minimal DNS responder for the lab, used only when ``dns_compute.plugin`` is absent.

Rules:
- Answers ``<svc>.svc.<zone>``: A/AAAA = the service's anycast addresses (the address
  the network steers), TXT = ``site=<S> address=<A>`` — the instance the flow
  controller currently steers to, so a new answer names MEC-2 after a handover.
- Anything else: NXDOMAIN; malformed queries are dropped. Real UDP on the
  controller's ``--dns`` address.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from controller.models import Service
from controller.runtime import Runtime

log = logging.getLogger("cpn.labs.dns")


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = self.answer(data)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


class FallbackDns:
    name = "labs-dns"

    def __init__(self, flows: Any) -> None:
        self.flows = flows
        self.rt: Runtime | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def answer(self, data: bytes) -> bytes | None:
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        assert self.rt is not None
        try:
            q = dns.message.from_wire(data)
        except Exception:
            return None
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA  # type: ignore[attr-defined]
        if not q.question:
            return None
        qn = q.question[0]
        name = qn.name.to_text(omit_final_dot=True).lower()
        suffix = f".svc.{self.rt.zone}".lower()
        svc = None
        if name.endswith(suffix):
            svc = self.rt.store.get(Service, name[: -len(suffix)])
        if svc is None:
            r.set_rcode(dns.rcode.NXDOMAIN)
            return bytes(r.to_wire())
        if qn.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            ver = 4 if qn.rdtype == dns.rdatatype.A else 6
            addrs = [str(a) for a in svc.anycast if a.version == ver]
            if addrs:
                r.answer.append(dns.rrset.from_text_list(qn.name, 5, "IN", qn.rdtype, addrs))
        elif qn.rdtype == dns.rdatatype.TXT:
            site = self.flows.current.get(svc.name) if self.flows else None
            inst = next((i for i in svc.instances if i.site == site), None)
            if inst is not None:
                r.answer.append(dns.rrset.from_text(
                    qn.name, 5, "IN", "TXT", f'"site={site} address={inst.address}"'))
        return bytes(r.to_wire())

    async def start(self, rt: Runtime) -> None:
        import dns.flags  # noqa: F401  (used in answer)

        self.rt = rt
        host, port = rt.settings.dns
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Proto(self.answer), local_addr=(host, port))
        self.transport = transport
        log.info("lab DNS responder on %s:%d (dns_compute responder not installed)", host, port)

    async def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()
