"""One client connection of the loopback proxy: requests forwarded, responses paced, faults injected.

A :class:`Connection` reads one HTTP/1.1 request at a time from its client,
forwards it byte for byte to the upstream (reconnecting when the upstream
closed), and relays the response: its head with the ``Connection`` header
rewritten, its body paced and, where the :class:`Listener` answered an
:class:`~channels.testing.faults.Action`, broken on purpose.

A fault is counted (``Listener.injected``) only where it happened: a status
answered, or a body cut or stalled with at least one byte withheld. A body
no longer than ``after_bytes`` is relayed whole and is no fault; nor is a
chunked body (relayed verbatim, never cut).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from typing import Protocol

from channels.testing.faults import Action
from channels.testing.pacing import Pacer
from channels.testing.profiles import Profile
from channels.testing.wire import BUFFER, SPLICE, error_response, fcntl, is_object_get, parse_head, read_head, splice

#: Receive buffer of each upstream socket (bytes): room for a whole 16 MiB
#: response, so that the endpoint hands its body over at once and is not
#: held back by the pacing of a far profile (S3's servers are not; moto,
#: whose threads share one GIL, would wake per paced slice of every
#: response). Measured on the 2-core machine, 32 x 16 MiB: the proxy spent
#: 0.28 CPU-s per GB under ``s3-like`` with it against 0.39-0.43 without.
UPSTREAM_BUFFER = 16 << 20
#: Linux's SO_RCVBUFFORCE: SO_RCVBUF past ``net.core.rmem_max``, for root.
_SO_RCVBUFFORCE = 33


class Listener(Protocol):
    """What a connection needs of the listener that accepted it (:class:`channels.testing.proxy.Proxy`)."""

    profile: Profile
    shared: Pacer | None  # the listener's own cap, shared by its connections
    stopping: threading.Event  # set when the listener stops: stalls end

    def next_upstream(self) -> tuple[str, int]:
        """The endpoint the next upstream connection goes to."""

    def begin(self, method: str, target: str, rng: str | None) -> tuple[int, Action | None]:
        """A request arrived: its 1-based index and the fault to inject, if any."""

    def end(self, object_get: bool) -> None:
        """The request's response was relayed (or broken)."""

    def count(self, name: str, n: int) -> None:
        """Add ``n`` to the counter ``name`` of the listener's stats."""

    def injected(self, index: int, kind: str) -> None:
        """A fault of ``kind`` was injected into the response to request ``index``."""


