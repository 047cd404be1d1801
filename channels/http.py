"""Keep-alive HTTP/1.1 connections for the two S3 fast paths, over the standard library's http.client.

The listing and the transport send GETs and HEADs without a body to a few
hosts, each read whole or straight into the caller's buffer, and reuse their
connections. That is all they asked of urllib3, whose import (its URL
parser's regular expressions, its retry and TLS helpers, and
importlib.metadata for its HTTP/2 probe) cost every ``channels download``
about 20 ms of start-up before its first request, a fifth of the imports on
the download path. :class:`Pools` does that small job with http.client,
which urllib3 itself sends through.

What it keeps from urllib3's behaviour: a connection is reused only when its
response was read to the end and the server did not ask to close it; an idle
connection the server has closed meanwhile is noticed before reuse (its
socket polls readable) and replaced; one whose request fails before any byte
of an answer came back is sent once more on a new connection, since a
keep-alive connection may close under any request. Anything else is the
caller's to retry. Connections are made with the connect timeout and then
read with the read timeout; TLS verifies against the system's CAs, or
``AWS_CA_BUNDLE`` where set.
"""

from __future__ import annotations

import http.client
import logging
import os
import select
import threading
from collections import deque

log = logging.getLogger(__name__)

#: What a broken connection or a malformed answer raises: the caller's cue to retry elsewhere.
NETWORK_ERRORS = (OSError, http.client.HTTPException)
_STALE = (ConnectionError, http.client.RemoteDisconnected)


class Response:
    """One answer: ``status``, ``headers`` (case-insensitive ``get``) and its body, read once.

    :meth:`release` hands the connection back for the next request when the
    body was read to the end; :meth:`close` drops it. Call one of them.
    """

    __slots__ = ("_conn", "_left", "_pool", "_raw", "headers", "status")

    def __init__(self, pool: Pool, conn: http.client.HTTPConnection, raw: http.client.HTTPResponse) -> None:
        self.status = raw.status
        self.headers = raw.msg
        self._raw, self._conn, self._pool = raw, conn, pool
        # A Content-Length body is read from the socket's own reader, one recv per call into the
        # caller's buffer (no copy, and the count of bytes is exact when the connection breaks);
        # anything else (chunked, no length) through http.client, which decodes it.
        self._left = raw.length if not raw.chunked and raw.length is not None else None

    @property
    def length(self) -> int | None:
        """Body bytes still to come, when the answer gave a Content-Length (else None)."""
        return self._left

    def readinto(self, view: memoryview) -> int:
        """Read at most ``len(view)`` body bytes into ``view`` (one socket read); 0 at the end.

        Raises:
            http.client.IncompleteRead: the connection ended before Content-Length bytes.
        """
        left = self._left
        if left is None:
            return self._raw.readinto(view)
        if left == 0 or not len(view):
            return 0
        got = self._raw.fp.readinto1(view[:left] if len(view) > left else view)
        if not got:
            raise http.client.IncompleteRead(b"", left)
        self._left = left - got
        return got

    def read(self, amt: int | None = None) -> bytes:
        """The rest of the body (or at most ``amt`` bytes of it)."""
        if self._left is None:
            return self._raw.read(amt)
        want = self._left if amt is None else min(amt, self._left)
        out = bytearray(want)
        view, n = memoryview(out), 0
        while n < want:
            n += self.readinto(view[n:])
        return bytes(out)

    def release(self) -> None:
        """Return the connection for reuse if the body was read to the end; else drop it."""
        raw = self._raw
        done = self._left == 0 if self._left is not None else raw.isclosed()
        if done and not raw.will_close and self._pool is not None:
            raw.close()  # lets http.client send the next request on this connection
            self._pool._put(self._conn)
        else:
            self.close()
        self._pool = None

    def close(self) -> None:
        """Drop the connection (never reuse one whose answer was not read to the end)."""
        try:
            self._raw.close()
        finally:
            self._conn.close()
            self._pool = None


