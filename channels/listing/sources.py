"""Data sources become ordered lists of object refs: prefixes, manifests, augmented manifests.

A source is listed once per channel (not per epoch), with no per-object
HEAD: an S3Prefix by :mod:`channels.listing.fanout` (LIST requests fanned
out over the prefix's common prefixes, merged into key order), any other
fsspec URL by one ``find``; manifests by reading the manifest and listing the
entries' common prefix once.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterator, Sequence

from channels.errors import AccessDeniedError, EmptyChannelError, ManifestError, SourceNotFoundError
from channels.listing.fanout import ListConfig, ListStats, list_s3_keys
from channels.listing.progress import ListProgress
from channels.listing.refs import AUGMENTED_MANIFEST_FILE, DATA_TYPES, MANIFEST_FILE, S3_PREFIX, Listing, ObjectRef
from channels.registry import unknown
from channels.store import Store, join_url, protocol_of, split_url, strip_protocol


def list_source(uri: str, data_type: str = S3_PREFIX, *, attribute_names: Sequence[str] = (),
                store: Store | None = None) -> Listing:
    """List a channel's data source.

    Args:
        uri: the S3Uri (a prefix or a manifest's URL); any fsspec URL works.
        data_type: S3Prefix | ManifestFile | AugmentedManifestFile.
        attribute_names: the attributes streamed from an augmented manifest.
        store: endpoint and options (default: from the environment).

    Raises:
        SourceNotFoundError: the bucket, prefix or manifest does not exist.
        AccessDeniedError: the store refused the credentials.
        EmptyChannelError: the source names no objects.
        ManifestError: the manifest is not in its documented format.
    """
    store = store or Store.from_env()
    if data_type == S3_PREFIX:
        return list_prefix(uri, store=store)
    if data_type == MANIFEST_FILE:
        return list_manifest(uri, store=store)
    if data_type == AUGMENTED_MANIFEST_FILE:
        return list_augmented_manifest(uri, attribute_names, store=store)
    raise unknown("S3DataType", data_type, DATA_TYPES)


def list_prefix(uri: str, *, store: Store | None = None, config: ListConfig | None = None,
                progress: bool | Callable[..., None] | None = None) -> Listing:
    """Every object whose key starts with the prefix, in key order.

    No per-object HEAD. On S3 the LIST requests fan out over the prefix's
    common prefixes, at most ``config.streams`` at once, and merge into key
    order (:mod:`channels.listing.fanout`); the listing's counters are in
    ``listing.stats``. Other stores: one fsspec ``find``. As in S3, the
    prefix is a key prefix, not a folder: ``s3://b/train`` also matches
    ``train-2/x``. An object's ``key`` is its path below the prefix's last
    ``/``. Folder markers (keys ending in ``/``) are skipped.

    Args:
        uri: the prefix.
        store: endpoint and options (default: from the environment).
        config: streams, page size, attempts (S3 only; default ``ListConfig()``).
        progress: a line on stderr while a long listing runs (None: when
            stderr is a terminal), or a callable given the counters per page.
    """
    store = store or Store.from_env()
    protocol = protocol_of(uri)
    path = strip_protocol(uri)
    base, _, rest = path.rpartition("/") if "/" in path else (path, "", "")
    stats = None
    try:
        if protocol == "s3":
            stats = ListStats()
            bucket, _, key_prefix = path.partition("/")
            draw = progress if callable(progress) else ListProgress(uri, enabled=progress)
            keys = list_s3_keys(bucket, key_prefix, store=store, config=config, stats=stats, progress=draw)
            found = {f"{bucket}/{k}": {"size": size, "ETag": etag} for k, size, etag in keys}
        else:
            fs = store.filesystem(uri)
            if fs.isdir(path):
                base = path.rstrip("/")
                found = fs.find(base, detail=True)
            else:
                found = {p: i for p, i in fs.find(base, detail=True).items() if p.startswith(path)}
    except FileNotFoundError as exc:
        bucket = split_url(uri)[1]
        what = f"bucket {bucket!r}" if bucket else "path"
        raise SourceNotFoundError(f"{what} does not exist: {uri} (check the name and --endpoint-url)",
                                  url=uri) from exc
    except PermissionError as exc:
        raise AccessDeniedError(f"access denied listing {uri}: check the credentials and the bucket policy",
                                url=uri) from exc
    base_len = len(base) + 1 if base else 0
    refs = []
    for name in sorted(found) if stats is None else found:
        info = found[name]
        if name.endswith("/") or info.get("type") == "directory":
            continue
        refs.append(ObjectRef(join_url(protocol, name), int(info["size"]), _etag(info), name[base_len:]))
    if not refs:
        raise EmptyChannelError(f"no objects under {uri}: the channel is empty (is the prefix right?)", url=uri)
    return Listing(uri, tuple(refs), stats=stats)


def _etag(info: dict) -> str | None:
    tag = info.get("ETag") or info.get("etag") or info.get("e_tag")
    return tag.strip('"') if isinstance(tag, str) else None


def _read_text(uri: str, store: Store) -> str:
    fs = store.filesystem(uri)
    try:
        with fs.open(strip_protocol(uri), "rb") as f:
            data = f.read()
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"manifest not found: {uri}", url=uri) from exc
    except PermissionError as exc:
        raise AccessDeniedError(f"access denied reading manifest {uri}: check the credentials and the bucket "
                                "policy", url=uri) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {uri} is not UTF-8 text (byte {exc.start})", url=uri,
                            offset=exc.start) from exc


def list_manifest(uri: str, *, store: Store | None = None) -> Listing:
    """Objects named by a ManifestFile, in manifest order.

    The manifest is a JSON array ``[{"prefix": "s3://bucket/p/"}, "rel/key", ...]``.
    Entries may also be absolute URLs, which must lie in the prefix's bucket.
    Sizes come from one listing of the entries' common prefix, not a HEAD each.
    """
    store = store or Store.from_env()
    text = _read_text(uri, store)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest {uri} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                            url=uri) from exc
    if not isinstance(doc, list) or not doc or not isinstance(doc[0], dict) or "prefix" not in doc[0]:
        raise ManifestError(f'manifest {uri} must be a JSON array starting with {{"prefix": "s3://bucket/path/"}}',
                            url=uri)
    prefix = doc[0]["prefix"]
    if not isinstance(prefix, str) or "://" not in prefix:
        raise ManifestError(f"manifest {uri}: entry [0] prefix {prefix!r} is not a URL", url=uri)
    protocol, bucket, _ = split_url(prefix)
    urls = []
    for i, entry in enumerate(doc[1:], start=1):
        if not isinstance(entry, str) or not entry:
            raise ManifestError(f"manifest {uri}: entry [{i}] is {entry!r}, expected a key string", url=uri)
        if "://" in entry:
            e_protocol, e_bucket, _ = split_url(entry)
            if (e_protocol, e_bucket) != (protocol, bucket):
                raise ManifestError(
                    f"manifest {uri}: entry [{i}] {entry} is outside the manifest's bucket {bucket!r}; "
                    "every entry must live in the prefix's bucket", url=uri, entry=i)
            urls.append(entry)
        else:
            urls.append(prefix + entry if prefix.endswith("/") else f"{prefix}/{entry}")
    if not urls:
        raise EmptyChannelError(f"manifest {uri} names no objects", url=uri)
    refs = _resolve(urls, store, source=uri, key_base=prefix)
    return Listing(uri, tuple(refs))


def _common_dir(paths: Sequence[str]) -> str:
    common = posixpath.commonprefix(list(paths))
    return common[: common.rfind("/") + 1] if "/" in common else ""


def _resolve(urls: Sequence[str], store: Store, *, source: str, key_base: str | None = None,
             what: str = "entry") -> list[ObjectRef]:
    """Sizes and ETags of the named objects from one listing of their common prefix."""
    by_url: dict[str, ObjectRef] = {}
    groups: dict[str, list[str]] = {}
    for url in dict.fromkeys(urls):
        protocol, bucket, _ = split_url(url)
        groups.setdefault(f"{protocol}://{bucket}", []).append(url)
    for group in groups.values():
        common = _common_dir(group)
        try:
            listed = list_prefix(common, store=store).refs
        except EmptyChannelError:
            listed = ()
        by_url.update((r.url, r) for r in listed)
    base = key_base if key_base is None or key_base.endswith("/") else key_base.rsplit("/", 1)[0] + "/"
    refs = []
    for i, url in enumerate(urls):
        ref = by_url.get(url) or by_url.get(_normal(url))
        if ref is None:
            raise SourceNotFoundError(f"{source}: {what} {url} does not exist", url=url, source=source, entry=i)
        key = url[len(base):] if base and url.startswith(base) else split_url(url)[2]
        refs.append(ObjectRef(ref.url, ref.size, ref.etag, key))
    return refs


def _normal(url: str) -> str:
    protocol = protocol_of(url)
    return join_url(protocol, strip_protocol(url))


def list_augmented_manifest(uri: str, attribute_names: Sequence[str], *,
                            store: Store | None = None) -> Listing:
    """Lines of an AugmentedManifestFile, each a unit of its selected attributes.

    Each line is a JSON object. For every name in ``attribute_names``, in that
    order: a name ending in ``-ref`` is an object URL whose bytes are streamed;
    any other attribute is streamed as its JSON text (inline, no request).
    A line missing an attribute is an error naming the line and attribute.
    """
    if not attribute_names:
        raise ManifestError(f"augmented manifest {uri}: AttributeNames is empty; name the attributes to stream",
                            url=uri)
    store = store or Store.from_env()
    text = _read_text(uri, store)
    items: list[tuple[str, object]] = []  # (kind, value) per attribute, in order
    starts: list[int] = []
    lineno = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"augmented manifest {uri}: line {lineno} is not JSON ({exc.msg} at column {exc.colno})",
                                url=uri, line=lineno) from exc
        if not isinstance(obj, dict):
            raise ManifestError(f"augmented manifest {uri}: line {lineno} is not a JSON object", url=uri, line=lineno)
        starts.append(len(items))
        for name in attribute_names:
            if name not in obj:
                raise ManifestError(f"augmented manifest {uri}: line {lineno} has no attribute {name!r} "
                                    f"(it has: {', '.join(sorted(obj)) or 'none'})", url=uri, line=lineno)
            value = obj[name]
            if name.endswith("-ref"):
                if not isinstance(value, str) or "://" not in value:
                    raise ManifestError(f"augmented manifest {uri}: line {lineno} attribute {name!r} is {value!r}, "
                                        "expected an object URL", url=uri, line=lineno)
                items.append(("ref", value))
            else:
                data = json.dumps(value, separators=(",", ":")).encode()
                items.append(("inline", (f"{uri}#line={lineno}&attr={name}", data)))
    if not starts:
        raise EmptyChannelError(f"augmented manifest {uri} has no lines", url=uri)
    ref_urls = [v for k, v in items if k == "ref"]
    resolved = iter(_resolve(ref_urls, store, source=uri, what="-ref object")) if ref_urls else iter(())
    refs = []
    for kind, value in items:
        if kind == "ref":
            refs.append(next(resolved))
        else:
            url, data = value  # type: ignore[misc]
            refs.append(ObjectRef(url, len(data), None, "", data))
    import numpy as np  # here: a prefix or a manifest lists without it

    return Listing(uri, tuple(refs), np.asarray(starts, dtype=np.int64))


def iter_keys(listing: Listing) -> Iterator[str]:
    """The key path of each object (for File and FastFile layouts)."""
    return (r.key for r in listing.refs)
