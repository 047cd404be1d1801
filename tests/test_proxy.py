"""The latency proxy: a real moto endpoint behind it, real sockets, real clients.

Timing assertions are lower bounds only (a delay or a cap can only make
things slower), so a busy machine cannot fail them.
"""

from __future__ import annotations

import http.client
import threading
import time

import botocore.exceptions
import pytest

from channels.listing import list_prefix
from channels.store import Store
from channels.testing import Dataset, fill_bucket, object_bytes, uniform_sizes
from channels.testing.profiles import MB, PROFILES, Profile, get_profile
from channels.testing.proxy import Action, Pacer, Proxy, scripted_faults
from channels.testing.relay import UPSTREAM_BUFFER
from channels.testing.s3 import dummy_credentials
from channels.testing.services import cpu_seconds, start_endpoint, start_proxies
from channels.testing.wire import SPLICE, splice
from channels.transport import Transport, TransportConfig

SIZE = 2 * 1024 * 1024


@pytest.fixture
def data(s3_client, bucket):
    ds = Dataset("u", uniform_sizes(3, SIZE), prefix="p/")
    fill_bucket(s3_client, bucket, ds, create=False)
    return bucket, ds


def _client(url, **config):
    import boto3
    import botocore.config

    return boto3.client("s3", endpoint_url=url, config=botocore.config.Config(retries={"max_attempts": 1},
                                                                              **config))


def test_pass_through_bytes_and_keep_alive(s3, data):
    bucket, ds = data
    with Proxy(s3.endpoint_url, PROFILES["local"]) as proxy:
        c = _client(proxy.url, max_pool_connections=1)
        for key in ds.keys():
            assert c.get_object(Bucket=bucket, Key=key)["Body"].read() == object_bytes(key, SIZE)
        part = c.get_object(Bucket=bucket, Key=ds.keys()[0], Range="bytes=100-199")["Body"].read()
        assert part == object_bytes(ds.keys()[0], SIZE)[100:200]
        c.put_object(Bucket=bucket, Key="p/put.bin", Body=b"x" * 300_000)  # a body through the proxy
        listed = c.list_objects_v2(Bucket=bucket, Prefix="p/")["KeyCount"]
        assert c.head_object(Bucket=bucket, Key="p/put.bin")["ContentLength"] == 300_000
    assert listed == 4
    # moto closes every connection; the client kept one (keep-alive), the proxy reconnected upstream.
    assert proxy.stats.connections == 1
    assert proxy.stats.requests == 7
    assert proxy.stats.upstream_connections == 7
    assert proxy.stats.response_bytes >= 3 * SIZE + 100


def test_transport_through_proxy_reads_every_byte(s3, data):
    bucket, ds = data
    with Proxy(s3.endpoint_url, PROFILES["s3-like"]) as proxy:
        listing = list_prefix(f"s3://{bucket}/p/", store=Store(proxy.url))
        got = {}
        with Transport(Store(proxy.url), TransportConfig(part_size=512 * 1024)) as t:
            for chunk in t.stream(listing.refs):
                got.setdefault(chunk.ref.key, bytearray()).extend(chunk.data)
    assert {k: bytes(v) for k, v in got.items()} == {k.split("/", 1)[1]: object_bytes(k, SIZE) for k in ds.keys()}


def test_first_byte_delay_is_added_to_each_request(s3, data):
    bucket, ds = data
    delay = 0.15
    with Proxy(s3.endpoint_url, Profile("slow", first_byte_delay=delay)) as proxy:
        c = _client(proxy.url)
        for key in ds.keys()[:2]:
            t = time.perf_counter()
            body = c.get_object(Bucket=bucket, Key=key, Range="bytes=0-9")["Body"]
            assert time.perf_counter() - t >= delay
            assert body.read() == object_bytes(key, SIZE)[:10]


def test_connection_bandwidth_cap(s3, data):
    bucket, ds = data
    rate = 20 * MB
    with Proxy(s3.endpoint_url, Profile("capped", connection_bandwidth=rate)) as proxy:
        c = _client(proxy.url)
        t = time.perf_counter()
        assert len(c.get_object(Bucket=bucket, Key=ds.keys()[0])["Body"].read()) == SIZE
        elapsed = time.perf_counter() - t
    assert elapsed >= SIZE / rate - Pacer(rate).burst  # at most one burst of credit, never more


