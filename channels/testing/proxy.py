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
  with a small burst allowance, :mod:`channels.testing.pacing`);
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
``seconds``, then close). ``stats.faults`` lists the faults actually
injected: a reset or stall of a body no longer than ``n`` bytes is none.
:func:`scripted_faults` and :class:`MixedFaults` are two ready-made policies.

This module is the listener (accepting, threads, counters, stopping);
:mod:`channels.testing.relay` serves each connection.

Efficiency: one thread per client connection. On Linux, bodies move with
``os.splice`` (upstream socket -> a 1 MiB pipe -> client socket): the bytes
never enter this process, and each call releases the GIL. Elsewhere, and
for responses a fault cuts short, through a reused 1 MiB buffer with
``recv_into``/``sendall``. Each upstream socket has a 16 MiB receive buffer
(:data:`~channels.testing.relay.UPSTREAM_BUFFER`), so that the endpoint hands
a response over at once, as S3 would, rather than being woken for every paced
slice of it. Run it in its own process
(``python -m channels.testing.services proxy``) so that it competes with
neither the client nor the server for a GIL; ``benchmarks/test_bench_proxy.py``
measures its pass-through throughput against the endpoint alone.

Example:
    >>> with Proxy(s3.endpoint_url, PROFILES["s3-like"]) as proxy:   # doctest: +SKIP
    ...     Transport(Store(proxy.url)).read_range(url, 0, 1 << 20)
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from channels.testing.faults import Action, FaultPolicy, MixedFaults, RequestInfo, scripted_faults
from channels.testing.pacing import Pacer
from channels.testing.profiles import PROFILES, Profile
from channels.testing.relay import Connection
from channels.testing.wire import is_object_get

__all__ = ["PROFILES", "Action", "MixedFaults", "Pacer", "Profile", "Proxy", "ProxyStats", "RequestInfo",
           "scripted_faults"]


@dataclass
class ProxyStats:
    """Counters of one proxy (read them after the traffic has stopped).

    ``object_gets`` counts GETs of objects (not listings); ``first_get`` and
    ``last_byte`` (``time.monotonic()`` seconds) bound the window from the
    first object GET's arrival to the last byte of any object GET sent: the
    time a client spent moving object bytes through this listener.
    ``faults`` lists ``(request index, kind)`` of every fault injected, in
    the order they happened.
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
            the proxy does not speak TLS), or a list of endpoints holding
            the same objects (replicas): each upstream connection goes to
            the next, in turn, so that they serve requests side by side, as
            S3's many servers do. A write through the proxy reaches one of
            them only: fill each replica directly.
        profile: delay and bandwidth knobs.
        fault_policy: called per request; may return an :class:`Action`.
        port: port to listen on (0: a free one).
    """

    def __init__(self, upstream: str | Sequence[str], profile: Profile | None = None, *,
                 fault_policy: FaultPolicy | None = None, port: int = 0) -> None:
        self.upstreams = [_address(u) for u in ([upstream] if isinstance(upstream, str) else upstream)]
        if not self.upstreams:
            raise ValueError("the proxy needs an upstream endpoint")
        self._turn = itertools.cycle(self.upstreams)
        self.profile = profile or PROFILES["local"]
        self.fault_policy = fault_policy
        self.stats = ProxyStats()
        self.shared = Pacer(self.profile.listener_bandwidth) if self.profile.listener_bandwidth else None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0  # requests between arrival and their response's last byte
        self.stopping = threading.Event()  # stop() began: stalled responses end now
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", port), backlog=256)
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True)

    def next_upstream(self) -> tuple[str, int]:
        """The endpoint the next upstream connection goes to: each in turn."""
        with self._lock:
            return next(self._turn)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, after the requests in flight are answered (2 s at most; stalls end at once)."""
        self.stopping.set()
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

    def reset_stats(self) -> None:
        """Start counting afresh (between rounds of a benchmark)."""
        with self._lock:
            self.stats = ProxyStats()

    def quiesce(self, timeout: float = 5.0) -> bool:
        """Wait until no request is in flight (so the stats are complete); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

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
        conn = Connection(self, client)
        try:
            while not self._stop.is_set() and conn.one_exchange():
                pass
        except OSError:
            pass
        finally:
            conn.close()

    # ------------------------------------------------------------ what the relay reports (relay.Listener)

    def begin(self, method: str, target: str, rng: str | None) -> tuple[int, Action | None]:
        """Count a request that arrived; its index and the policy's fault for it, if any."""
        with self._lock:
            self._active += 1
            self.stats.requests += 1
            index = self.stats.requests
            if is_object_get(method, target):
                self.stats.object_gets += 1
                if self.stats.first_get is None:
                    self.stats.first_get = time.monotonic()
        if self.fault_policy is None:
            return index, None
        return index, self.fault_policy(RequestInfo(index, method, target, rng))

    def end(self, object_get: bool) -> None:
        """A request's response was relayed, whole or broken."""
        with self._idle:
            if object_get:
                self.stats.last_byte = max(self.stats.last_byte or 0.0, time.monotonic())
            self._active -= 1
            self._idle.notify_all()

    def count(self, name: str, n: int) -> None:
        """Add ``n`` to the counter ``name`` of :attr:`stats`."""
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + n)

    def injected(self, index: int, kind: str) -> None:
        """Note a fault injected into the response to request ``index``."""
        with self._lock:
            self.stats.faults.append((index, kind))


def _address(upstream: str) -> tuple[str, int]:
    parts = urlsplit(upstream)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the proxy relays plain HTTP only; got upstream {upstream!r} "
                         "(use the 'direct' profile for an https endpoint)")
    return parts.hostname, parts.port or 80
