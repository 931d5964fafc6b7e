"""SRv6 on a Linux kernel without seg6 lwtunnels: eBPF H.Encaps + the IPv6 core's SRH.

Some kernels are built without ``CONFIG_IPV6_SEG6_LWTUNNEL`` (``encap seg6`` and
``encap seg6local`` routes fail with "lwt encapsulation type not supported") but keep
``CONFIG_LWTUNNEL_BPF`` and the IPv6 core's own SRH processing (LAB-NOTES). On such a
kernel CPN programs the same ``Seg6Route``/``Seg6LocalRoute`` state this way:

- **H.Encaps** (RFC 8986 §5.1): the steering route carries an eBPF ``LWT_XMIT`` program
  that pushes the outer IPv6 header + SRH (RFC 8754) with
  ``bpf_lwt_push_encap(BPF_LWT_ENCAP_IP)`` and returns ``BPF_LWT_REROUTE``, so the kernel
  routes the packet towards the first segment. The program copies the inner DSCP/TC
  outward (as the kernel's seg6 encap does: slices classify on it) and computes the
  outer payload length from ``skb->len`` (the kernel does not fix it). It is assembled
  here from a fixed instruction pattern — no compiler is needed on the node.
- **Local SIDs**: a ``local`` route for the SID (same table, device and metric as the
  ``Seg6LocalRoute``). The IPv6 core then runs End (segments left − 1, new destination,
  forwarded) and, at segments left 0 with an inner IPv4/IPv6 packet, decapsulates and
  re-routes the inner packet. It needs ``seg6_enabled`` on ``all`` and on the ingress
  device (the kernel takes the minimum of the two). A SID with a next hop (End.X nh6,
  End.DX4 nh4, End.DX6 nh6) carries an ``in`` program that marks the packet; a
  ``fwmark`` rule sends marked packets to a table of their own holding
  ``default via nh`` (``mark_of``), so the next hop is honoured as with seg6local.
- **Read-back**: every route carries a name (``LWT_BPF_PROG_NAME``, returned by route
  dumps) that spells what was programmed: ``cpn-h.encaps segs=A,B,C`` on a steering
  route, ``cpn-sid End.DX4 nh4=10.0.0.2`` on a local SID (an ``in`` program that only
  returns ``BPF_OK``). ``decode_name`` turns it back into the route's fields, so drift
  detection and make-before-break read the node exactly as with seg6 lwtunnels.
- H.Insert (``inline`` mode) cannot be built this way: refused with the fix (use encap).

Everything but ``load_program``, ``kernel_has_seg6_lwtunnel`` and ``enable_srh`` is pure.
"""

from __future__ import annotations

import ctypes
import functools
import ipaddress
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import Literal

from controller.errors import CommitError

from .rtnl import in_netns

Seg6Dataplane = Literal["lwtunnel", "bpf"]

# -- eBPF encoding (uapi/linux/bpf.h) -------------------------------------------------
_SYS_BPF = {"x86_64": 321, "aarch64": 280}
BPF_PROG_LOAD = 5
PROG_LWT_IN, PROG_LWT_XMIT = 10, 12
BPF_OK, BPF_DROP, BPF_LWT_REROUTE = 0, 2, 128
BPF_LWT_ENCAP_IP = 2
HELPER_SKB_LOAD_BYTES, HELPER_LWT_PUSH_ENCAP = 26, 73
MAX_HEADROOM = 256  # LWT_BPF_MAX_HEADROOM: outer IPv6 (40) + SRH (8 + 16 n) ⇒ n ≤ 13

# opcodes used (class | size/op | source)
_MOV64_IMM, _MOV64_REG, _ADD64_IMM = 0xB7, 0xBF, 0x07
_AND64_IMM, _LSH64_IMM, _RSH64_IMM, _OR64_REG, _OR64_IMM = 0x57, 0x67, 0x77, 0x4F, 0x47
_ADD32_IMM, _BE = 0x04, 0xDC
_LDX_B, _LDX_W, _ST_W, _STX_W, _STX_H = 0x71, 0x61, 0x62, 0x63, 0x6B
_JNE_IMM, _CALL, _EXIT = 0x55, 0x85, 0x95
_SKB_LEN, _SKB_MARK = 0, 8  # offsetof(struct __sk_buff, len / mark)

ENCAP_PREFIX = "cpn-h.encaps"
SID_PREFIX = "cpn-sid"


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def encap_header(src: str, segments: tuple[str, ...], inner_version: int) -> bytes:
    """Outer IPv6 header + SRH for ``segments`` (travel order); payload length 0 (the
    program fills it per packet). RFC 8754: Segment List[0] is the last segment."""
    n = len(segments)
    if n < 1 or 40 + 8 + 16 * n > MAX_HEADROOM:
        raise CommitError(f"H.Encaps with {n} segments does not fit the kernel's "
                          f"{MAX_HEADROOM}-byte encapsulation headroom "
                          "(fix: use 1 to 13 segments)")
    nxt = 4 if inner_version == 4 else 41
    srh = struct.pack("!BBBBBBH", nxt, 2 * n, 4, n - 1, n - 1, 0, 0)
    srh += b"".join(ipaddress.IPv6Address(s).packed for s in reversed(segments))
    outer = struct.pack("!IHBB", 6 << 28, 0, 43, 64)
    outer += ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(segments[0]).packed
    return outer + srh