class Pool:
    """Connections to one ``scheme://host:port``: idle ones reused last in, first out; thread-safe.

    Any number of requests may be in flight at once; at most ``maxsize``
    idle connections are kept for later ones, the rest closed.
    """

    def __init__(self, scheme: str, netloc: str, *, connect_timeout: float, read_timeout: float,
                 maxsize: int, headers: dict[str, str] | None = None, context=None) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme!r} for {netloc}: use http or https")
        self.scheme, self.netloc = scheme, netloc
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._maxsize = maxsize
        self._headers = dict(headers or {})
        self._context = context
        self._idle: deque[http.client.HTTPConnection] = deque()
        self._lock = threading.Lock()

    def request(self, method: str, path: str, headers: dict[str, str]) -> Response:
        """Send ``METHOD path`` (no body) with ``headers`` and return the answer, body unread.

        Raises:
            OSError, http.client.HTTPException: the request could not be sent, or no answer came.
        """
        sent = {**self._headers, **headers} if self._headers else headers
        conn, reused = self._get()
        try:
            raw = self._exchange(conn, method, path, sent)
        except _STALE:
            conn.close()
            if not reused:
                raise
            conn = self._new()  # the server closed a kept connection under us: once more, afresh
            try:
                raw = self._exchange(conn, method, path, sent)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        if log.isEnabledFor(logging.DEBUG):
            log.debug('%s://%s "%s %s HTTP/1.1" %s %s', self.scheme, self.netloc, method, path, raw.status,
                      raw.length)
        return Response(self, conn, raw)

    @staticmethod
    def _exchange(conn: http.client.HTTPConnection, method: str, path: str,
                  headers: dict[str, str]) -> http.client.HTTPResponse:
        conn.request(method, path, headers=headers)
        return conn.getresponse()

    def _get(self) -> tuple[http.client.HTTPConnection, bool]:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._new(), False
            if not _dropped(conn):
                return conn, True
            conn.close()

    def _new(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(self.netloc, timeout=self._connect_timeout,
                                               context=self._context or _tls_context())
        else:
            conn = http.client.HTTPConnection(self.netloc, timeout=self._connect_timeout)
        try:
            conn.connect()
            conn.sock.settimeout(self._read_timeout)
        except BaseException:
            conn.close()
            raise
        return conn

    def _put(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        """Close every idle connection (those in use close when their answers are done with)."""
        with self._lock:
            idle, self._idle = list(self._idle), deque()
        for conn in idle:
            conn.close()


class Pools:
    """One :class:`Pool` per ``(scheme, netloc)``, made on first use; thread-safe.

    Args:
        connect_timeout: seconds to make a connection.
        read_timeout: seconds between bytes of an answer.
        maxsize: idle connections kept per host.
        headers: sent with every request (a request's own win).
    """

    def __init__(self, *, connect_timeout: float, read_timeout: float, maxsize: int,
                 headers: dict[str, str] | None = None) -> None:
        self._kw = {"connect_timeout": connect_timeout, "read_timeout": read_timeout, "maxsize": maxsize,
                    "headers": headers}
        self._pools: dict[tuple[str, str], Pool] = {}
        self._lock = threading.Lock()

    def pool(self, scheme: str, netloc: str) -> Pool:
        """The pool of ``scheme://netloc``."""
        key = (scheme, netloc)
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._pools[key] = Pool(scheme, netloc, **self._kw)
        return pool

    def clear(self) -> None:
        """Close every idle connection of every pool."""
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.clear()


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server (its socket reads EOF, or stray bytes)."""
    sock = conn.sock
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


_tls_lock = threading.Lock()
_tls: dict[str | None, object] = {}


def _tls_context():
    """The TLS context of https pools: the system's CAs, or those of ``AWS_CA_BUNDLE`` where set.

    One per bundle, made on first use (ssl is imported only for https).
    """
    bundle = os.environ.get("AWS_CA_BUNDLE") or None
    with _tls_lock:
        context = _tls.get(bundle)
        if context is None:
            import ssl

            context = _tls[bundle] = ssl.create_default_context(cafile=bundle)
        return context
