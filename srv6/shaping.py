"""Slice shaping on Linux links with tc HTB (GBA-6.4.3f: guaranteed bandwidth per slice).

Rules:
- ``plan_htb`` is pure: one egress device, its capacity and the slice ``HtbClass``es
  (``srv6.models``) in, ``tc`` argv lists out. Tree: root ``1:`` htb → ``1:1`` (link
  capacity) → one class per slice (``rate`` = guaranteed, ``ceil``) and a default
  class ``1:fff`` for everything else (borrows up to the link). HTB ``prio``: a slice
  with a delay bound 0 (its packets leave first, so a saturating neighbour's queue does
  not delay them), other slices 1, the default class 7.
- Classification by DSCP with the ``u32`` classifier — the one this lab kernel has
  (``flower``/``fw`` and ``skbedit`` are missing): IPv4 ``ip dsfield`` and, for
  SRv6-encapsulated traffic on transit links, the outer IPv6 traffic class (``ip6
  priority``; the kernel's seg6 encap copies the inner DSCP outward); or by ``fwmark``
  (``u32 match mark``) when something upstream marks packets.
- ``apply`` reconciles: qdisc and classes are ``replace``d (no traffic gap), filters are
  re-installed, classes no longer wanted are deleted. ``read_classes`` reads back.
- Capacity overbooking is refused here too (sum of rates > link): admission proper is
  the slice planner's job; this is the last line of defence.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from controller.errors import CommitError, ValidationError
from srv6.models import HtbClass

DEFAULT_CLASS = "1:fff"


def _mbit(v: float) -> str:
    return f"{round(v * 1000)}kbit"


def plan_htb(dev: str, link_mbps: float, classes: Sequence[HtbClass],
             fwmarks: dict[str, int] | None = None) -> list[list[str]]:
    """tc commands for ``dev``; ``fwmarks`` maps slice name → mark to match as well."""
    total = sum(c.rate_mbps for c in classes)
    if total > link_mbps:
        raise ValidationError.single(
            f"shaping.{dev}", f"slices guarantee {total:g} Mbit/s on a {link_mbps:g} Mbit/s "
            "link", "admit fewer slices or a bigger link")
    ids = [c.classid for c in classes]
    if len(set(ids)) != len(ids) or DEFAULT_CLASS in ids or "1:1" in ids:
        raise ValidationError.single(f"shaping.{dev}", f"class ids collide: {ids}")
    spare = max(link_mbps - total, 0.008)
    cmds = [["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb",
             "default", DEFAULT_CLASS.split(":")[1]],
            ["tc", "class", "replace", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
             "rate", _mbit(link_mbps), "ceil", _mbit(link_mbps)],
            ["tc", "class", "replace", "dev", dev, "parent", "1:1", "classid", DEFAULT_CLASS,
             "htb", "rate", _mbit(spare), "ceil", _mbit(link_mbps), "prio", "7"]]
    filters: list[list[str]] = []
    for c in classes:
        cmds.append(["tc", "class", "replace", "dev", dev, "parent", "1:1", "classid",
                     c.classid, "htb", "rate", _mbit(c.rate_mbps),
                     "ceil", _mbit(min(c.ceil_mbps, link_mbps)), "prio", str(c.prio)])
        # one filter priority per (protocol, class): the kernel refuses mixing protocols
        # under one priority
        def base() -> list[str]:
            return ["tc", "filter", "add", "dev", dev, "parent", "1:", "prio",
                    str(len(filters) + 1)]
        if c.dscp is not None:
            tos = f"{c.dscp << 2:#04x}"
            filters.append([*base(), "protocol", "ip", "u32", "match", "ip", "dsfield", tos,
                            "0xfc", "flowid", c.classid])
            filters.append([*base(), "protocol", "ipv6", "u32", "match", "ip6", "priority",
                            tos, "0xfc", "flowid", c.classid])
        mark = (fwmarks or {}).get(c.slice)
        if mark is not None:
            filters.append([*base(), "protocol", "all", "u32", "match", "mark", str(mark),
                            "0xffffffff", "flowid", c.classid])
    return [*cmds, ["tc", "filter", "del", "dev", dev, "parent", "1:"], *filters]


def _run(netns: str | None, argv: list[str], check: bool = True) -> str:
    full = ["ip", "netns", "exec", netns, *argv] if netns else argv
    res = subprocess.run(full, capture_output=True, text=True, timeout=10)
    if check and res.returncode != 0:
        raise CommitError(f"{' '.join(argv)}: {res.stderr.strip()}")
    return res.stdout


_CLASS = re.compile(r"^class htb (?P<id>\S+) .*?(?:prio (?P<prio>\d+) )?rate (?P<rate>\S+) "
                    r"ceil (?P<ceil>\S+)")
_STATS = re.compile(r"Sent (?P<bytes>\d+) bytes (?P<packets>\d+) pkt \(dropped (?P<drops>\d+), "
                    r"overlimits (?P<overlimits>\d+)")


def parse_tc_classes(text: str) -> dict[str, dict[str, str | int]]:
    """Sans-I/O parser of ``tc -s class show`` (iproute2 6.1 prints htb classes as text
    even with ``-j``): classid → rate, ceil, prio, bytes, packets, drops, overlimits."""
    out: dict[str, dict[str, str | int]] = {}
    current: dict[str, str | int] | None = None
    for line in text.splitlines():
        if m := _CLASS.match(line):
            current = {"rate": m["rate"], "ceil": m["ceil"]}
            if m["prio"] is not None:
                current["prio"] = int(m["prio"])
            out[m["id"]] = current
        elif current is not None and (m := _STATS.search(line)):
            current.update({k: int(v) for k, v in m.groupdict().items()})
    return out


def read_classes(dev: str, netns: str | None = None) -> dict[str, dict[str, str | int]]:
    """classid → rate/ceil and statistics, read back from the kernel."""
    return parse_tc_classes(_run(netns, ["tc", "-s", "class", "show", "dev", dev]))


def apply(dev: str, link_mbps: float, classes: Sequence[HtbClass], netns: str | None = None,
          fwmarks: dict[str, int] | None = None) -> list[str]:
    """Reconcile ``dev`` to the plan; returns the classids removed as stale."""
    cmds = plan_htb(dev, link_mbps, classes, fwmarks)
    if "qdisc htb 1: root" in _run(netns, ["tc", "qdisc", "show", "dev", dev]):
        cmds = cmds[1:]  # htb refuses a root "change" here; the tree is reconciled below
    for argv in cmds:
        # deleting filters that are not there is fine; everything else must work
        _run(netns, argv, check=argv[:3] != ["tc", "filter", "del"])
    keep = {"1:1", DEFAULT_CLASS, *(c.classid for c in classes)}
    stale = [cid for cid in read_classes(dev, netns) if cid not in keep]
    for cid in stale:
        _run(netns, ["tc", "class", "del", "dev", dev, "classid", cid])
    return stale