def encap_program(header: bytes, inner_version: int) -> bytes:
    """eBPF ``LWT_XMIT`` instructions pushing ``header`` in front of each packet.

    r6 = ctx; header → stack [r10-L, r10-L+len); inner TC → outer word 0; outer payload
    length = skb->len + len − 40; bpf_lwt_push_encap(IP); REROUTE, or DROP on failure.
    """
    hlen = len(header)
    size = (hlen + 7) & ~7
    padded = header + b"\0" * (size - hlen)
    tmp = -(size + 8)  # 8-byte scratch slot below the header for the inner first bytes
    p = [_insn(_MOV64_REG, 6, 1)]
    p += [_insn(_ST_W, 10, 0, -size + i, struct.unpack("<i", padded[i:i + 4])[0])
          for i in range(0, size, 4)]
    # inner traffic class → outer (kernel seg6 encap copies it: DSCP classification)
    tc_code = [_insn(_LDX_B, 2, 10, tmp), _insn(_LDX_B, 3, 10, tmp + 1)]
    if inner_version == 4:
        tc_code += [_insn(_MOV64_REG, 2, 3)]                      # r2 = TOS byte
    else:
        tc_code += [_insn(_AND64_IMM, 2, 0, 0, 0x0F), _insn(_LSH64_IMM, 2, 0, 0, 4),
                    _insn(_RSH64_IMM, 3, 0, 0, 4), _insn(_OR64_REG, 2, 3)]
    tc_code += [_insn(_LSH64_IMM, 2, 0, 0, 20), _insn(_OR64_IMM, 2, 0, 0, 0x60000000),
                _insn(_BE, 2, 0, 0, 32), _insn(_STX_W, 10, 2, -size)]
    p += [_insn(_MOV64_REG, 1, 6), _insn(_MOV64_IMM, 2, 0, 0, 0),
          _insn(_MOV64_REG, 3, 10), _insn(_ADD64_IMM, 3, 0, 0, tmp),
          _insn(_MOV64_IMM, 4, 0, 0, 2), _insn(_CALL, 0, 0, 0, HELPER_SKB_LOAD_BYTES),
          _insn(_JNE_IMM, 0, 0, len(tc_code), 0), *tc_code]
    p += [_insn(_LDX_W, 2, 6, _SKB_LEN), _insn(_ADD32_IMM, 2, 0, 0, hlen - 40),
          _insn(_BE, 2, 0, 0, 16), _insn(_STX_H, 10, 2, -size + 4),
          _insn(_MOV64_REG, 1, 6), _insn(_MOV64_IMM, 2, 0, 0, BPF_LWT_ENCAP_IP),
          _insn(_MOV64_REG, 3, 10), _insn(_ADD64_IMM, 3, 0, 0, -size),
          _insn(_MOV64_IMM, 4, 0, 0, hlen), _insn(_CALL, 0, 0, 0, HELPER_LWT_PUSH_ENCAP),
          _insn(_JNE_IMM, 0, 0, 2, 0),
          _insn(_MOV64_IMM, 0, 0, 0, BPF_LWT_REROUTE), _insn(_EXIT),
          _insn(_MOV64_IMM, 0, 0, 0, BPF_DROP), _insn(_EXIT)]
    return b"".join(p)


def pass_program() -> bytes:
    """An ``LWT_IN`` program that lets every packet through (carries a local SID's name)."""
    return _insn(_MOV64_IMM, 0, 0, 0, BPF_OK) + _insn(_EXIT)


def mark_program(mark: int) -> bytes:
    """An ``LWT_IN`` program that sets ``skb->mark`` and lets the packet through.

    Why: the IPv6 core's End / decapsulation forwards by the routing table, while End.X,
    End.DX4 and End.DX6 must use their next hop. The mark survives the core's
    decapsulation (same netns: ``skb_scrub_packet`` keeps it), so a ``fwmark`` rule to a
    table holding only ``default via nh`` sends the packet (or the inner packet) there.
    """
    return (_insn(_MOV64_IMM, 2, 0, 0, mark) + _insn(_STX_W, 1, 2, _SKB_MARK)
            + _insn(_MOV64_IMM, 0, 0, 0, BPF_OK) + _insn(_EXIT))


def mark_of(sid: str) -> int:
    """The fwmark (and routing table id) of a SID with a next hop: stable per SID, in a
    range (0x0C000000 + 24 bits) away from the small marks and tables people use."""
    return 0x0C000000 | (zlib.crc32(ipaddress.IPv6Address(sid).packed) & 0xFFFFFF)


