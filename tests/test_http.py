"""channels.http: keep-alive connections reused only when safe, against a real HTTP server on loopback.

The server (the standard library's, HTTP/1.1) records which connection each
request came on, so the tests assert on reuse, not on timing.
"""

from __future__ import annotations

import http.client
import http.server
import threading

import pytest

from channels.http import Pool, Pools

BODY = bytes(range(256)) * 40  # 10,240 bytes


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _record(self) -> int:
        srv = self.server
        with srv.lock:
            srv.seen.append((self.client_address[1], self.command, self.path, dict(self.headers)))
            n = srv.per_conn.get(self.client_address[1], 0) + 1
            srv.per_conn[self.client_address[1]] = n
        return n

    def _send(self, body: bytes, *, length: int | None = None, chunked: bool = False) -> None:
        self.send_response(200)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if chunked:
            half = len(body) // 2
            for piece in (body[:half], body[half:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        nth = self._record()
        if self.path == "/ok":
            self._send(BODY)
        elif self.path == "/chunked":
            self._send(BODY, chunked=True)
        elif self.path == "/close-after":  # answers, then closes the kept connection, unannounced
            self._send(BODY)
            self.close_connection = True
        elif self.path == "/drop-second":  # the second request on a connection gets no answer at all
            if nth >= 2:
                self.close_connection = True
                return
            self._send(BODY)
        elif self.path == "/drop":
            self.close_connection = True
        elif self.path == "/short":  # promises more than it sends, then closes
            self._send(BODY[:100], length=len(BODY))
            self.close_connection = True


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.seen = []
    srv.per_conn = {}
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _pool(server, maxsize: int = 4) -> Pool:
    host, port = server.server_address
    return Pool("http", f"{host}:{port}", connect_timeout=5, read_timeout=5, maxsize=maxsize,
                headers={"User-Agent": "channels-test"})


def _connections(server) -> list[int]:
    return [port for port, *_ in server.seen]


def test_a_response_read_to_the_end_gives_its_connection_to_the_next_request(server):
    pool = _pool(server)
    for _ in range(3):
        resp = pool.request("GET", "/ok", {"X-Test": "1"})
        assert resp.status == 200 and resp.read() == BODY
        resp.release()
    ports = _connections(server)
    assert len(ports) == 3 and len(set(ports)) == 1
    assert server.seen[0][3]["User-Agent"] == "channels-test" and server.seen[0][3]["X-Test"] == "1"


def test_readinto_reads_the_body_into_the_callers_buffer_and_stops_at_its_length(server):
    pool = _pool(server)
    resp = pool.request("GET", "/ok", {})
    assert resp.length == len(BODY)
    buf = bytearray(len(BODY) + 100)
    view, n = memoryview(buf), 0
    while got := resp.readinto(view[n:]):
        n += got
    assert n == len(BODY) and bytes(buf[:n]) == BODY and resp.length == 0
    resp.release()
    pool.request("GET", "/ok", {}).close()
    assert len(set(_connections(server))) == 1


def test_a_half_read_response_never_gives_its_connection_back(server):
    pool = _pool(server)
    resp = pool.request("GET", "/ok", {})
    assert resp.readinto(memoryview(bytearray(10))) == 10
    resp.release()  # the rest of the body is still on the wire: the connection is dropped
    resp = pool.request("GET", "/ok", {})
    assert resp.read() == BODY
    resp.release()
    assert len(set(_connections(server))) == 2


def test_a_chunked_body_is_decoded_and_its_connection_reused(server):
    pool = _pool(server)
    resp = pool.request("GET", "/chunked", {})
    assert resp.length is None and resp.read() == BODY
    resp.release()
    resp = pool.request("HEAD", "/ok", {})
    assert resp.status == 200 and resp.length == 0 and resp.read() == b""
    resp.release()
    pool.request("GET", "/ok", {}).close()
    assert len(set(_connections(server))) == 1


def test_an_idle_connection_the_server_closed_is_replaced_before_reuse(server):
    pool = _pool(server)
    resp = pool.request("GET", "/close-after", {})
    assert resp.read() == BODY
    resp.release()  # the server closes it right after: the next request must not be lost on it
    for _ in range(500):  # the server closes on its own thread: wait until that reaches this side
        conn = pool._idle[-1] if pool._idle else None
        if conn is None or _readable(conn):
            break
        threading.Event().wait(0.01)
    resp = pool.request("GET", "/ok", {})
    assert resp.read() == BODY
    resp.release()
    ports = _connections(server)
    assert len(ports) == 2 and len(set(ports)) == 2  # no request was sent on the dead one


def test_a_kept_connection_closed_under_a_request_is_retried_once_on_a_new_one(server):
    pool = _pool(server)
    resp = pool.request("GET", "/drop-second", {})
    assert resp.read() == BODY
    resp.release()
    resp = pool.request("GET", "/drop-second", {})  # on the kept connection: no answer; then afresh
    assert resp.status == 200 and resp.read() == BODY
    resp.release()
    ports = _connections(server)
    assert len(ports) == 3 and ports[0] == ports[1] != ports[2]


def test_a_new_connection_that_gets_no_answer_raises(server):
    pool = _pool(server)
    with pytest.raises(http.client.RemoteDisconnected):
        pool.request("GET", "/drop", {})
    assert len(_connections(server)) == 1  # not sent twice


def test_a_body_cut_short_raises_incomplete_read(server):
    pool = _pool(server)
    resp = pool.request("GET", "/short", {})
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    resp.close()
    resp = pool.request("GET", "/short", {})
    view, n = memoryview(bytearray(len(BODY))), 0
    with pytest.raises(http.client.IncompleteRead):
        while True:
            n += resp.readinto(view[n:])
    assert n == 100  # every byte that came is counted, so a retry resumes at the right offset
    resp.close()


def test_at_most_maxsize_idle_connections_are_kept(server):
    pool = _pool(server, maxsize=2)
    answers = [pool.request("GET", "/ok", {}) for _ in range(4)]  # four at once: four connections
    for resp in answers:
        assert resp.read() == BODY
        resp.release()
    assert len(pool._idle) == 2
    pool.clear()
    assert len(pool._idle) == 0


def test_pools_make_one_pool_per_host_and_refuse_other_schemes(server):
    host, port = server.server_address
    pools = Pools(connect_timeout=5, read_timeout=5, maxsize=2)
    assert pools.pool("http", f"{host}:{port}") is pools.pool("http", f"{host}:{port}")
    assert pools.pool("http", f"{host}:{port}") is not pools.pool("http", f"localhost:{port}")
    with pytest.raises(ValueError, match="unsupported scheme 'ftp'"):
        pools.pool("ftp", "example.com")
    pools.clear()


def _readable(conn) -> bool:
    import select

    return bool(select.select([conn.sock], [], [], 0)[0])


def _self_signed(folder) -> str:
    """A certificate and key for 127.0.0.1, in one PEM file; its path."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "channels-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = folder / "server.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(path)


def test_https_verifies_the_server_and_trusts_aws_ca_bundle(tmp_path, monkeypatch):
    import ssl

    pem = _self_signed(tmp_path)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.lock, srv.seen, srv.per_conn = threading.Lock(), [], {}
    srv.handle_error = lambda request, address: None  # the refused handshake, on the server's side
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    netloc = f"127.0.0.1:{srv.server_address[1]}"
    try:
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
        with pytest.raises(ssl.SSLCertVerificationError):  # a certificate nobody vouches for is refused
            Pool("https", netloc, connect_timeout=5, read_timeout=5, maxsize=2).request("GET", "/ok", {})
        monkeypatch.setenv("AWS_CA_BUNDLE", pem)
        pool = Pool("https", netloc, connect_timeout=5, read_timeout=5, maxsize=2)
        for _ in range(2):
            resp = pool.request("GET", "/ok", {})
            assert resp.status == 200 and resp.read() == BODY
            resp.release()
        assert len(srv.seen) == 2 and len({port for port, *_ in srv.seen}) == 1  # kept alive over TLS
    finally:
        srv.shutdown()
        srv.server_close()