class Connection:
    """The state of one client connection and its current upstream socket.

    Invariant: ``pending`` holds bytes read from the client past the last
    parsed request (pipelined or early bytes), never more than one head.
    """

    def __init__(self, listener: Listener, client: socket.socket) -> None:
        self.listener = listener
        self.client = client
        self.up: socket.socket | None = None
        self.pending = b""
        self.buf = bytearray(BUFFER)
        rate = listener.profile.connection_bandwidth
        self.pacer = Pacer(rate) if rate else None
        self.pipe: tuple[int, int] | None = None  # for os.splice, made on first use
        self.pipe_size = 0
        self.index = 0  # of the request being served

    def close(self) -> None:
        for s in (self.up, self.client):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self.up = None
        if self.pipe is not None:
            for fd in self.pipe:
                os.close(fd)
            self.pipe = None

    # One request and its response; False when the client connection ends.
    def one_exchange(self) -> bool:
        head, self.pending = read_head(self.client, self.pending)
        if head is None:
            return False
        request_line, headers = parse_head(head)
        method, target, version = (request_line.split(" ", 2) + ["", ""])[:3]
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.client.sendall(error_response(501, "chunked request bodies are not relayed"))
            return False
        length = int(headers.get("content-length", "0") or 0)
        body, self.pending = self.pending[:length], self.pending[length:]
        self.index, action = self.listener.begin(method, target, headers.get("range"))
        try:
            return self._exchange(head, headers, method, version, body, length, action)
        finally:
            self.listener.end(is_object_get(method, target))

    def _exchange(self, head: bytes, headers: dict[str, str], method: str, version: str,
                  body: bytes, length: int, action: Action | None) -> bool:
        delay = self.listener.profile.first_byte_delay
        if delay:
            time.sleep(delay)
        if action is not None and action.kind == "status":
            self.listener.injected(self.index, action.kind)
            self.client.sendall(error_response(action.status))
            return False
        client_close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        if headers.get("expect", "").lower() == "100-continue" and len(body) < length:
            # Answer the expectation here (the upstream's own 100 is dropped
            # below), so the client sends its body without waiting it out.
            self.client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        for attempt in (1, 2):
            reused = self.up is not None
            try:
                self._send_request(head, body, length)
                response = self._response_head()
                break
            except OSError:
                self._drop_upstream()
                # A kept-alive upstream connection may have been closed while
                # idle: resend once on a fresh one, if the body is still here.
                if not (reused and attempt == 1 and len(body) == length):
                    raise
        keep = self._relay_response(method, action, *response)
        return keep and not client_close

    def _upstream(self) -> socket.socket:
        if self.up is None:
            self.up = upstream_socket(self.listener.next_upstream())
            self.listener.count("upstream_connections", 1)
        return self.up

    def _send_request(self, head: bytes, body: bytes, length: int) -> None:
        up = self._upstream()
        up.sendall(head + b"\r\n\r\n" + body)
        remaining = length - len(body)
        view = memoryview(self.buf)
        while remaining > 0:  # a large request body (PUT) streams through
            n = self.client.recv_into(view, min(remaining, BUFFER))
            if not n:
                raise OSError("client closed mid-request")
            up.sendall(view[:n])
            remaining -= n

    def _drop_upstream(self) -> None:
        if self.up is not None:
            try:
                self.up.close()
            finally:
                self.up = None

    def _response_head(self) -> tuple[bytes, int, dict[str, str], bytes]:
        """``(head, status, headers, rest)`` of the upstream's final response."""
        rest = b""
        while True:
            head, rest = read_head(self.up, rest)
            if head is None:
                raise OSError("upstream closed without a response")
            status_line, headers = parse_head(head)
            status = int(status_line.split(" ", 2)[1])
            if not (100 <= status < 200 and status != 101):
                return head, status, headers, rest  # interim responses (100 Continue) are not relayed

    def _relay_response(self, method: str, action: Action | None, head: bytes, status: int,
                        headers: dict[str, str], rest: bytes) -> bool:
        """Relay one response whose head was read; True when both sides may carry on."""
        upstream_close = headers.get("connection", "").lower() == "close"
        if method == "HEAD" or status in (204, 304, 101):
            length: int | None = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            length = None  # relayed as received, chunk framing included
        elif "content-length" in headers:
            length = int(headers["content-length"])
        else:
            length = -1  # until the upstream closes
        if self.pacer is not None:
            self.pacer.restart()  # a connection's cap is a rate within each response, no idle credit
        keep = length is None or length >= 0  # the client can tell where this response ends
        lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
        lines.append(b"Connection: keep-alive" if keep else b"Connection: close")
        out = b"\r\n".join(lines) + b"\r\n\r\n"
        self._send(out)
        if length is None:
            self._relay_chunked(rest)
        elif not self._relay_body(rest, length, action):
            return False
        if upstream_close or not keep:
            self._drop_upstream()
        return keep

    def _pace(self, n: int) -> None:
        if self.pacer is not None:
            self.pacer.take(n)
        shared = self.listener.shared
        if shared is not None:
            shared.take(n)

    def _send(self, data) -> None:
        self._pace(len(data))
        self.client.sendall(data)

    def _slice(self) -> int:
        sizes = [BUFFER]
        if self.pacer is not None:
            sizes.append(self.pacer.slice())
        if self.listener.shared is not None:
            sizes.append(self.listener.shared.slice())
        return min(sizes)

    def _relay_body(self, rest: bytes, length: int, action: Action | None) -> bool:
        """Relay ``length`` body bytes (-1: until EOF); False if a fault ended it.

        A reset or stall cuts the body after ``action.after_bytes`` bytes, and
        only where at least one more byte was coming.
        """
        limit = action.after_bytes if action is not None else None
        if limit is not None and 0 <= length <= limit:
            limit = None  # the whole body fits: nothing to withhold, no fault
        sent = 0
        if rest:
            rest = rest if length < 0 else rest[:length]
            if limit is not None and len(rest) > limit:
                return self._fault(rest[:limit], action)
            self._send(rest)
            sent = len(rest)
        if length >= 0 and limit is None and SPLICE:
            sent = self._splice_body(length, sent)
            self.listener.count("response_bytes", sent)
            return True
        view = memoryview(self.buf)
        step = self._slice()
        while length < 0 or sent < length:
            want = step if length < 0 else min(step, length - sent)
            if limit is not None:
                want = min(want, max(1, limit - sent))  # past the limit, one byte shows more is coming
            n = self.up.recv_into(view, want)
            if not n:
                if length < 0:
                    break
                raise OSError("upstream closed mid-body")
            if limit is not None and sent + n > limit:
                return self._fault(view[: limit - sent], action)
            self._send(view[:n])
            sent += n
        self.listener.count("response_bytes", sent)
        return length >= 0

    def _splice_body(self, length: int, sent: int) -> int:
        """Move body bytes upstream -> pipe -> client in the kernel (no copy here)."""
        if self.pipe is None:
            self.pipe = os.pipe()
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(self.pipe[1], fcntl.F_SETPIPE_SZ, BUFFER)
            self.pipe_size = fcntl.fcntl(self.pipe[1], fcntl.F_GETPIPE_SZ)
        r, w = self.pipe
        up, client = self.up, self.client
        step = min(self._slice(), self.pipe_size)
        while sent < length:
            n = splice(up, up.fileno(), w, min(step, length - sent), readable=True)
            if not n:
                raise OSError("upstream closed mid-body")
            self._pace(n)
            left = n
            while left:
                left -= splice(client, r, client.fileno(), left, readable=False)
            sent += n
        return sent

    def _relay_chunked(self, rest: bytes) -> None:
        """Relay a chunked body verbatim up to its terminating chunk."""
        data = rest
        while True:
            # Find the next chunk-size line.
            while b"\r\n" not in data:
                more = self.up.recv(65536)
                if not more:
                    raise OSError("upstream closed mid-chunk")
                data += more
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            self._send(size_line + b"\r\n")
            if size == 0:  # trailers end with an empty line
                while not (data.startswith(b"\r\n") or b"\r\n\r\n" in data):
                    more = self.up.recv(65536)
                    if not more:
                        break
                    data += more
                end = 2 if data.startswith(b"\r\n") else data.index(b"\r\n\r\n") + 4
                self._send(data[:end])
                return
            need = size + 2  # payload and its CRLF
            while len(data) < need:
                more = self.up.recv(max(65536, need - len(data)))
                if not more:
                    raise OSError("upstream closed mid-chunk")
                data += more
            self._send(data[:need])
            data = data[need:]

    def _fault(self, head_part, action: Action) -> bool:
        """Send the body's first bytes, then break it as ``action`` says."""
        self.listener.injected(self.index, action.kind)
        if len(head_part):
            self.client.sendall(head_part)
        if action.kind == "reset":
            # SO_LINGER 0: close() sends RST instead of FIN.
            self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.listener.stopping.wait(action.seconds)
        return False


def upstream_socket(address: tuple[str, int]) -> socket.socket:
    """A connected socket to the endpoint with a receive buffer of :data:`UPSTREAM_BUFFER`.

    The buffer is set before connecting, so that the window scale the
    handshake agrees on can use it. Without root the kernel caps it at
    twice ``net.core.rmem_max``.
    """
    family, kind, proto, _, resolved = socket.getaddrinfo(*address, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, UPSTREAM_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UPSTREAM_BUFFER)
        sock.settimeout(60)
        sock.connect(resolved)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    return sock