# -- names: what the route spells, for read-back ---------------------------------------
def encap_name(segments: tuple[str, ...]) -> str:
    return f"{ENCAP_PREFIX} segs={','.join(segments)}"


def sid_name(action: str, nh4: str | None, nh6: str | None) -> str:
    extra = f" nh4={nh4}" if nh4 else f" nh6={nh6}" if nh6 else ""
    return f"{SID_PREFIX} {action}{extra}"


@dataclass(frozen=True, slots=True)
class Decoded:
    """A route name read back: ``kind`` encap (``segments``) or sid (``action``, nh)."""

    kind: Literal["encap", "sid"]
    segments: tuple[str, ...] = ()
    action: str = ""
    nh4: str | None = None
    nh6: str | None = None


def decode_name(name: str) -> Decoded | None:
    """Inverse of ``encap_name``/``sid_name``; ``None`` for a name CPN did not write."""
    words = name.split()
    if len(words) == 2 and words[0] == ENCAP_PREFIX and words[1].startswith("segs="):
        segs = tuple(s for s in words[1][5:].split(",") if s)
        return Decoded("encap", segments=segs) if segs else None
    if 2 <= len(words) <= 3 and words[0] == SID_PREFIX:
        nh = dict(w.split("=", 1) for w in words[2:] if "=" in w)
        return Decoded("sid", action=words[1], nh4=nh.get("nh4"), nh6=nh.get("nh6"))
    return None


# -- I/O: load a program, probe the kernel, enable SRH processing ----------------------
@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def load_program(insns: bytes, prog_type: int, name: bytes = b"cpn_seg6") -> int:
    """Load ``insns`` into the kernel; returns the program fd (caller closes it once the
    route holds the program). Refusal → ``CommitError`` with the verifier's words."""
    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise CommitError(f"eBPF SRv6 encapsulation is not supported on "
                          f"{os.uname().machine} (fix: run on x86_64 or aarch64, or on a "
                          "kernel with seg6 lwtunnels)")
    libc = _libc()
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    for level in (0, 1):  # quietly first; with the verifier log only to explain a refusal
        attr = struct.pack("<IIQQIIQII16s", prog_type, len(insns) // 8,
                           ctypes.addressof(code), ctypes.addressof(lic), level,
                           len(log) if level else 0, ctypes.addressof(log) if level else 0,
                           0, 0, name[:15])
        buf = ctypes.create_string_buffer(attr + b"\0" * (128 - len(attr)), 128)
        fd = int(libc.syscall(nr, BPF_PROG_LOAD, buf, 128))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
    why = log.value.decode(errors="replace").strip().splitlines()[-3:]
    raise CommitError(f"kernel refused the SRv6 eBPF program: {os.strerror(err)}"
                      + (f" ({' | '.join(why)})" if why else "")
                      + " (fix: the kernel needs CONFIG_BPF_SYSCALL and CONFIG_LWTUNNEL_BPF, "
                      "or seg6 lwtunnels, CONFIG_IPV6_SEG6_LWTUNNEL)")


def enable_srh(netns: str | None) -> None:
    """``seg6_enabled`` = 1 on ``all``, ``default`` and every device of ``netns``: the
    IPv6 core processes an SRH only where both ``all`` and the ingress device allow it."""

    def write() -> None:
        base = "/proc/sys/net/ipv6/conf"
        for dev in os.listdir(base):
            path = f"{base}/{dev}/seg6_enabled"
            with open(path) as fh:
                if fh.read().strip() == "1":
                    continue
            with open(path, "w") as fh:
                fh.write("1")

    try:
        in_netns(netns, write)
    except OSError as exc:
        raise CommitError(f"cannot enable SRH processing in netns {netns!r}: {exc} "
                          "(fix: run the programmer as root)") from exc


_probe_lock = threading.Lock()
_probed: dict[str, bool] = {}


def kernel_has_seg6_lwtunnel(ipr: object, netns: str | None) -> bool:
    """Whether the kernel takes ``encap seg6`` routes: one add (and delete) of a route to
    the discard prefix ``100::/128`` in an unused table. Cached per process (it is a
    property of the kernel, not of a namespace)."""
    with _probe_lock:
        if "k" in _probed:
            return _probed["k"]
        lo = ipr.link_lookup(ifname="lo")  # type: ignore[attr-defined]
        req = {"dst": "100::/128", "family": 10, "table": 250, "oif": lo[0] if lo else 1,
               "encap": {"type": "seg6", "mode": "encap", "segs": ["::1"]}}
        try:
            ipr.route("add", **req)  # type: ignore[attr-defined]
        except Exception as exc:  # pyroute2 NetlinkError
            if getattr(exc, "code", None) in (95, 22):  # EOPNOTSUPP / EINVAL: no seg6 lwt
                _probed["k"] = False
                return False
            raise
        try:
            ipr.route("del", dst="100::/128", family=10, table=250)  # type: ignore[attr-defined]
        except Exception:  # already gone: nothing to undo
            pass
        _probed["k"] = True
        return True
