"""The fast S3 path: keep-alive connections (:mod:`channels.http`), SigV4 headers as botocore
signs them, and bodies read straight into the caller's buffer.

Measured on this project's 2-core machine (DESIGN.md), a thread pool reading
ranged GETs with http.client into reused buffers costs the least client CPU per
GB of every client tried; boto3 adds its request pipeline on top, s3fs an event
loop. Credentials are resolved as botocore resolves them (botocore itself is
imported only where the environment or the options do not settle them:
:func:`channels.store.aws_identity`), and each request is signed by
:mod:`channels.sigv4`, which gives botocore's ``S3SigV4Auth`` headers (tested
against it) for a small part of its CPU.

Addressing: path style (``endpoint/bucket/key``) against a custom endpoint
(``--endpoint-url``, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL); virtual-hosted
style (``bucket.s3.region.amazonaws.com/key``) against AWS, path style there
for bucket names with dots (TLS certificates do not cover them).
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from channels.errors import ChannelsError, ObjectChangedError, SourceNotFoundError, TransportError
from channels.http import NETWORK_ERRORS, Pools
from channels.sigv4 import Signer, host_header
from channels.store import Store, aws_identity, bucket_location, endpoint_from_env
from channels.transport.backends.base import Backend, OnData, Progress
from channels.transport.config import TransportConfig
from channels.transport.errors import AccessDeniedError, Cancelled, PartialRead, TransientHTTPError
from channels.transport.stats import TransportStats

log = logging.getLogger(__name__)

#: Bytes read per ``readinto`` call: the granularity of resume and cancel.
READ_SLICE = 1024 * 1024
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_NETWORK_ERRORS = NETWORK_ERRORS
_CODE = re.compile(rb"<Code>([^<]{1,200})</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]{1,500})</Message>")
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``, taking the key verbatim.

    Keys may hold ``?``, ``#`` and ``%``: no URL parsing past the bucket.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("s3", "s3a", "s3n"):
        raise ValueError(f"not an S3 URL: {url!r} (expected s3://bucket/key)")
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise ValueError(f"S3 URL {url!r} names no object (expected s3://bucket/key)")
    return bucket, key


def quote_key(key: str) -> str:
    """Percent-encode a key as SigV4 and S3 expect: all but unreserved and ``/``."""
    return quote(key, safe="/~")


class S3Backend(Backend):
    """Ranged GETs over keep-alive connections, signed with our SigV4 (:mod:`channels.sigv4`, botocore's signature).

    Credentials come from the Store's options (``anon``, ``key``/``secret``/
    ``token``, ``profile``, as s3fs names them) or botocore's usual chain
    (environment, config files, instance metadata); with none the requests
    go unsigned. No credential value or signature is ever put in a message.
    """

    name = "s3"

    @property
    def verifies_etag(self) -> bool:
        """Every read sends ``If-Match`` with the listed ETag (``TransportConfig.verify_etag``)."""
        return self.config.verify_etag

    def __init__(self, store: Store, config: TransportConfig, stats: TransportStats) -> None:
        super().__init__(store, config, stats)
        self._options = dict(store.options)
        endpoint = endpoint_from_env(store.endpoint_url)
        self._endpoint = urlsplit(endpoint) if endpoint else None
        self._pools = Pools(connect_timeout=config.connect_timeout, read_timeout=config.read_timeout,
                            maxsize=max(16, 2 * config.max_workers),
                            headers={"User-Agent": "channels-transport/0.1"})
        self._lock = threading.Lock()
        self._resolved = False
        self._credentials = None  # what aws_identity found, or None: unsigned
        self._signers: dict[str, Signer] = {}  # by region
        self._hosts: dict[tuple[str, str], str] = {}  # the Host SigV4 signs, by (scheme, netloc)
        self._region = config.region
        self._bucket_region: dict[str, str] = {}  # learnt from redirects (AWS only)

    # ------------------------------------------------------------ identity

    def _resolve(self) -> None:
        """Find credentials and region once (may consult instance metadata)."""
        with self._lock:
            if self._resolved:
                return
            creds, self._region = aws_identity(self._options, self._region)
            if creds is None:
                log.info("no AWS credentials found: sending unsigned S3 requests")
            self._credentials = creds
            self._resolved = True

    def _signer(self, bucket: str) -> Signer | None:
        """The signer for a bucket's region (one per region: it keeps the day's signing key)."""
        if self._credentials is None:
            return None
        region = self._bucket_region.get(bucket, self._region)
        signer = self._signers.get(region)
        if signer is None:
            signer = self._signers.setdefault(region, Signer(self._credentials, region))
        return signer

    # ------------------------------------------------------------ requests

    def _locate(self, bucket: str, key: str) -> tuple[str, str, str]:
        """``(scheme, netloc, path)`` of an object (path already quoted)."""
        scheme, netloc, root = bucket_location(bucket, self._bucket_region.get(bucket, self._region), self._endpoint)
        return scheme, netloc, f"{root}/{quote_key(key)}"

    def _host(self, scheme: str, netloc: str) -> str:
        host = self._hosts.get((scheme, netloc))
        if host is None:
            host = self._hosts.setdefault((scheme, netloc), host_header(f"{scheme}://{netloc}"))
        return host

    def _send(self, method: str, bucket: str, key: str, headers: dict[str, str]):
        """One request (plus one re-send if AWS names another region)."""
        if not self._resolved:
            self._resolve()
        for _ in range(2):
            scheme, netloc, path = self._locate(bucket, key)
            signer = self._signer(bucket)
            send = headers if signer is None else signer.headers(self._host(scheme, netloc), path, method=method,
                                                                  sent=headers)
            self.stats.add(requests=1)
            try:
                resp = self._pools.pool(scheme, netloc).request(method, path, send)
            except _NETWORK_ERRORS as exc:
                raise PartialRead(0, exc) from exc
            region = resp.headers.get("x-amz-bucket-region")
            if (self._endpoint is None and region and resp.status in (301, 307, 400)
                    and region != self._bucket_region.get(bucket, self._region)):
                _discard(resp)
                self._bucket_region[bucket] = region
                continue
            return resp
        return resp

    def _read_into(self, url: str, start: int, buf: memoryview, size: int | None,
                   etag: str | None, cancel: threading.Event | None) -> None:
        self._get_range(url, start, len(buf), size, etag, cancel,
                        lambda nread: buf[nread:nread + READ_SLICE], None)

    def _read_into_progress(self, url: str, start: int, buf: memoryview, size: int | None,
                            etag: str | None, cancel: threading.Event | None, progress: Progress) -> None:
        self._get_range(url, start, len(buf), size, etag, cancel,
                        lambda nread: buf[nread:nread + READ_SLICE],
                        lambda offset, data: progress(offset + len(data)))

    def _read_to(self, url: str, start: int, n: int, scratch: memoryview, size: int | None,
                 etag: str | None, cancel: threading.Event | None, on_data: OnData) -> None:
        slice_ = min(len(scratch), READ_SLICE)
        self._get_range(url, start, n, size, etag, cancel,
                        lambda nread: scratch[:min(slice_, n - nread)], on_data)

    def _get_range(self, url: str, start: int, n: int, size: int | None, etag: str | None,
                   cancel: threading.Event | None, target: Callable[[int], memoryview],
                   on_data: OnData | None) -> None:
        """One GET of ``[start, start + n)``: each socket read goes into
        ``target(nread)``, then (if given) to ``on_data``."""
        bucket, key = parse_s3_url(url)
        whole = start == 0 and size is not None and n == size
        headers = {} if whole else {"Range": f"bytes={start}-{start + n - 1}"}
        etag = etag if self.config.verify_etag else None
        if etag:
            headers["If-Match"] = f'"{etag}"'
        resp = self._send("GET", bucket, key, headers)
        nread = 0
        try:
            if resp.status not in (200, 206):
                self._raise_for_status(resp, url, start, etag, bucket, key)
            self._check_body(resp, url, start, n, size, etag, whole)
            exact = resp.length == n  # else chunked, or no length: read n, then check the end
            while nread < n:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                view = target(nread)
                got = resp.readinto(view)
                if not got:
                    raise http.client.IncompleteRead(b"", n - nread)
                if on_data is not None:
                    try:
                        on_data(start + nread, view[:got])
                    except BaseException as exc:  # the consumer's failure, not the network's
                        raise _ConsumerFailed(exc) from exc
                nread += got
            if not exact and whole and resp.read(1):
                raise ObjectChangedError(f"{url} changed since it was listed: longer than {size} "
                                         f"bytes", url=url, offset=start, expected_size=size)
        except _ConsumerFailed as failed:
            _discard(resp)
            raise failed.error from None
        except ChannelsError:
            _discard(resp)
            raise
        except _NETWORK_ERRORS as exc:
            _discard(resp)
            raise PartialRead(nread, exc) from exc
        except BaseException:
            _discard(resp)
            raise
        resp.release()

    def _get(self, url: str) -> bytes:
        bucket, key = parse_s3_url(url)
        resp = self._send("GET", bucket, key, {})
        try:
            if resp.status != 200:
                self._raise_for_status(resp, url, 0, None, bucket, key)
            body = resp.read()
        except ChannelsError:
            raise
        except _NETWORK_ERRORS as exc:
            _discard(resp)
            raise PartialRead(0, exc) from exc
        resp.release()
        return body

    # ------------------------------------------------------------ checks

    def _check_body(self, resp, url: str, start: int, n: int, size: int | None,
                    etag: str | None, whole: bool) -> None:
        """The response holds exactly the bytes asked for, of the listed version."""
        if resp.status == 206:
            m = _RANGE.fullmatch(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != start or int(m.group(2)) != start + n - 1:
                raise TransportError(
                    f"{url}: asked for bytes {start}-{start + n - 1}, the store answered "
                    f"Content-Range {resp.headers.get('Content-Range')!r}", url=url, offset=start)
            total = None if m.group(3) == "*" else int(m.group(3))
        else:
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None else None
            if not whole and not (start == 0 and total == n):
                raise TransportError(f"{url}: the store ignored the Range header (HTTP 200 for "
                                     f"bytes {start}-{start + n - 1})", url=url, offset=start)
        if size is not None and total is not None and total != size:
            raise ObjectChangedError(
                f"{url} changed since it was listed: {total} bytes now, {size} listed",
                url=url, offset=start, expected_size=size, actual_size=total)
        got = resp.headers.get("ETag", "").strip('"')
        if etag and got and got != etag:
            raise ObjectChangedError(
                f"{url} changed since it was listed: ETag {got!r} now, {etag!r} listed",
                url=url, offset=start, expected_etag=etag, actual_etag=got)

    def _raise_for_status(self, resp, url: str, start: int, etag: str | None, bucket: str,
                          key: str) -> None:
        status = resp.status
        try:
            body = resp.read(64 * 1024) or b""
        except _NETWORK_ERRORS:
            body = b""
        _discard(resp)
        code = _match(_CODE, body)
        message = _match(_MESSAGE, body)
        detail = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        if status in RETRYABLE_STATUS:
            raise PartialRead(0, TransientHTTPError(status, code))
        if status == 404:
            raise SourceNotFoundError(f"{url} does not exist ({detail})", url=url, status=status,
                                      code=code)
        if status == 403:
            unsigned = ", sent unsigned: no AWS credentials were found" if self._credentials is None else ""
            raise AccessDeniedError(
                f"access denied reading {url} ({detail}{unsigned}); check the credentials (AWS_PROFILE, "
                f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, instance role) and the bucket policy",
                url=url, status=status, code=code)
        if status == 412:
            now = self._current_etag(bucket, key)
            raise ObjectChangedError(
                f"{url} changed since it was listed: ETag {now or 'unknown'!r} now, {etag!r} "
                f"listed (If-Match failed at offset {start})",
                url=url, offset=start, expected_etag=etag, actual_etag=now)
        if status == 416:
            raise ObjectChangedError(f"{url} is shorter than listed: offset {start} is past its "
                                     f"end ({detail})", url=url, offset=start)
        raise TransportError(f"reading {url} at offset {start} failed: {detail}", url=url,
                             offset=start, status=status, code=code)

    def _current_etag(self, bucket: str, key: str) -> str | None:
        """Best effort, for error messages only."""
        try:
            resp = self._send("HEAD", bucket, key, {})
        except PartialRead:
            return None
        etag = resp.headers.get("ETag", "").strip('"') if resp.status == 200 else None
        _discard(resp)
        return etag

    def close(self) -> None:
        self._pools.clear()


class _ConsumerFailed(Exception):
    """Carries what ``on_data`` raised past the handlers of network errors."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def _match(pattern: re.Pattern, body: bytes) -> str:
    m = pattern.search(body)
    return m.group(1).decode("utf-8", "replace") if m else ""


def _discard(resp) -> None:
    """Drop a response and its connection (never reuse a half-read one)."""
    try:
        resp.close()
    except Exception:  # pragma: no cover - closing a broken socket
        pass