def test_listener_bandwidth_is_shared_by_connections(s3, data):
    bucket, ds = data
    rate = 20 * MB
    with Proxy(s3.endpoint_url, Profile("nic", listener_bandwidth=rate)) as proxy:
        c = _client(proxy.url, max_pool_connections=3)
        t = time.perf_counter()
        threads = [threading.Thread(target=lambda k=k: c.get_object(Bucket=bucket, Key=k)["Body"].read())
                   for k in ds.keys()]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t
    # Three objects over one shared cap: no faster than their sum at the rate (less one burst).
    assert elapsed >= 3 * SIZE / rate - Pacer(rate).burst
    assert proxy.stats.connections == 3


@pytest.mark.skipif(not SPLICE, reason="os.splice is Linux-only; the proxy copies through a buffer elsewhere")
def test_splice_waits_on_a_descriptor_above_1024():
    """A busy proxy holds more than 1024 descriptors; select() cannot wait on those, poll() can."""
    import fcntl
    import os
    import resource
    import socket

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    a, b = socket.socketpair()
    high = socket.socket(fileno=fcntl.fcntl(a.fileno(), fcntl.F_DUPFD, 1500))
    a.close()
    high.settimeout(5)  # non-blocking underneath, as the proxy's sockets
    r, w = os.pipe()
    try:
        assert high.fileno() >= 1024
        threading.Timer(0.1, b.sendall, [b"late bytes"]).start()  # not readable yet when splice starts
        assert splice(high, high.fileno(), w, 64, readable=True) == len(b"late bytes")
        assert os.read(r, 64) == b"late bytes"
    finally:
        for fd in (r, w):
            os.close(fd)
        high.close()
        b.close()


def test_pacer_lower_bound():
    p = Pacer(10 * MB)
    assert p.burst == pytest.approx(0.02)  # two 100 KB slices
    p.restart()
    t = time.perf_counter()
    for _ in range(10):
        p.take(100_000)
    assert time.perf_counter() - t >= 0.1 - 0.001  # a restarted pacer lends no credit
    with pytest.raises(ValueError, match="rate"):
        Pacer(0)


def test_scripted_status_fault(s3, data):
    bucket, ds = data
    policy = scripted_faults(status={1: 503})
    with Proxy(s3.endpoint_url, fault_policy=policy) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("GET", f"/{bucket}/{ds.keys()[0]}")
        resp = conn.getresponse()
        assert resp.status == 503
        assert b"SlowDown" in resp.read()
    assert policy.faults == [(1, "status")]
    assert proxy.stats.upstream_connections == 0  # answered without reaching the endpoint


def test_reset_fault_is_retried_by_the_transport(s3, data):
    bucket, ds = data
    policy = scripted_faults(reset_after={1: 100_000})
    with Proxy(s3.endpoint_url, fault_policy=policy) as proxy:
        listing = list_prefix(f"s3://{bucket}/p/", store=Store(s3.endpoint_url))
        ref = listing.refs[0]
        with Transport(Store(proxy.url), TransportConfig(backoff_base=0.01)) as t:
            data_ = t.read_range(ref, 0, ref.size)
            retries = t.stats.retries
    assert bytes(data_) == object_bytes(ds.keys()[0], SIZE)
    assert policy.faults == [(1, "reset")]
    assert retries >= 1


def test_only_faults_that_withhold_bytes_are_injected(s3, data):
    """A reset after the body's last byte is no fault; one byte short is; the stats list what happened."""
    bucket, ds = data
    key = ds.keys()[0]
    policy = scripted_faults(reset_after={1: SIZE, 2: SIZE - 1}, stall_after={3: (10, 30.0)})
    with Proxy(s3.endpoint_url, fault_policy=policy) as proxy:
        c = _client(proxy.url, read_timeout=0.5)
        assert c.get_object(Bucket=bucket, Key=key)["Body"].read() == object_bytes(key, SIZE)  # nothing withheld
        with pytest.raises(botocore.exceptions.BotoCoreError):  # reset one byte short
            c.get_object(Bucket=bucket, Key=key)["Body"].read()
        with pytest.raises(botocore.exceptions.BotoCoreError):  # stalled after 10 bytes (until the proxy stops)
            c.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert policy.faults == [(1, "reset"), (2, "reset"), (3, "stall")]  # asked for
    assert proxy.stats.faults == [(2, "reset"), (3, "stall")]  # injected
    assert proxy.stats.requests == 3


def test_action_and_profile_validation():
    with pytest.raises(ValueError, match="status, reset or stall"):
        Action("explode")
    with pytest.raises(ValueError, match="first_byte_delay"):
        Profile("bad", first_byte_delay=-1)
    with pytest.raises(ValueError, match="connection_bandwidth"):
        Profile("bad", connection_bandwidth=0)
    with pytest.raises(ValueError, match="s3-like"):
        get_profile("nope")
    with pytest.raises(ValueError, match="plain HTTP"):
        Proxy("https://s3.amazonaws.com")


