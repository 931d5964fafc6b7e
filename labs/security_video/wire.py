"""Wire format of the lab's UDP messages (sans-I/O: bytes in, values out).

Rules:
- A frame is ``FRM1 | seq u32 | t_send_ns u64`` padded to the frame size.
- A result is ``RES1 | seq u32 | t_send_ns u64 | t_svc_recv_ns u64 | site 8s``.
- A load job is ``JOB1 | work_us u32``; it gets no answer.
- Unknown or short datagrams raise ``ValueError`` naming what was wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

FRAME = struct.Struct("!4sIQ")
RESULT = struct.Struct("!4sIQQ8s")
JOB = struct.Struct("!4sI")


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    t_send_ns: int


@dataclass(frozen=True, slots=True)
class Result:
    seq: int
    t_send_ns: int
    t_svc_recv_ns: int
    site: str


@dataclass(frozen=True, slots=True)
class Job:
    work_us: int


def encode_frame(seq: int, t_send_ns: int, size: int) -> bytes:
    head = FRAME.pack(b"FRM1", seq, t_send_ns)
    return head + bytes(max(0, size - len(head)))


def encode_result(frame: Frame, t_svc_recv_ns: int, site: str) -> bytes:
    return RESULT.pack(b"RES1", frame.seq, frame.t_send_ns, t_svc_recv_ns,
                       site.encode()[:8])


def encode_job(work_us: int) -> bytes:
    return JOB.pack(b"JOB1", work_us)


def decode(data: bytes) -> Frame | Result | Job:
    magic = data[:4]
    if magic == b"FRM1" and len(data) >= FRAME.size:
        _, seq, t = FRAME.unpack_from(data)
        return Frame(seq, t)
    if magic == b"RES1" and len(data) >= RESULT.size:
        _, seq, t, tr, site = RESULT.unpack_from(data)
        return Result(seq, t, tr, site.rstrip(b"\0").decode(errors="replace"))
    if magic == b"JOB1" and len(data) >= JOB.size:
        _, work = JOB.unpack_from(data)
        return Job(work)
    raise ValueError(f"not a lab message: magic {magic!r}, {len(data)} bytes")
