"""Gzip streams and Parquet batches."""

from __future__ import annotations

import gzip
import io
import os
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.errors import RecordError
from channels.records import GzipDecoder, frame_stream, gunzip_stream, iter_parquet_batches

URL = "s3://bucket/data.gz"


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@settings(max_examples=60, deadline=None)
@given(members=st.lists(st.binary(max_size=2000), min_size=1, max_size=4),
       padding=st.integers(0, 5), size=st.integers(1, 300), max_out=st.integers(1, 700))
def test_multi_member_any_chunking(members, padding, size, max_out):
    stream = b"".join(gzip.compress(m) + bytes(padding) for m in members)
    pieces = list(gunzip_stream(chunked(stream, size), url=URL, max_out=max_out))
    assert b"".join(pieces) == b"".join(members)
    assert all(0 < len(p) <= max_out for p in pieces)


def test_counters_and_framing_after_gunzip():
    lines = b"".join(b"line %d\n" % i for i in range(1000))
    stream = gzip.compress(lines[:3000]) + gzip.compress(lines[3000:])
    dec = GzipDecoder(URL, max_out=4096)
    out = []
    for chunk in chunked(stream, 500):
        out.extend(dec.feed(chunk))
    dec.finish()
    assert (dec.bytes_in, dec.bytes_out, dec.members) == (len(stream), len(lines), 2)
    records = [bytes(r) for r in frame_stream("lines", out)]
    assert records == [b"line %d" % i for i in range(1000)]


def test_bomb_output_is_bounded_per_step():
    bomb = gzip.compress(bytes(64 << 20), compresslevel=9)  # 64 MiB from about 64 KiB
    assert len(bomb) < 100_000
    dec = GzipDecoder(URL, max_out=1 << 16)
    it = dec.feed(bomb)
    first = next(it)
    assert len(first) == 1 << 16 and dec.bytes_out == 1 << 16  # nothing more inflated yet
    total = len(first) + sum(len(p) for p in it)
    assert total == 64 << 20
    dec.finish()


def test_empty_stream_is_empty():
    assert list(gunzip_stream([], url=URL)) == []
    assert list(gunzip_stream([b"", bytes(3)], url=URL)) == []


@pytest.mark.parametrize("size", [7, 1 << 20])
def test_truncated(size):
    data = os.urandom(5000)
    stream = gzip.compress(data) + gzip.compress(data)
    cut = len(stream) - 3
    with pytest.raises(RecordError, match="truncated gzip") as info:
        list(gunzip_stream(chunked(stream[:cut], size), url=URL))
    assert info.value.details["offset"] == cut
    assert info.value.details["member"] == len(gzip.compress(data))
    assert URL in str(info.value) and f"offset {cut}" in str(info.value)


def test_not_gzip():
    with pytest.raises(RecordError, match="corrupt gzip") as info:
        list(gunzip_stream([b"hello world"], url=URL))
    assert info.value.details == {"url": URL, "offset": 0, "member": 0}


@pytest.mark.parametrize("where", [0.5, -6])
def test_corrupt(where):
    data = os.urandom(20000)
    first = gzip.compress(b"first member")
    stream = bytearray(first + gzip.compress(data))
    at = int(len(stream) * where) if where > 0 else len(stream) + where
    stream[at] ^= 0x55
    with pytest.raises(RecordError, match="corrupt gzip") as info:
        list(gunzip_stream(chunked(bytes(stream), 1000), url=URL))
    err = info.value
    assert err.details["member"] == len(first)
    # zlib notices at or after the fault (a flipped literal byte only at the CRC
    # trailer); the offset is where the data it was given began.
    assert len(first) <= err.details["offset"] < len(stream)
    assert at < err.details["offset"] + 1000
    assert URL in str(err) and f"offset {err.details['offset']}" in str(err)
    assert pickle.loads(pickle.dumps(err)).details == err.details


# Parquet ----------------------------------------------------------------------

def parquet_bytes(rows: int = 1000) -> tuple[bytes, pa.Table]:
    table = pa.table({"id": list(range(rows)), "text": [f"row {i}" for i in range(rows)]})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=300)
    return sink.getvalue(), table


def test_parquet_batches():
    data, table = parquet_bytes()
    batches = list(iter_parquet_batches(io.BytesIO(data), url="s3://b/t.parquet",
                                        batch_size=128))
    assert all(b.num_rows <= 128 for b in batches)
    assert pa.Table.from_batches(batches).equals(table)
    only = list(iter_parquet_batches(io.BytesIO(data), columns=["text"]))
    assert pa.Table.from_batches(only).column_names == ["text"]


def test_parquet_corrupt_names_url():
    data, _ = parquet_bytes()
    with pytest.raises(RecordError, match="s3://b/t.parquet") as info:
        list(iter_parquet_batches(io.BytesIO(data[:-20]), url="s3://b/t.parquet"))
    assert info.value.details["url"] == "s3://b/t.parquet"
    assert isinstance(info.value.__cause__, Exception)
    with pytest.raises(RecordError):
        list(iter_parquet_batches(io.BytesIO(b"not parquet at all"), url="s3://b/t.parquet"))


def test_abandoned_iterator_is_refused():
    dec = GzipDecoder(URL, max_out=10)
    it = dec.feed(gzip.compress(bytes(100)))
    next(it)
    with pytest.raises(RuntimeError, match="not exhausted"):
        dec.feed(b"")
    with pytest.raises(RuntimeError, match="not exhausted"):
        dec.finish()
