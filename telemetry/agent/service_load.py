"""Service-level load as the local service reports it (GBA-6.3).

Two ways for a service to tell its agent how loaded it is, both one line of text:

- UDP datagram to ``127.0.0.1:<service_load_udp>``: ``SERVICE UTIL_PCT QUEUE_DEPTH
  [up|down]`` — e.g. ``echo "video 91.5 12" > /dev/udp/127.0.0.1:9870`` (bash) —
  handled at once, so a spike triggers an immediate threshold report;
- a file (``services[].load_file``) holding ``UTIL_PCT QUEUE_DEPTH`` re-read at every
  collection (atomic rename recommended).

Rules: ``parse_load_line`` is sans-I/O and strict (util 0–100, queue ≥ 0 integer,
known service); bad lines raise ``ValidationError`` and the previous value is kept.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from controller.errors import ValidationError
from telemetry.models import ServiceLoad

log = logging.getLogger("cpn.telemetry.agent")


def parse_load_line(text: str, service: str | None = None,
                    known: set[str] | None = None) -> ServiceLoad:
    """Parse ``[SERVICE] UTIL_PCT QUEUE_DEPTH [up|down]`` (SERVICE only when
    ``service`` is None)."""
    parts = text.split()
    if service is None:
        if not parts:
            raise ValidationError.single("load", "empty line")
        service, parts = parts[0], parts[1:]
    if known is not None and service not in known:
        raise ValidationError.single("load.service", f"unknown service {service!r}",
                                     "list it under services: in the agent config")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("up", "down")):
        raise ValidationError.single("load", f"expected 'UTIL_PCT QUEUE_DEPTH [up|down]', "
                                     f"got {text.strip()[:60]!r}")
    try:
        util, queue = float(parts[0]), int(parts[1])
    except ValueError:
        raise ValidationError.single("load", f"not numbers: {text.strip()[:60]!r}") from None
    if not math.isfinite(util) or not 0 <= util <= 100:
        raise ValidationError.single("load.util_pct", f"{util} not within 0–100")
    if queue < 0:
        raise ValidationError.single("load.queue_depth", f"{queue} is negative")
    return ServiceLoad(service=service, util_pct=util, queue_depth=queue,
                       up=len(parts) < 3 or parts[2] == "up")


class LoadReceiver(asyncio.DatagramProtocol):
    """UDP receiver: each good datagram calls ``on_load(ServiceLoad)``."""

    def __init__(self, known: set[str], on_load: Callable[[ServiceLoad], None]) -> None:
        self.known, self.on_load = known, on_load

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            self.on_load(parse_load_line(data.decode("utf-8", "replace"), known=self.known))
        except ValidationError as exc:
            log.warning("service load datagram refused", extra={"fields": {
                "peer": str(addr), "reason": str(exc)}})
