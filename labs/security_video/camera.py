"""The camera: resolve the service with a real DNS query, stream frames, time results.

Rules:
- Resolution is a DNS query (dnspython, UDP) to the controller's responder; the A
  answer is the address frames go to, the TXT answer (if any) is recorded.
- Frames are sent on an absolute 1/fps schedule (no drift); each carries its sequence
  number and monotonic send time; the service echoes both back, so latency is
  measured per frame on one clock.
- After the last frame the receiver drains for up to ``--drain-s``; the output JSON has
  every frame sent and every result received (duplicates kept, for counting).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from typing import Any

from labs.security_video.wire import Result, decode, encode_frame


def resolve(name: str, server: str, port: int) -> dict[str, Any]:
    import dns.message
    import dns.query
    import dns.rdatatype

    out: dict[str, Any] = {"name": name, "server": f"{server}:{port}"}
    t0 = time.monotonic()
    q = dns.message.make_query(name, dns.rdatatype.A)
    r = dns.query.udp(q, server, port=port, timeout=2.0)
    out["a"] = [rd.address for rrset in r.answer if rrset.rdtype == dns.rdatatype.A
                for rd in rrset]
    out["rtt_ms"] = round((time.monotonic() - t0) * 1000, 2)
    q = dns.message.make_query(name, dns.rdatatype.TXT)
    r = dns.query.udp(q, server, port=port, timeout=2.0)
    out["txt"] = [b"".join(rd.strings).decode() for rrset in r.answer
                  if rrset.rdtype == dns.rdatatype.TXT for rd in rrset]
    try:
        q = dns.message.make_query(name, "SVCB")
        r = dns.query.udp(q, server, port=port, timeout=2.0)
        out["svcb"] = sorted(rd.to_text() for rrset in r.answer
                             if rrset.rdtype == dns.rdatatype.SVCB for rd in rrset)
    except Exception as exc:  # an old responder may not know SVCB; record why
        out["svcb_error"] = str(exc)
    if not out["a"]:
        raise SystemExit(f"camera: DNS {server}:{port} gave no A record for {name}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="service DNS name, e.g. video.svc.zone")
    p.add_argument("--dns", required=True, help="DNS server HOST:PORT")
    p.add_argument("--port", type=int, default=5004)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--size", type=int, default=1200, help="frame size, bytes")
    p.add_argument("--duration", type=float, required=True, help="seconds of streaming")
    p.add_argument("--drain-s", type=float, default=3.0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)

    host, _, dport = a.dns.rpartition(":")
    res = resolve(a.name, host, int(dport))
    target = (res["a"][0], a.port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("0.0.0.0", 0))
    recv: list[list[Any]] = []
    stop = threading.Event()

    def receiver() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            t = time.monotonic_ns()
            try:
                msg = decode(data)
            except ValueError:
                continue
            if isinstance(msg, Result):
                recv.append([msg.seq, msg.t_send_ns, t, msg.t_svc_recv_ns, msg.site])

    th = threading.Thread(target=receiver, daemon=True)
    th.start()
    print(json.dumps({"ev": "streaming", "t": time.monotonic_ns(), "target": target[0]}),
          flush=True)
    n = int(a.duration * a.fps)
    sent: list[list[int]] = []
    t0 = time.monotonic_ns()
    interval = int(1e9 / a.fps)
    for seq in range(n):
        due = t0 + seq * interval
        now = time.monotonic_ns()
        if due > now:
            time.sleep((due - now) / 1e9)
        ts = time.monotonic_ns()
        sock.sendto(encode_frame(seq, ts, a.size), target)
        sent.append([seq, ts])
    print(json.dumps({"ev": "sent_all", "t": time.monotonic_ns(), "n": n}), flush=True)
    deadline = time.monotonic() + a.drain_s
    while time.monotonic() < deadline and len({r[0] for r in recv}) < n:
        time.sleep(0.05)
    stop.set()
    th.join()
    with open(a.out, "w") as fh:
        json.dump({"resolved": res, "fps": a.fps, "size": a.size, "sent": sent,
                   "recv": recv}, fh)
    print(json.dumps({"ev": "done", "t": time.monotonic_ns(), "received": len(recv)}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
