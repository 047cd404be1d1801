"""A loopback HTTP/1.1 proxy that makes a local endpoint behave like a remote one.

The kernel on the project's machines has no netem, so latency and bandwidth
come from this proxy, in front of the endpoint (moto on loopback, or any
plain-HTTP S3-compatible store). It knows just enough HTTP/1.1 to find where
each request and response ends:

* **first-byte delay**: every request waits ``first_byte_delay`` seconds in
  the proxy before it is forwarded, so each response's first byte comes that
  much later than the upstream alone would send it;
* **per-connection bandwidth**: each client connection's response bytes are
  paced to ``connection_bandwidth`` bytes/s (a virtual-clock token bucket
  with a small burst allowance);
* **per-listener bandwidth**: all connections of one listener share
  ``listener_bandwidth`` bytes/s, a host's network interface when each
  simulated host gets its own listener (:mod:`channels.bench.imbalance`);
* **keep-alive towards the client**: moto closes every connection after one
  response; the proxy keeps the client's connection open when the response
  length is known and reconnects upstream per request, as S3 does (clients
  reuse connections there, so connection set-up is not what we measure).

Requests are forwarded byte for byte (``Host`` included), so signed requests
stay valid; only response heads are rewritten (the ``Connection`` header).

Faults (:mod:`channels.testing.faults`): a ``fault_policy`` callable sees
every request and may answer an :class:`Action` (``status``: answer an error
without reaching the upstream; ``reset``: cut the response with a TCP reset
after ``n`` body bytes; ``stall``: stop after ``n`` body bytes for
``seconds``, then close). :func:`scripted_faults` builds the policy with the
knobs of ``tests/faultproxy.py``, so that file could become a thin wrapper
of this one.

Efficiency: one thread per client connection. On Linux, bodies move with
``os.splice`` (upstream socket -> a 1 MiB pipe -> client socket): the bytes
never enter this process, and each call releases the GIL. Elsewhere, and
for responses a fault cuts short, through a reused 1 MiB buffer with
``recv_into``/``sendall``. Run it in its own process
(``python -m channels.testing.proxy``) so that it competes with neither the
client nor the server for a GIL; ``benchmarks/test_bench_proxy.py`` measures
its pass-through throughput against the endpoint alone.

Example:
    >>> with Proxy(s3.endpoint_url, PROFILES["s3-like"]) as proxy:   # doctest: +SKIP
    ...     Transport(Store(proxy.url)).read_range(url, 0, 1 << 20)
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from channels.testing.faults import Action, FaultPolicy, RequestInfo, scripted_faults
from channels.testing.profiles import PROFILES, Profile
from channels.testing.wire import SPLICE, error_response, fcntl, is_object_get, parse_head, read_head, splice

__all__ = ["PROFILES", "Action", "Pacer", "Profile", "Proxy", "RequestInfo", "scripted_faults"]

BUFFER = 1 << 20


class Pacer:
    """Paces bytes to ``rate`` bytes/s; thread-safe, so it can be shared.

    A virtual clock: ``take(n)`` moves the clock ``n / rate`` seconds ahead
    and sleeps until it is no longer ahead of real time. A flow that fell
    behind (its upstream was slow to deliver a slice) may catch up by at
    most ``burst`` seconds; the default, two slices' worth (about 20 ms), is
    enough that the time spent receiving a slice is not added to the time
    spent pacing it, which would hold a flow well below ``rate``.
    ``restart()`` drops the credit (a new response starts from now).

    Invariant: ``_clock >= monotonic() - burst`` after every ``take``.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 bytes/s, got {rate!r}")
        self.rate = float(rate)
        self.burst = burst if burst is not None else max(0.002, 2 * self.slice() / self.rate)
        self._clock = time.monotonic()
        self._lock = threading.Lock()

    def restart(self) -> None:
        """Forget the past: the next bytes are paced from now, with no credit."""
        with self._lock:
            self._clock = time.monotonic()

    def take(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._clock = max(self._clock, now - self.burst) + n / self.rate
            wait = self._clock - now
        if wait > 0:
            time.sleep(wait)

    def slice(self) -> int:
        """A send size that keeps pacing smooth: ~10 ms of bytes, 16 KiB to 1 MiB."""
        return int(min(BUFFER, max(16 * 1024, self.rate * 0.01)))


@dataclass
class ProxyStats:
    """Counters of one proxy (read them after the traffic has stopped).

    ``object_gets`` counts GETs of objects (not listings); ``first_get`` and
    ``last_byte`` (``time.monotonic()`` seconds) bound the window from the
    first object GET's arrival to the last byte of any object GET sent: the
    time a client spent moving object bytes through this listener.
    """

    connections: int = 0
    requests: int = 0
    response_bytes: int = 0
    upstream_connections: int = 0
    object_gets: int = 0
    first_get: float | None = None
    last_byte: float | None = None
    faults: list = field(default_factory=list)

    @property
    def transfer_seconds(self) -> float | None:
        if self.first_get is None or self.last_byte is None:
            return None
        return self.last_byte - self.first_get

    def to_dict(self) -> dict:
        return {"connections": self.connections, "requests": self.requests, "response_bytes": self.response_bytes,
                "upstream_connections": self.upstream_connections, "object_gets": self.object_gets,
                "transfer_seconds": self.transfer_seconds, "faults": list(self.faults)}


class Proxy:
    """One listener in front of ``upstream``; see the module docstring.

    Args:
        upstream: ``http://host:port`` of the endpoint (https is refused:
            the proxy does not speak TLS).
        profile: delay and bandwidth knobs.
        fault_policy: called per request; may return an :class:`Action`.
        port: port to listen on (0: a free one).
    """

    def __init__(self, upstream: str, profile: Profile | None = None, *,
                 fault_policy: FaultPolicy | None = None, port: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the proxy relays plain HTTP only; got upstream {upstream!r} "
                             "(use the 'direct' profile for an https endpoint)")
        self.upstream = (parts.hostname, parts.port or 80)
        self.profile = profile or PROFILES["local"]
        self.fault_policy = fault_policy
        self.stats = ProxyStats()
        self._shared = (Pacer(self.profile.listener_bandwidth)
                        if self.profile.listener_bandwidth else None)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0  # requests between arrival and their response's last byte
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", port), backlog=256)
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, after the requests in flight are answered (2 s at most)."""
        self.quiesce(2.0)
        self._stop.set()
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ serving

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.stats.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """Serve one client connection, request after request (keep-alive)."""
        conn = _Connection(self, client)
        try:
            while not self._stop.is_set() and conn.one_exchange():
                pass
        except OSError:
            pass
        finally:
            conn.close()

    def reset_stats(self) -> None:
        """Start counting afresh (between rounds of a benchmark)."""
        with self._lock:
            self.stats = ProxyStats()

    def quiesce(self, timeout: float = 5.0) -> bool:
        """Wait until no request is in flight (so the stats are complete); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def _request_done(self, object_get: bool) -> None:
        with self._idle:
            if object_get:
                self.stats.last_byte = max(self.stats.last_byte or 0.0, time.monotonic())
            self._active -= 1
            self._idle.notify_all()

    def _next_request(self, method: str, target: str, rng: str | None) -> Action | None:
        with self._lock:
            self._active += 1
            self.stats.requests += 1
            index = self.stats.requests
            if is_object_get(method, target):
                stats = self.stats
                stats.object_gets += 1
                if stats.first_get is None:
                    stats.first_get = time.monotonic()
        if self.fault_policy is None:
            return None
        action = self.fault_policy(RequestInfo(index, method, target, rng))
        if action is not None:
            with self._lock:
                self.stats.faults.append((index, action.kind))
        return action


class _Connection:
    """The state of one client connection and its current upstream socket.

    Invariant: ``pending`` holds bytes read from the client past the last
    parsed request (pipelined or early bytes), never more than one head.
    """

    def __init__(self, proxy: Proxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.up: socket.socket | None = None
        self.pending = b""
        self.buf = bytearray(BUFFER)
        rate = proxy.profile.connection_bandwidth
        self.pacer = Pacer(rate) if rate else None
        self.pipe: tuple[int, int] | None = None  # for os.splice, made on first use
        self.pipe_size = 0

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
        action = self.proxy._next_request(method, target, headers.get("range"))
        try:
            return self._exchange(head, headers, method, target, version, body, length, action)
        finally:
            self.proxy._request_done(is_object_get(method, target))

    def _exchange(self, head: bytes, headers: dict[str, str], method: str, target: str, version: str,
                  body: bytes, length: int, action: Action | None) -> bool:
        delay = self.proxy.profile.first_byte_delay
        if delay:
            time.sleep(delay)
        if action is not None and action.kind == "status":
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
            self.up = socket.create_connection(self.proxy.upstream, timeout=60)
            self.up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.proxy._lock:
                self.proxy.stats.upstream_connections += 1
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
            self._relay_chunked(rest, action)
        elif not self._relay_body(rest, length, action):
            return False
        if upstream_close or not keep:
            self._drop_upstream()
        return keep

    def _pace(self, n: int) -> None:
        if self.pacer is not None:
            self.pacer.take(n)
        shared = self.proxy._shared
        if shared is not None:
            shared.take(n)

    def _send(self, data) -> None:
        self._pace(len(data))
        self.client.sendall(data)

    def _slice(self) -> int:
        sizes = [BUFFER]
        if self.pacer is not None:
            sizes.append(self.pacer.slice())
        if self.proxy._shared is not None:
            sizes.append(self.proxy._shared.slice())
        return min(sizes)

    def _relay_body(self, rest: bytes, length: int, action: Action | None) -> bool:
        """Relay ``length`` body bytes (-1: until EOF); False if a fault ended it."""
        limit = action.after_bytes if action is not None else None
        sent = 0
        stats = self.proxy.stats
        if rest:
            rest = rest if length < 0 else rest[:length]
            if limit is not None and len(rest) >= limit:
                return self._fault(rest[:limit], action)
            self._send(rest)
            sent = len(rest)
        if length >= 0 and limit is None and SPLICE:
            sent = self._splice_body(length, sent)
            with self.proxy._lock:
                stats.response_bytes += sent
            return True
        view = memoryview(self.buf)
        step = self._slice()
        while length < 0 or sent < length:
            want = step if length < 0 else min(step, length - sent)
            if limit is not None:
                want = min(want, max(1, limit - sent))
            n = self.up.recv_into(view, want)
            if not n:
                if length < 0:
                    break
                raise OSError("upstream closed mid-body")
            if limit is not None and sent + n >= limit:
                return self._fault(view[: limit - sent], action)
            self._send(view[:n])
            sent += n
        with self.proxy._lock:
            stats.response_bytes += sent
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

    def _relay_chunked(self, rest: bytes, action: Action | None) -> None:
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
        if len(head_part):
            self.client.sendall(head_part)
        if action.kind == "reset":
            # SO_LINGER 0: close() sends RST instead of FIN.
            self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.proxy._stop.wait(action.seconds)
        return False