def test_proxies_in_a_child_process(s3, data):
    bucket, ds = data
    with start_proxies(s3.endpoint_url, [PROFILES["local"]], listeners=2, listener_bandwidth=50 * MB) as child:
        urls = child.info["urls"]["local"]
        assert len(urls) == 2 and len(set(urls)) == 2
        c = _client(urls[0])
        c.list_objects_v2(Bucket=bucket, Prefix="p/")  # a listing: not an object GET
        for key in ds.keys()[:2]:
            assert c.get_object(Bucket=bucket, Key=key)["Body"].read() == object_bytes(key, SIZE)
        stats = child.command("stats")
        assert stats[urls[0]]["object_gets"] == 2 and stats[urls[0]]["requests"] == 3
        # Two objects through a 50 MB/s interface: the window is at least their bytes over it.
        assert stats[urls[0]]["transfer_seconds"] >= 2 * SIZE / (50 * MB) - Pacer(50 * MB).burst
        assert stats[urls[1]]["transfer_seconds"] is None
        assert child.command("reset") == {"reset": 2}
        assert child.command("stats")[urls[0]]["requests"] == 0
        assert "unknown command" in child.command("bogus")["error"]
        assert child.cpu() > 0
    assert cpu_seconds(child.pid) is None  # gone


def test_a_proxy_over_replicas_sends_each_request_to_the_next_in_turn(s3, s3_client, bucket):
    # A second endpoint in a process of its own (moto's state is per process), holding another
    # body under the same key, so that each answer says which replica served it.
    with dummy_credentials(), start_endpoint() as other:
        _client(other.info["url"]).create_bucket(Bucket=bucket)
        _client(other.info["url"]).put_object(Bucket=bucket, Key="r/k", Body=b"second")
        s3_client.put_object(Bucket=bucket, Key="r/k", Body=b"first")
        with start_proxies([s3.endpoint_url, other.info["url"]], [PROFILES["local"]]) as child:
            c = _client(child.info["urls"]["local"][0], max_pool_connections=1)
            bodies = [c.get_object(Bucket=bucket, Key="r/k")["Body"].read() for _ in range(4)]
            stats = child.command("stats")[child.info["urls"]["local"][0]]
    assert bodies == [b"first", b"second", b"first", b"second"]
    assert stats["connections"] == 1 and stats["upstream_connections"] == 4


#: The body of _Upstream's /big: as large as the proxy's upstream receive buffer.
BIG = UPSTREAM_BUFFER


class _Upstream:
    """A small HTTP/1.1 server that keeps connections alive (unlike moto) and
    can answer chunked; it drops a connection after 0.3 s idle."""

    def __enter__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        upstream = self
        self.sent = threading.Event()  # the handler of /big wrote its whole body

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 0.3

            def do_GET(self):
                if self.path == "/chunked":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in (b"hello ", b"chunked ", b"world"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                elif self.path == "/big":
                    self.send_response(200)
                    self.send_header("Content-Length", str(BIG))
                    self.end_headers()
                    self.wfile.write(bytes(BIG))
                    self.wfile.flush()
                    upstream.sent.set()
                else:
                    body = self.path.encode() * 1000
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_chunked_keep_alive_and_stale_upstream_connection():
    with _Upstream() as upstream, Proxy(upstream.url) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        for _ in range(2):
            conn.request("GET", "/chunked")
            resp = conn.getresponse()
            assert resp.read() == b"hello chunked world"
        conn.request("GET", "/a")
        assert conn.getresponse().read() == b"/a" * 1000
        assert proxy.stats.upstream_connections == 1  # the upstream kept its connection alive
        time.sleep(0.8)  # the upstream drops the idle connection; the proxy finds out on its next use
        conn.request("GET", "/b")
        assert conn.getresponse().read() == b"/b" * 1000
    assert proxy.stats.connections == 1
    assert proxy.stats.upstream_connections == 2


def test_the_endpoint_hands_over_a_paced_body_at_once():
    """Pacing holds back the client, not the endpoint: its whole response is taken while the client has little."""
    slow = Profile("slow", connection_bandwidth=50 * MB)
    with _Upstream() as upstream, Proxy(upstream.url, slow) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        conn.request("GET", "/big")
        resp = conn.getresponse()
        got, at_sent = 0, None
        while chunk := resp.read(256 * 1024):
            got += len(chunk)
            if at_sent is None and upstream.sent.is_set():
                at_sent = got
        assert got == BIG
        assert at_sent is not None and at_sent < BIG // 8, at_sent
