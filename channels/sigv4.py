"""SigV4 for S3 requests without a body (GET, HEAD), signed exactly as botocore's ``S3SigV4Auth`` signs them.

Both fast paths sign with it: the listing (one ListObjectsV2 GET per page)
and the transport (one ranged GET per part). Their requests differ from the
last only in path, query, a few headers and the time. botocore's signer
rebuilds everything per request (an ``AWSRequest``, header maps, the
signing key's four HMACs); measured here it is about as much client CPU per
page as parsing 300 keys, and importing it costs every ``channels
download`` about 40 ms of start-up. This one keeps what does not change:
the credential scope and the signing key per (secret, day, region), and per
request hashes one canonical request and makes one HMAC.

What it signs, as botocore does for a request without a body and without
``Content-MD5`` (http or https): ``host`` (the URL's host, its port unless
the scheme's default), ``x-amz-content-sha256`` (the SHA-256 of the empty
body), ``x-amz-date``, with temporary credentials
``x-amz-security-token``, and every header the caller sends (``Range``,
``If-Match``), names in lower case and values with their runs of spaces
folded; the path as sent (S3 paths are not normalized); the query as sent,
which the caller builds in canonical form (names and values percent-encoded
but for ``-_.~``, sorted by name, then value). The tests check the headers
against botocore's for many requests.

Credentials are anything with ``get_frozen_credentials()`` giving
``access_key``, ``secret_key`` and ``token``: botocore's objects (static, or
refreshable: each request asks for the current frozen value, as botocore's
client does) or :class:`StaticCredentials`, which needs no botocore.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

#: SHA-256 of an empty body: the payload hash S3 expects on a GET.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: The headers SigV4 never signs here: they are the connection's, or set on the wire by the HTTP client.
_UNSIGNED = frozenset({"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "expect",
                       "user-agent", "proxy-authorization", "proxy-authenticate", "x-amzn-trace-id",
                       "baggage", "traceparent", "tracestate"})


@dataclass(frozen=True)
class StaticCredentials:
    """Credentials that never change (given as options, or from the environment); never shown in a repr."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)

    def get_frozen_credentials(self) -> StaticCredentials:
        return self


def canonical_query(params: dict[str, str]) -> str:
    """``params`` as SigV4's canonical query: names and values percent-encoded (all but ``-_.~``), sorted.

    Sorted by encoded name, then value, as botocore sorts a URL's query. A
    URL's query built this way is also what it signs (no second form).
    """
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def host_header(url: str) -> str:
    """The ``Host`` of ``url`` as SigV4 signs it: lower case, the port only when not the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


class Signer:
    """Headers that sign S3 requests without a body, for one set of credentials and one region (thread-safe).

    Args:
        credentials: botocore ``Credentials`` (or refreshable ones), or :class:`StaticCredentials`.
        region: the region of the bucket.
        service: the signing name (``s3``).
    """

    def __init__(self, credentials, region: str, service: str = "s3") -> None:
        self.credentials = credentials
        self.region = region
        self.service = service
        self._lock = threading.Lock()
        self._key: tuple[str, str, bytes] | None = None  # (secret, day, signing key)

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret and cached[1] == day:
            return cached[2]
        key = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
        for part in (self.region, self.service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        with self._lock:
            self._key = (secret, day, key)
        return key

    def headers(self, host: str, path: str, query: str = "", *, method: str = "GET",
                sent: dict[str, str] | None = None, now: datetime | None = None) -> dict[str, str]:
        """The headers to send with ``METHOD path?query`` to ``host``: ``sent``, Host, the SigV4 ones, Authorization.

        Args:
            host: as :func:`host_header` gives it.
            path: the request's path as sent (``/bucket/key``, ``/``), already percent-encoded.
            query: the query as sent, in canonical form (:func:`canonical_query`).
            method: ``GET`` or ``HEAD`` (no body either way).
            sent: the request's own headers (``Range``, ``If-Match``): signed, and returned with the rest.
            now: the signing time (UTC); tests pin it.
        """
        frozen = self.credentials.get_frozen_credentials()
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        token = frozen.token
        signing = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": stamp}
        if token:
            signing["x-amz-security-token"] = " ".join(token.split())
        for name, value in (sent or {}).items():
            if (lname := name.lower()) not in _UNSIGNED:
                signing[lname] = " ".join(value.split())
        names = sorted(signing)
        signed = ";".join(names)
        canonical_headers = "".join(f"{n}:{signing[n]}\n" for n in names)
        request = f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{EMPTY_SHA256}"
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(frozen.secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        out = dict(sent or {})
        out.update({"Host": host, "X-Amz-Date": stamp})
        if token:
            out["X-Amz-Security-Token"] = token
        out["X-Amz-Content-SHA256"] = EMPTY_SHA256
        out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
        return out
