"""A loopback HTTP proxy that injects faults in front of a real endpoint.

The kernel here has no netem, so resets, stalls and error statuses come from
this proxy: a threaded TCP server that reads each HTTP/1.1 request, forwards
it to the upstream (moto), and relays the response, breaking it on purpose
where a knob says so. Requests are forwarded byte for byte (Host included),
so signed requests stay valid.

Knobs count *matching* requests (by default every GET), 1-based, in arrival
order:

- ``reset_after={k: n}``: the k-th matching response is cut with a TCP reset
  after ``n`` body bytes (no fault if the body is not longer than ``n``).
- ``stall_after={k: (n, seconds)}``: the k-th stops sending after ``n`` body
  bytes for ``seconds`` (a stalled connection), then is closed.
- ``status={k: code}``: the k-th is answered ``code`` (503 SlowDown, 500...)
  without reaching the upstream.
- ``error_rate=p`` (with ``seed``): every matching request not named above is
  answered ``error_status`` with probability ``p``.

``faults`` lists every fault actually injected as ``(k, kind)``; ``log`` records every
request as ``(method, target, range_header)``.

Example:
    >>> with FaultProxy(s3.endpoint_url, reset_after={2: 1000}) as proxy:  # doctest: +SKIP
    ...     transport = Transport(Store(proxy.url))
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

_ERROR_CODES = {500: "InternalError", 502: "BadGateway", 503: "SlowDown", 504: "GatewayTimeout"}


class FaultProxy:
    """See the module docstring.

    Args:
        upstream: the real endpoint, ``http://host:port``.
        match: which requests the knobs count, ``(method, target) -> bool``.
    """

    def __init__(self, upstream: str, *, reset_after: dict[int, int] | None = None,
                 stall_after: dict[int, tuple[int, float]] | None = None,
                 status: dict[int, int] | None = None, error_rate: float = 0.0,
                 error_status: int = 503, seed: int = 0,
                 match: Callable[[str, str], bool] | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port or 80)
        self.reset_after = dict(reset_after or {})
        self.stall_after = dict(stall_after or {})
        self.status = dict(status or {})
        self.error_rate = error_rate
        self.error_status = error_status
        self.match = match or (lambda method, target: method == "GET")
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.matched = 0
        self.faults: list[tuple[int, str]] = []
        self.log: list[tuple[str, str, str | None]] = []
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, name="faultproxy", daemon=True)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ serving

    def _serve(self) -> None:
        self._server.settimeout(0.05)  # so that stop() is noticed promptly
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _decide(self, method: str, target: str, rng: str | None) -> tuple[int, str | None, object]:
        with self._lock:
            self.log.append((method, target, rng))
            if not self.match(method, target):
                return 0, None, None
            self.matched += 1
            k = self.matched
            if k in self.status:
                fault = ("status", self.status[k])
            elif k in self.reset_after:
                fault = ("reset", self.reset_after[k])
            elif k in self.stall_after:
                fault = ("stall", self.stall_after[k])
            elif self.error_rate and self._random.random() < self.error_rate:
                fault = ("status", self.error_status)
            else:
                return k, None, None
            if fault[0] == "status":
                self.faults.append((k, "status"))
            return k, fault[0], fault[1]

    def _handle(self, client: socket.socket) -> None:
        with client:
            try:
                head, body = _read_head(client)
                if head is None:
                    return
                lines = head.split(b"\r\n")
                method, target, _ = lines[0].decode("latin-1").split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", 0))
                while len(body) < length:
                    more = client.recv(65536)
                    if not more:
                        return
                    body += more
                k, kind, arg = self._decide(method, target, headers.get("range"))
                if kind == "status":
                    client.sendall(_error_response(int(arg)))
                    return
                self._forward(client, lines, body, k, kind, arg)
            except OSError:
                return

    def _forward(self, client: socket.socket, lines: list[bytes], body: bytes, k: int,
                 kind: str | None, arg: object) -> None:
        request = [lines[0]] + [ln for ln in lines[1:] if not ln.lower().startswith(b"connection:")]
        request.append(b"Connection: close")
        with socket.create_connection(self.upstream, timeout=30) as up:
            up.sendall(b"\r\n".join(request) + b"\r\n\r\n" + body)
            head, rest = _read_head(up)
            if head is None:
                return
            rlines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
            client.sendall(b"\r\n".join(rlines) + b"\r\nConnection: close\r\n\r\n")
            limit = None
            if kind == "reset":
                limit = int(arg)
            elif kind == "stall":
                limit = int(arg[0])
            sent = 0
            while True:
                data = rest or up.recv(262144)
                rest = b""
                if not data:
                    return
                if limit is not None and sent + len(data) > limit:
                    # A fault only where it withholds bytes: a body that fits
                    # the limit completes normally.
                    client.sendall(data[: limit - sent])
                    with self._lock:
                        self.faults.append((k, kind))
                    if kind == "reset":
                        # SO_LINGER 0: close() sends RST instead of FIN.
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    else:
                        self._stop.wait(float(arg[1]))
                    return
                client.sendall(data)
                sent += len(data)


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return None, b""
        data += more
        if len(data) > 1 << 20:
            raise OSError("HTTP head too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _error_response(status: int) -> bytes:
    code = _ERROR_CODES.get(status, "InternalError")
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>injected by faultproxy</Message></Error>").encode()
    return (f"HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


