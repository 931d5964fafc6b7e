"""ExaBGP API process: copy ExaBGP's JSON lines (our stdin) to the controller's
unix socket (``argv[1]``).

Rules:
- Stdlib only; runs as ``python forward.py SOCKET`` from the generated config.
- Copies bytes in large chunks (no per-line parsing here: the controller's
  sans-I/O decoder does that). If the socket is not there yet or breaks, it
  reconnects every 0.2 s; what ExaBGP wrote meanwhile is dropped (the
  controller marks metrics stale across such gaps via session events).
- Exits when ExaBGP closes our stdin.
"""

from __future__ import annotations

import os
import socket
import sys
import time


def _connect(path: str) -> socket.socket:
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            time.sleep(0.2)


def main(path: str) -> int:
    sock = _connect(path)
    while True:
        data = os.read(0, 1 << 16)
        if not data:
            return 0
        try:
            sock.sendall(data)
        except OSError:
            sock.close()
            sock = _connect(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
