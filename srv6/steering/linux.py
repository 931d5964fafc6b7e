"""Linux steering backend (CATS C-TC, GBA-6.4.3c): classify traffic into SR policies with
policy-routing rules on the headend.

Rules:
- A policy is steered-to by a routing *table* holding its seg6 route (``Seg6Route`` with
  ``table=``, programmed by a ``PolicyProgrammer``); an ``IpRule`` sends matching packets
  to that table. Selectors are the kernel's own (``ip rule``): from/to prefix,
  ``ipproto``, ``sport``/``dport`` (single or range), ``fwmark``, legacy ``tos``. No
  netfilter package is needed for 5-tuple steering.
- DSCP: IPv4 FIB rules only accept the legacy TOS bits (``tos & ~0x1e`` is refused by
  the kernel: "Invalid tos"), so only DSCP 0..7 is matched natively (``tos``). Other
  DSCP classes need an ``fwmark`` set by a classifier; this lab kernel has neither
  ``flower``/``fw`` classifiers nor the ``skbedit`` action, and no netfilter binaries, so
  such rules are refused with a ValidationError pointing at the OpenFlow backend
  (which matches ``ip_dscp`` on the access switch) or an ``fwmark`` the caller sets.
- Every rule CPN installs has ``protocol RTPROT_CPN``; only those are read, reconciled
  or deleted. Reconcile (``apply``) is idempotent: missing rules added, stale removed.
- Flow affinity (RFC 10053 instance affinity; issue 4 §5): ``pin_flows`` turns flows
  that are already running into exact 5-tuple rules on their current table, placed
  before the service's general rule, so moving the service moves only new flows —
  unless the service allows migration, then no pins are made.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from controller.errors import CommitError, ValidationError
from srv6.dataplane.state import RTPROT_CPN
from srv6.models import SteeringMatch


@dataclass(frozen=True, slots=True, order=True)
class IpRule:
    """One policy-routing rule: ``priority`` (lower first), ``table`` (policy table),
    selectors ``src``/``dst`` (prefixes), ``ipproto``, ``sport``/``dport`` (``"80"`` or
    ``"1000-2000"``), ``fwmark``; ``family`` 4 or 6."""

    priority: int
    table: int
    family: int = 4
    src: str | None = None
    dst: str | None = None
    ipproto: str | None = None
    sport: str | None = None
    dport: str | None = None
    fwmark: int | None = None
    tos: int | None = None

    def args(self) -> list[str]:
        out = ["priority", str(self.priority)]
        if self.src:
            out += ["from", self.src]
        if self.dst:
            out += ["to", self.dst]
        if self.ipproto:
            out += ["ipproto", self.ipproto]
        if self.sport:
            out += ["sport", self.sport]
        if self.dport:
            out += ["dport", self.dport]
        if self.fwmark is not None:
            out += ["fwmark", hex(self.fwmark)]
        if self.tos is not None:
            out += ["tos", hex(self.tos)]
        return [*out, "table", str(self.table), "protocol", str(RTPROT_CPN)]


@dataclass(frozen=True, slots=True)
class Flow:
    """A running flow (5-tuple) to keep on its instance."""

    src: str
    dst: str
    ipproto: str
    sport: int
    dport: int


def _pfx(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValidationError.single(where, f"{value!r} is not a prefix") from None


def rule_for(match: SteeringMatch, table: int, priority: int,
             fwmark: int | None = None) -> IpRule:
    """The rule steering ``match`` into ``table`` (see the DSCP rule above)."""
    tos = None
    if match.dscp is not None and fwmark is None:
        if match.dscp > 7:
            raise ValidationError.single(
                "match.dscp", f"DSCP {match.dscp} cannot be matched by a Linux FIB rule "
                "(only TOS bits 0x1e, i.e. DSCP 0..7)",
                "steer DSCP on the OpenFlow access switch, or mark the flow (fwmark)")
        tos = match.dscp << 2
    src, dst = _pfx(match.src, "match.src"), _pfx(match.dst, "match.dst")
    fams = {ipaddress.ip_network(p).version for p in (src, dst) if p}
    if len(fams) > 1:
        raise ValidationError.single("match", "src and dst are of different IP families")
    if (match.src_ports or match.dst_ports) and match.protocol not in ("udp", "tcp", "sctp"):
        raise ValidationError.single("match.protocol", "ports need protocol udp/tcp/sctp")
    return IpRule(priority=priority, table=table, family=fams.pop() if fams else 4,
                  src=src, dst=dst, ipproto=match.protocol, sport=match.src_ports,
                  dport=match.dst_ports, fwmark=fwmark, tos=tos)


def pin_flows(flows: Iterable[Flow], table: int, first_priority: int,
              allow_migration: bool) -> list[IpRule]:
    """Exact-match rules keeping running ``flows`` on ``table`` (none if migration is
    allowed). Priorities count up from ``first_priority``."""
    if allow_migration:
        return []
    out = []
    for i, f in enumerate(sorted(flows, key=lambda f: (f.src, f.dst, f.sport, f.dport))):
        fam = ipaddress.ip_address(f.src).version
        host = 32 if fam == 4 else 128
        out.append(IpRule(priority=first_priority + i, table=table, family=fam,
                          src=f"{f.src}/{host}", dst=f"{f.dst}/{host}", ipproto=f.ipproto,
                          sport=str(f.sport), dport=str(f.dport)))
    return out


def _from_json(d: dict[str, object], family: int) -> IpRule | None:
    if str(d.get("protocol")) != str(RTPROT_CPN):
        return None

    def pfx(key: str) -> str | None:
        addr = d.get(key)
        if addr in (None, "all"):
            return None
        return str(ipaddress.ip_network(f"{addr}/{d.get(key + 'len', 32 if family == 4 else 128)}"))

    def port(key: str) -> str | None:
        v = d.get(key)
        if v is None:
            start, end = d.get(key + "_start"), d.get(key + "_end")
            return None if start is None else f"{start}-{end}"
        return str(v)

    mark, tos = d.get("fwmark"), d.get("tos")
    return IpRule(priority=int(str(d["priority"])), table=int(str(d["table"])), family=family,
                  src=pfx("src"), dst=pfx("dst"),
                  ipproto=str(d["ipproto"]) if d.get("ipproto") else None,
                  sport=port("sport"), dport=port("dport"),
                  fwmark=int(str(mark), 16) if mark is not None else None,
                  tos=int(str(tos), 16) if tos not in (None, "default") else None)


class LinuxSteering:
    """Reads and reconciles CPN's ``ip rule``s in namespace ``netns``."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def _ip(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        base = ["ip", "-n", self.netns] if self.netns else ["ip"]
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=10)

    def read_actual(self) -> set[IpRule]:
        out: set[IpRule] = set()
        for fam in (4, 6):
            res = self._ip([f"-{fam}", "-j", "rule", "show"])
            if res.returncode != 0:
                raise CommitError(f"ip rule show failed: {res.stderr.strip()}")
            for d in json.loads(res.stdout or "[]"):
                rule = _from_json(d, fam)
                if rule is not None:
                    out.add(rule)
        return out

    def apply(self, desired: Iterable[IpRule]) -> tuple[list[IpRule], list[IpRule]]:
        """Reconcile to ``desired``: returns (added, removed). New rules go in before
        stale ones are removed (make-before-break); a failed add undoes the adds."""
        want, have = set(desired), self.read_actual()
        added: list[IpRule] = []
        for rule in sorted(want - have):
            res = self._ip([f"-{rule.family}", "rule", "add", *rule.args()])
            if res.returncode != 0:
                for r in added:
                    self._ip([f"-{r.family}", "rule", "del", *r.args()])
                raise CommitError(f"ip rule add {' '.join(rule.args())}: {res.stderr.strip()}")
            added.append(rule)
        removed = sorted(have - want)
        for rule in removed:
            self._ip([f"-{rule.family}", "rule", "del", *rule.args()])
        return added, removed

