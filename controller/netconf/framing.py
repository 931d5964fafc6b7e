"""NETCONF message framing (RFC 6242), sans-I/O.

Rules:
- Until both hellos are exchanged, and forever if either side lacks base:1.1, a
  message ends with ``]]>]]>`` (base:1.0). After that, messages are chunked:
  ``\\n#<len>\\n<data>`` … ``\\n##\\n`` (base:1.1, §4.2).
- ``feed(data)`` consumes bytes; ``messages()`` yields complete messages. A message
  over ``max_message`` bytes, a bad chunk header or a chunk size of 0 or above
  4294967295 raises ``RemoteProtocolError`` (the caller closes the session).
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.errors import RemoteProtocolError

EOM = b"]]>]]>"
MAX_CHUNK = 4294967295


class FrameDecoder:
    def __init__(self, max_message: int = 16 * 1024 * 1024) -> None:
        self.chunked = False
        self.max_message = max_message
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._size = 0
        self._done: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._buf += data
        if self.chunked:
            self._parse_chunked()
        else:
            self._parse_eom()

    def _parse_eom(self) -> None:
        while True:
            idx = self._buf.find(EOM)
            if idx < 0:
                if len(self._buf) > self.max_message:
                    raise RemoteProtocolError(
                        f"message exceeds {self.max_message} bytes without ]]>]]>")
                return
            self._done.append(bytes(self._buf[:idx]))
            del self._buf[:idx + len(EOM)]
            if self.chunked:  # switched mode after the hello: the rest is chunked
                self._parse_chunked()
                return

    def _parse_chunked(self) -> None:
        buf = self._buf
        while buf:
            # tolerate stray whitespace between messages (not a newline: chunks start with one)
            if not self._parts and bytes(buf[:1]) in (b"\r", b" ", b"\t"):
                del buf[:1]
                continue
            if len(buf) < 4:
                return
            if buf[:4] == b"\n##\n":
                self._done.append(b"".join(self._parts))
                self._parts, self._size = [], 0
                del buf[:4]
                continue
            if buf[:2] != b"\n#":
                raise RemoteProtocolError(f"bad chunk header {bytes(buf[:12])!r}")
            nl = buf.find(b"\n", 2)
            if nl < 0:
                if len(buf) > 13:
                    raise RemoteProtocolError("chunk header too long")
                return
            digits = bytes(buf[2:nl])
            if not digits.isdigit() or digits.startswith(b"0"):
                raise RemoteProtocolError(f"bad chunk size {digits!r}")
            size = int(digits)
            if size > MAX_CHUNK:
                raise RemoteProtocolError("chunk size above 4294967295")
            if len(buf) < nl + 1 + size:
                if self._size + size > self.max_message:
                    raise RemoteProtocolError(f"message exceeds {self.max_message} bytes")
                return
            self._size += size
            if self._size > self.max_message:
                raise RemoteProtocolError(f"message exceeds {self.max_message} bytes")
            self._parts.append(bytes(buf[nl + 1:nl + 1 + size]))
            del buf[:nl + 1 + size]

    def messages(self) -> Iterator[bytes]:
        while self._done:
            yield self._done.pop(0)


def encode(message: bytes, chunked: bool) -> bytes:
    if not chunked:
        return message + EOM
    return b"\n#%d\n%s\n##\n" % (len(message), message)
