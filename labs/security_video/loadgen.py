"""Load generator: asks a MEC's analytics service for real work at a target share.

Rules: sends ``JOB1`` requests of ``--job-ms`` each, spaced so that the jobs alone keep
the service busy ``--util`` of the time (0.9 = ~90 %); runs until stopped.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

from labs.security_video.wire import encode_job


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--target", required=True, help="HOST:PORT of the service")
    p.add_argument("--util", type=float, default=0.9)
    p.add_argument("--job-ms", type=float, default=20.0)
    a = p.parse_args(argv)
    if not 0 < a.util <= 1.5:
        raise SystemExit(f"loadgen: --util {a.util} out of range (0, 1.5]")
    host, _, port = a.target.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msg = encode_job(int(a.job_ms * 1000))
    interval = a.job_ms / 1000 / a.util
    t0 = time.monotonic()
    print(json.dumps({"ev": "load_start", "t": time.monotonic_ns(), "util": a.util}),
          flush=True)
    i = 0
    while True:
        due = t0 + i * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        sock.sendto(msg, (host, int(port)))
        i += 1


if __name__ == "__main__":
    sys.exit(main())
