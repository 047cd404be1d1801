"""An S3 prefix listed through the transport's own S3 path, without s3fs.

:func:`channels.listing.list_prefix` lists through fsspec, that is s3fs,
aiobotocore, aiohttp and an event loop thread: about 0.3 s of CPU to import
and start before its one listing call, paid at every start of
``channels download``. Here the same ListObjectsV2 call goes through the
transport's S3 backend (botocore's SigV4 signer, a urllib3 pool): the
signer the download needs anyway, and no other import.

:func:`list_prefix` gives the very listing :func:`channels.listing.list_prefix`
gives (keys, sizes, ETags, order, the same errors); it uses the fast path for
``s3://`` URLs when the store's options are ones the S3 backend reads
(credentials, profile, region) and the transport's S3 backend is ``s3``,
and hands everything else to :mod:`channels.listing`. Pages (1,000 keys
each) are retried like any other whole-body read of the transport.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import quote, unquote_plus

from channels.errors import AccessDeniedError, EmptyChannelError, SourceNotFoundError, TransportError
from channels.listing import S3_PREFIX, Listing, ObjectRef
from channels.listing import list_prefix as list_prefix_fsspec
from channels.listing import list_source as list_source_fsspec
from channels.store import Store, protocol_of, split_url, strip_protocol
from channels.transport.backends.s3 import S3Backend
from channels.transport.config import TransportConfig
from channels.transport.fetch import Fetcher
from channels.transport.stats import TransportStats

#: Keys per ListObjectsV2 page (S3's own most).
PAGE_KEYS = 1000
#: Store options the S3 backend reads as s3fs would; any other sends the listing through s3fs.
FAST_OPTIONS = frozenset({"anon", "key", "secret", "token", "profile", "client_kwargs"})
FAST_CLIENT_KWARGS = frozenset({"region_name"})


def list_source(uri: str, data_type: str = S3_PREFIX, *, store: Store | None = None,
                config: TransportConfig | None = None) -> Listing:
    """:func:`channels.listing.list_source`, with S3 prefixes listed by :func:`list_prefix`."""
    store = store or Store.from_env()
    if data_type == S3_PREFIX:
        return list_prefix(uri, store=store, config=config)
    return list_source_fsspec(uri, data_type, store=store)


def list_prefix(uri: str, *, store: Store | None = None, config: TransportConfig | None = None,
                stats: TransportStats | None = None) -> Listing:
    """Every object whose key starts with the prefix, in key order (see :func:`channels.listing.list_prefix`).

    Args:
        uri: the prefix (``s3://bucket/prefix``; any other URL goes to :mod:`channels.listing`).
        store: endpoint and options (default: from the environment).
        config: the transport's settings (retries, timeouts, the S3 backend's name).
        stats: counts the fast path's requests, retries and bytes (a fresh one by default).

    Raises:
        SourceNotFoundError: the bucket does not exist.
        AccessDeniedError: the store refused the credentials.
        EmptyChannelError: nothing under the prefix.
        TransportError: the store kept failing, or answered something that is not a listing.
    """
    store = store or Store.from_env()
    config = config or TransportConfig()
    if not fast_path(uri, store, config):
        return list_prefix_fsspec(uri, store=store)
    bucket = split_url(uri)[1]
    path = strip_protocol(uri)  # bucket/prefix
    # As channels.listing: an object's key is its path below the prefix's last "/".
    base = path.rpartition("/")[0] if "/" in path else path
    fetcher = Fetcher(store, config, stats if stats is not None else TransportStats())
    try:
        entries = sorted((f"{bucket}/{key}", size, etag)
                         for key, size, etag in _objects(fetcher, uri, bucket, path[len(bucket) + 1:]))
    finally:
        fetcher.close()
    refs = [ObjectRef(f"s3://{name}", size, etag, name[len(base) + 1:]) for name, size, etag in entries
            if not name.endswith("/")]  # folder markers are not objects
    if not refs:
        raise EmptyChannelError(f"no objects under {uri}: the channel is empty (is the prefix right?)", url=uri)
    return Listing(uri, tuple(refs))


def fast_path(uri: str, store: Store, config: TransportConfig) -> bool:
    """True when ``uri`` can be listed through the transport's S3 backend as s3fs would list it."""
    if protocol_of(uri) != "s3" or config.s3_backend != S3Backend.name or not split_url(uri)[1]:
        return False
    options = dict(store.options)
    return set(options) <= FAST_OPTIONS and set(options.get("client_kwargs") or {}) <= FAST_CLIENT_KWARGS


def _objects(fetcher: Fetcher, uri: str, bucket: str, prefix: str) -> Iterator[tuple[str, int, str | None]]:
    """``(key, size, etag)`` of every object under ``prefix``, page by page."""
    backend = fetcher.backend_for(uri)
    token = None
    while True:
        params = {"list-type": "2", "encoding-type": "url", "max-keys": str(PAGE_KEYS), "prefix": prefix}
        if token is not None:
            params["continuation-token"] = token
        query = "&".join(f"{k}={quote(v, safe='-_.~')}" for k, v in params.items())
        try:
            body = fetcher.whole(uri, lambda: backend.list_page(bucket, query))
        except SourceNotFoundError as exc:
            raise SourceNotFoundError(f"bucket {bucket!r} does not exist: {uri} (check the name and --endpoint-url)",
                                      url=uri) from exc
        except AccessDeniedError as exc:
            raise AccessDeniedError(f"access denied listing {uri}: check the credentials and the bucket policy",
                                    url=uri) from exc
        page = _parse(body, uri)
        yield from page.objects
        if not page.truncated:
            return
        if not page.token:
            raise TransportError(f"listing {uri}: the store said the listing goes on but gave no "
                                 "NextContinuationToken", url=uri)
        token = page.token


class _Page:
    __slots__ = ("objects", "truncated", "token")

    def __init__(self, objects: list[tuple[str, int, str | None]], truncated: bool, token: str | None) -> None:
        self.objects = objects
        self.truncated = truncated
        self.token = token


def _parse(body: bytes, uri: str) -> _Page:
    """One ListObjectsV2 result (any XML namespace; keys URL-decoded where the store encoded them)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise TransportError(f"listing {uri}: the store's answer is not XML ({exc})", url=uri) from exc
    fields = {_local(child.tag): child for child in root}
    encoded = (fields.get("EncodingType") is not None and fields["EncodingType"].text == "url")
    objects = []
    for item in root:
        if _local(item.tag) != "Contents":
            continue
        got = {_local(c.tag): c.text or "" for c in item}
        key = unquote_plus(got.get("Key", "")) if encoded else got.get("Key", "")
        etag = got.get("ETag", "").strip('"') or None
        try:
            size = int(got.get("Size", ""))
        except ValueError:
            raise TransportError(f"listing {uri}: object {key!r} has no valid Size", url=uri) from None
        objects.append((key, size, etag))
    truncated = (fields.get("IsTruncated") is not None and (fields["IsTruncated"].text or "").strip() == "true")
    token = fields["NextContinuationToken"].text if "NextContinuationToken" in fields else None
    return _Page(objects, truncated, token)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
