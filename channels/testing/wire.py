"""The proxy's wire-level helpers: HTTP heads, error bodies, kernel copies."""

from __future__ import annotations

import os
import select
import socket

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None

HEAD_LIMIT = 1 << 20
#: The relay's copy size: its reused buffer, its kernel pipe, its largest paced slice.
BUFFER = 1 << 20
ERROR_CODES = {500: "InternalError", 502: "BadGateway", 503: "SlowDown", 504: "GatewayTimeout"}

# ---------------------------------------------------------------- kernel copies

SPLICE = hasattr(os, "splice") and hasattr(fcntl, "F_GETPIPE_SZ") if fcntl else False


def splice(sock: socket.socket, src: int, dst: int, n: int, *, readable: bool) -> int:
    """``os.splice`` that waits (up to the socket's timeout) while ``sock`` is not ready.

    Waits with ``poll``, not ``select``: a proxy serving many clients holds
    descriptors above ``select``'s limit of 1024.
    """
    while True:
        try:
            return os.splice(src, dst, n)
        except BlockingIOError:
            timeout = sock.gettimeout()
            poller = select.poll()
            poller.register(sock, select.POLLIN if readable else select.POLLOUT)
            if not poller.poll(None if timeout is None else timeout * 1000):
                raise TimeoutError(f"socket not {'readable' if readable else 'writable'} in {timeout} s") from None


# ---------------------------------------------------------------- HTTP bits

def is_object_get(method: str, target: str) -> bool:
    """A GET of an object (path-style ``/bucket/key``), not a listing."""
    path, _, query = target.partition("?")
    return method == "GET" and path.count("/") >= 2 and len(path.split("/", 2)[2]) > 0 and \
        "list-type" not in query and "uploads" not in query


def read_head(sock: socket.socket, data: bytes) -> tuple[bytes | None, bytes]:
    """``(head, rest)``: the bytes before the first blank line, and after it."""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return None, b""
        data += more
        if len(data) > HEAD_LIMIT:
            raise OSError("HTTP head too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.split(b"\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0].decode("latin-1"), headers


def error_response(status: int, message: str = "injected by channels.testing.proxy") -> bytes:
    code = ERROR_CODES.get(status, "InternalError" if status >= 500 else "Error")
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()
    return (f"HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
