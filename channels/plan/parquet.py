"""The plan file: one Parquet table (pyarrow), one row per object, the job's channels in its metadata.

Columns, chosen for size at tens of millions of rows:

* ``channel`` (int16): the row's channel, an index into the metadata's list;
* ``path`` (string, DELTA_BYTE_ARRAY): the object's URL after its channel's
  ``url_base`` (sorted keys share long prefixes; delta encoding stores each
  key's new suffix only);
* ``key`` (string, null when it equals ``path``): where File and FastFile
  put the object, when that differs (manifests);
* ``size`` (int64);
* ``etag_md5`` (16 bytes): an ETag that is an MD5 in hex (single-part
  uploads) as its 16 bytes, half its text; ``etag`` (string) any other;
* ``inline`` (binary): augmented-manifest values that are not objects;
  ``unit_start`` (bool): where an augmented-manifest line begins.

Compressed with zstd. The file's key-value metadata ``channels.plan`` holds
JSON: the format name and version, when the listing was made, the job's
name and each channel's name, source, distribution, seed and ``url_base``.

Written to a local path (through a temporary file renamed into place, so a
failed write leaves no partial plan) or any fsspec URL; read with one GET.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from channels.errors import AccessDeniedError, SourceNotFoundError
from channels.listing import Listing, ObjectRef
from channels.plan.refs import PlanRefs
from channels.plan.model import PLAN_FORMAT, PLAN_VERSION, REMAKE, JobPlan, PlanError, PlannedChannel
from channels.store import Store, protocol_of, split_url, strip_protocol

META_KEY = b"channels.plan"
_MD5 = re.compile(r"[0-9a-f]{32}")
SCHEMA = pa.schema([
    ("channel", pa.int16()), ("path", pa.string()), ("key", pa.string()), ("size", pa.int64()),
    ("etag_md5", pa.binary(16)), ("etag", pa.string()), ("inline", pa.binary()), ("unit_start", pa.bool_()),
])


def _url_base(refs: tuple[ObjectRef, ...]) -> str:
    """The longest common prefix of the URLs, up to its last ``/`` (that of the smallest and largest URL)."""
    if not refs:
        return ""
    urls = [r.url for r in refs]
    common = os.path.commonprefix([min(urls), max(urls)])
    return common[: common.rfind("/") + 1]


def _columns(index: int, listing: Listing, base: str) -> dict[str, pa.Array]:
    refs = listing.refs
    n = len(refs)
    cut = len(base)
    paths = [r.url[cut:] for r in refs]
    keys = [None if r.key == p else r.key for r, p in zip(refs, paths)]
    md5 = [bytes.fromhex(r.etag) if r.etag and _MD5.fullmatch(r.etag) else None for r in refs]
    other = [r.etag if r.etag and m is None else None for r, m in zip(refs, md5)]
    inline = [r.inline for r in refs] if any(r.inline is not None for r in refs) else None
    starts = None
    if listing.unit_starts is not None:
        starts = np.zeros(n, dtype=bool)
        starts[listing.unit_starts] = True
    return {
        "channel": pa.array(np.full(n, index, dtype=np.int16)),
        "path": pa.array(paths, pa.string()),
        "key": pa.array(keys, pa.string()),
        "size": pa.array(np.fromiter((r.size for r in refs), dtype=np.int64, count=n)),
        "etag_md5": pa.array(md5, pa.binary(16)),
        "etag": pa.array(other, pa.string()),
        "inline": pa.array(inline, pa.binary()) if inline is not None else pa.nulls(n, pa.binary()),
        "unit_start": pa.array(starts) if starts is not None else pa.nulls(n, pa.bool_()),
    }


def plan_table(plan: JobPlan) -> pa.Table:
    """The plan as a Parquet-ready table (a source shared by two channels is stored once per channel)."""
    metas, tables = [], []
    for i, c in enumerate(plan.channels):
        base = _url_base(c.listing.refs)
        metas.append({**c.describe(), "url_base": base, "objects": len(c.listing),
                      "bytes": c.listing.total_bytes, "source": c.listing.source})
        tables.append(pa.table(_columns(i, c.listing, base), schema=SCHEMA))
    meta = {"format": PLAN_FORMAT, "version": PLAN_VERSION, "created": plan.created, "job_name": plan.job_name,
            "channels": metas}
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    return table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})


def plan_bytes(plan: JobPlan) -> bytes:
    """The plan file's bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(plan_table(plan), sink, compression="zstd", use_dictionary=["channel"],
                   column_encoding={"path": "DELTA_BYTE_ARRAY", "key": "DELTA_BYTE_ARRAY"},
                   row_group_size=1 << 20, write_statistics=False)
    return sink.getvalue().to_pybytes()


