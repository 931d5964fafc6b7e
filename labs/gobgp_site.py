"""GoBGP at a site: the config and CLI arguments that advertise compute metadata.

Rules:
- Pure functions: data in, TOML text / argv out; the caller runs them (labs run
  ``gobgpd -f FILE`` in a MEC namespace, issue #3).
- ``announce_argv`` uses the configured ``MetadataCodec`` (large communities by
  default) so sites and controller share one metric-id table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telemetry.bgp.codec import ComputeMetadata, LargeCommunityCodec


@dataclass(frozen=True, slots=True)
class GobgpNeighbor:
    """A GoBGP neighbour: ``address``, ``peer_as``, ``passive`` (wait to be called)."""

    address: str
    peer_as: int
    passive: bool = False


def gobgp_toml(asn: int, router_id: str, neighbors: Sequence[GobgpNeighbor],
               local_address: str | None = None, port: int = 179) -> str:
    """A ``gobgpd -f`` TOML config exporting every route to every neighbour."""
    lines = ["[global.config]", f"  as = {asn}", f'  router-id = "{router_id}"',
             f"  port = {port}"]
    if local_address:
        lines.append(f'  local-address-list = ["{local_address}"]')
    lines += ["[global.apply-policy.config]", '  default-export-policy = "accept-route"']
    for n in neighbors:
        lines += ["[[neighbors]]", "  [neighbors.config]",
                  f'    neighbor-address = "{n.address}"', f"    peer-as = {n.peer_as}",
                  "  [neighbors.transport.config]",
                  f"    passive-mode = {'true' if n.passive else 'false'}"]
        if local_address:
            lines.append(f'    local-address = "{local_address}"')
        lines += ["  [neighbors.timers.config]", "    connect-retry = 1",
                  "    hold-time = 9", "    keepalive-interval = 3"]
    return "\n".join(lines) + "\n"


def announce_argv(prefix: str, md: ComputeMetadata, asn: int,
                  api: Sequence[str] = ()) -> list[str]:
    """``gobgp [api] global rib add PREFIX large-community …`` for ``md``."""
    fam = ["-a", "ipv6"] if ":" in prefix else []
    return ["gobgp", *api, "global", "rib", *fam, "add", prefix,
            *LargeCommunityCodec(asn).encode(md)]


def withdraw_argv(prefix: str, api: Sequence[str] = ()) -> list[str]:
    fam = ["-a", "ipv6"] if ":" in prefix else []
    return ["gobgp", *api, "global", "rib", *fam, "del", prefix]