def write_plan(plan: JobPlan, url: str, *, store: Store | None = None) -> int:
    """Write the plan file to ``url`` (a local path or any fsspec URL); its size in bytes.

    A local file is written beside its final name and renamed into place:
    an interrupted write leaves the old plan (or none), never half a plan.
    """
    data = plan_bytes(plan)
    if protocol_of(url) == "file":
        path = split_url(url)[2]
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".channels-plan-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return len(data)
    (store or Store.from_env()).filesystem(url).pipe_file(strip_protocol(url), data)
    return len(data)


def read_plan(url: str, *, store: Store | None = None) -> JobPlan:
    """The plan at ``url``, read with one GET.

    Raises:
        SourceNotFoundError: no file there.
        AccessDeniedError: the store refused the read.
        PlanError: not a plan, or one of a newer format.
    """
    store = store or Store.from_env()
    try:
        if protocol_of(url) == "file":
            with open(split_url(url)[2], "rb") as f:
                data = f.read()
        else:
            fs = store.filesystem(url)
            extra = {"max_concurrency": 1} if protocol_of(url) == "s3" else {}  # one GET, no HEAD first
            data = fs.cat_file(strip_protocol(url), **extra)
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"no plan at {url}: make one with channels plan JOB.json --out {url}",
                                  url=url) from exc
    except PermissionError as exc:
        raise AccessDeniedError(f"access denied reading plan {url}: check the credentials", url=url) from exc
    return plan_from_bytes(data, url)


def plan_from_bytes(data: bytes, url: str | None = None) -> JobPlan:
    """Decode a plan file (see the module docstring)."""
    where = url or "the plan"
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise PlanError(f"{where} is not a channels plan (not Parquet: {exc}); {REMAKE}", url=url) from exc
    raw = (table.schema.metadata or {}).get(META_KEY)
    meta = json.loads(raw) if raw else {}
    if meta.get("format") != PLAN_FORMAT:
        raise PlanError(f"{where} is a Parquet file but not a channels plan (no {META_KEY.decode()} metadata); "
                        f"{REMAKE}", url=url)
    if meta.get("version", 0) > PLAN_VERSION:
        raise PlanError(f"{where} has plan format version {meta['version']}, newer than this channels reads "
                        f"({PLAN_VERSION}): upgrade channels, or {REMAKE}", url=url, version=meta["version"])
    columns = {name: table.column(name) for name in SCHEMA.names}
    channel = columns["channel"].to_numpy()
    bounds = np.searchsorted(channel, np.arange(len(meta["channels"]) + 1))
    channels = []
    for i, m in enumerate(meta["channels"]):
        rows = slice(int(bounds[i]), int(bounds[i + 1]))
        listing = _listing(m, {k: v[rows] for k, v in columns.items()})
        channels.append(PlannedChannel(m["name"], m["uri"], m["data_type"], tuple(m["attribute_names"]),
                                       m["distribution"], m["shuffle_seed"], listing))
    return JobPlan(tuple(channels), meta.get("job_name"), meta.get("created", ""), url, meta["version"])


def _listing(meta: dict, cols: dict[str, pa.ChunkedArray]) -> Listing:
    n = len(cols["path"])

    def maybe(name: str) -> list | None:
        col = cols[name]
        return None if col.null_count == n else col.to_pylist()

    md5 = has_md5 = None
    col = cols["etag_md5"]
    if col.null_count < n:
        has_md5 = col.is_valid().to_numpy(zero_copy_only=False)
        filled = col.fill_null(b"\0" * 16).combine_chunks()
        md5 = np.frombuffer(filled.buffers()[1], dtype=np.uint8, count=16 * n,
                            offset=16 * filled.offset).reshape(n, 16)
    refs = PlanRefs(meta["url_base"], cols["path"].to_pylist(), maybe("key"),
                    cols["size"].to_numpy().astype(np.int64), md5, has_md5, maybe("etag"), maybe("inline"))
    starts = None
    if cols["unit_start"].null_count < n:
        starts = np.flatnonzero(cols["unit_start"].to_numpy(zero_copy_only=False)).astype(np.int64)
    return Listing(meta.get("source", meta["uri"]), refs, starts)  # type: ignore[arg-type]
