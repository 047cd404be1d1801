"""Streaming framers: the registry, every chunking, zero copy, corruption."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.errors import RecordError
from channels.records import (
    Framer,
    encode_recordio,
    encode_tfrecord,
    frame_bytes,
    frame_stream,
    framer,
    framer_names,
    register_framer,
)

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
URL = "s3://bucket/some/object"


# Each length-prefixed format: (name, encoder of one record).
ENCODERS = {"tfrecord": encode_tfrecord, "recordio": encode_recordio}


def encode_stream(name: str, payloads: list[bytes], *, final_newline: bool = True
                  ) -> tuple[bytes, list[tuple[int, int]]]:
    """The object bytes for ``payloads`` and each framed record's (start, end)."""
    if name == "lines":
        pieces = [p + b"\n" for p in payloads]
        if payloads and not final_newline:
            pieces[-1] = pieces[-1][:-1]
    else:
        pieces = [ENCODERS[name](p) for p in payloads]
    spans, at = [], 0
    for piece in pieces:
        spans.append((at, at + len(piece)))
        at += len(piece)
    return b"".join(pieces), spans


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def feed_all(f: Framer, chunks: list[bytes]) -> list[memoryview]:
    """Every record, as the views the framer yielded (chunks stay alive)."""
    out = []
    for chunk in chunks:
        out.extend(f.feed(chunk))
    out.extend(f.finish())
    return out


payload_lists = st.lists(st.binary(max_size=300), max_size=12)
MAGIC_WORD = struct.pack("<I", 0xCED7230A)
# RecordIO payloads that often hold the magic word, aligned or not.
recordio_lists = st.lists(
    st.lists(st.one_of(st.binary(max_size=13), st.just(MAGIC_WORD)), max_size=6).map(b"".join),
    max_size=10)
line_lists = st.lists(st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")), max_size=12)


# Registry -------------------------------------------------------------------

def test_registry_names():
    assert framer_names() == ["lines", "raw", "recordio", "tfrecord"]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        framer("tfrecords")
    for name in framer_names():
        assert repr(name) in str(info.value)
    assert "'tfrecords'" in str(info.value)


def test_parquet_points_at_iter_parquet_batches():
    with pytest.raises(ValueError, match="iter_parquet_batches"):
        framer("parquet", URL)


def test_register_refuses_a_taken_name():
    class Twin(Framer):
        name = "lines"

        def _scan(self, buf, pos, base):
            return pos
            yield

    with pytest.raises(ValueError, match="already registered"):
        register_framer(Twin)


@pytest.mark.parametrize("name", framer_names())
def test_empty_object_has_no_records(name):
    f = framer(name, URL)
    assert list(f.feed(b"")) == []
    assert list(f.finish()) == []
    assert (f.records_out, f.bytes_in) == (0, 0)


@pytest.mark.parametrize("name", framer_names())
def test_one_framer_per_object(name):
    f = framer(name, URL)
    list(f.finish())
    with pytest.raises(RuntimeError, match="finish"):
        f.feed(b"x")


@pytest.mark.parametrize("name", ["tfrecord", "recordio", "lines"])
def test_abandoned_feed_iterator_is_refused(name):
    data, _ = encode_stream(name, [b"a", b"b", b"c"])
    f = framer(name, URL)
    it = f.feed(data)
    next(it)
    with pytest.raises(RuntimeError, match="not exhausted"):
        f.feed(b"")
    with pytest.raises(RuntimeError, match="not exhausted"):
        f.finish()


# Every chunking ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["tfrecord", "recordio", "lines"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_chunking_gives_the_records(name, data):
    payloads = data.draw({"lines": line_lists, "recordio": recordio_lists}.get(name,
                                                                          payload_lists))
    final_newline = data.draw(st.booleans())
    stream, spans = encode_stream(name, payloads, final_newline=final_newline)
    if name == "lines" and payloads and payloads[-1] == b"" and not final_newline:
        payloads = payloads[:-1]  # an empty last line without newline is no line
        spans = spans[:-1]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    chunks = split_at(stream, cuts)
    f = framer(name, URL)
    records = feed_all(f, chunks)
    assert [bytes(r) for r in records] == payloads
    assert f.records_out == len(payloads)
    assert f.bytes_in == len(stream)
    # Zero copy: a record whose framing lies inside one chunk is a view of it.
    bounds, at = [], 0
    for chunk in chunks:
        bounds.append((at, at + len(chunk), chunk))
        at += len(chunk)
    if name == "lines" and not final_newline and payloads:
        spans = spans[:-1]  # finish() yields the unterminated last line from its carry
    for record, (start, end) in zip(records, spans):
        assert isinstance(record, memoryview)
        inside = [c for a, b, c in bounds if a <= start and end <= b and b > a]
        if name == "recordio" and end - start != 8 + -(-len(record) // 4) * 4:
            inside = []  # a multipart record is always joined in a new buffer
        if inside:
            assert record.obj is inside[0]
        else:
            assert record.obj is not None and all(record.obj is not c for c in chunks)


@settings(max_examples=50, deadline=None)
@given(stream=st.binary(max_size=500), cuts=st.lists(st.integers(0, 500), max_size=6))
def test_raw_passes_chunks_through(stream, cuts):
    chunks = split_at(stream, [c for c in cuts if c <= len(stream)])
    records = feed_all(framer("raw", URL), chunks)
    nonempty = [c for c in chunks if c]
    assert [bytes(r) for r in records] == nonempty
    assert all(r.obj is c for r, c in zip(records, nonempty))


def test_reused_chunk_buffer():
    """Chunks read into one reused buffer: records copied before the next feed are right."""
    payloads = [bytes([i]) * (i * 37 % 300) for i in range(60)]
    stream, _ = encode_stream("tfrecord", payloads)
    buf = bytearray(256)
    f = framer("tfrecord", URL)
    out = []
    for at in range(0, len(stream), len(buf)):
        n = len(stream[at:at + len(buf)])
        buf[:n] = stream[at:at + n]
        out.extend(bytes(r) for r in f.feed(memoryview(buf)[:n]))
    out.extend(bytes(r) for r in f.finish())
    assert out == payloads


def test_chunk_types():
    stream, _ = encode_stream("recordio", [b"abc", b"defgh"])
    for chunk in (stream, bytearray(stream), memoryview(stream), memoryview(stream).cast("c")):
        assert [bytes(r) for r in frame_stream("recordio", [chunk])] == [b"abc", b"defgh"]


def test_frame_bytes_and_stream():
    stream, _ = encode_stream("tfrecord", [b"x", b"", b"yz"])
    assert frame_bytes("tfrecord", stream) == [b"x", b"", b"yz"]
    assert [bytes(r) for r in frame_stream("tfrecord", [stream[:5], stream[5:]])] == \
        [b"x", b"", b"yz"]


# Lines ------------------------------------------------------------------------

def test_lines_rules():
    assert frame_bytes("lines", b"a\n\nb\r\nc") == [b"a", b"", b"b\r", b"c"]
    assert frame_bytes("lines", b"a\n") == [b"a"]
    assert frame_bytes("lines", b"\n") == [b""]
    assert frame_bytes("lines", b"a\r\nb\r", strip_cr=True) == [b"a", b"b"]
    assert frame_bytes("lines", b"\r\n\r\r\n", strip_cr=True) == [b"", b"\r"]


@settings(max_examples=80, deadline=None)
@given(lines=st.lists(st.sampled_from([b"", b"a", b"\r", b"ab\r", b"x\ry"]), max_size=8),
       cuts=st.lists(st.integers(0, 40), max_size=5))
def test_lines_strip_cr_across_chunks(lines, cuts):
    stream = b"".join(line + b"\r\n" for line in lines)
    chunks = split_at(stream, [c for c in cuts if c <= len(stream)])
    got = [bytes(r) for r in frame_stream("lines", chunks, URL, strip_cr=True)]
    assert got == lines


# TFRecord -----------------------------------------------------------------------

def test_tfrecord_written_by_tensorflow():
    path = TESTDATA / "100.tfrecords"
    if not path.exists():
        pytest.skip(f"{path} is missing: shared/testdata must sit beside the repository")
    data = path.read_bytes()
    expected = [b"hello world %d" % i for i in range(100)]
    assert frame_bytes("tfrecord", data) == expected
    assert b"".join(encode_tfrecord(p) for p in expected) == data
    # One flipped byte in the data of record 42.
    offset = sum(len(encode_tfrecord(p)) for p in expected[:42])
    bad = bytearray(data)
    bad[offset + 12 + 3] ^= 0x20
    with pytest.raises(RecordError) as info:
        frame_bytes("tfrecord", bytes(bad), url="s3://b/100.tfrecords")
    assert info.value.details == {"url": "s3://b/100.tfrecords", "offset": offset, "crc": "data"}
    assert f"offset {offset} " in str(info.value) and "s3://b/100.tfrecords" in str(info.value)


def tf_stream_and_offsets(n: int = 20) -> tuple[bytes, list[bytes], list[int]]:
    payloads = [b"record %d " % i * (i % 5) for i in range(n)]
    stream, spans = encode_stream("tfrecord", payloads)
    return stream, payloads, [a for a, _ in spans]


@pytest.mark.parametrize("where, crc", [(0, "length"), (7, "length"), (9, "length"),
                                        (12, "data"), (-1, "data")])
@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_tfrecord_crc_mismatch_names_url_and_offset(where, crc, chunk):
    stream, payloads, offsets = tf_stream_and_offsets()
    k = 13
    start, end = offsets[k], offsets[k + 1]
    bad = bytearray(stream)
    bad[(start + where) if where >= 0 else (end + where)] ^= 0x01
    f = framer("tfrecord", URL)
    got = []
    with pytest.raises(RecordError) as info:
        for at in range(0, len(bad), chunk):
            got.extend(bytes(r) for r in f.feed(bytes(bad[at:at + chunk])))
    err = info.value
    assert err.details["offset"] == start and err.details["url"] == URL
    assert err.details["crc"] == crc
    assert URL in str(err) and f"offset {start}" in str(err)
    assert got == payloads[:len(got)] and len(got) <= k
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is RecordError and clone.details == err.details
    assert str(clone) == str(err)
    with pytest.raises(RuntimeError, match="earlier error"):
        f.feed(b"")


def test_tfrecord_check_crc_off_skips_data_crc():
    stream, payloads, offsets = tf_stream_and_offsets()
    bad = bytearray(stream)
    bad[offsets[3] + 12] ^= 0xFF
    got = frame_bytes("tfrecord", bytes(bad), check_crc=False)
    assert got[:3] == payloads[:3] and got[4:] == payloads[4:] and got[3] != payloads[3]


@pytest.mark.parametrize("name", ["tfrecord", "recordio"])
def test_truncated_object_names_the_record_offset(name):
    payloads = [b"p%d" % i * 7 for i in range(6)]
    stream, spans = encode_stream(name, payloads)
    last = spans[-1][0]
    for cut in range(last + 1, len(stream)):
        for chunk in (3, 1 << 20):
            f = framer(name, URL)
            got = []
            for at in range(0, cut, chunk):
                got.extend(bytes(r) for r in f.feed(stream[at:min(at + chunk, cut)]))
            assert got == payloads[:-1]
            with pytest.raises(RecordError) as info:
                f.finish()
            assert info.value.details["offset"] == last
            assert f"offset {last}" in str(info.value) and URL in str(info.value)


def test_tfrecord_huge_length_fails_at_once():
    """A corrupt length is caught by its CRC before any buffering."""
    bad = struct.pack("<QI", 1 << 60, 0) + b"x" * 100
    f = framer("tfrecord", URL)
    with pytest.raises(RecordError, match="length CRC") as info:
        list(f.feed(bad[:5]))
        list(f.feed(bad[5:]))
    assert info.value.details["offset"] == 0


# RecordIO reading -------------------------------------------------------------

MAGIC = struct.pack("<I", 0xCED7230A)


def part(flag: int, payload: bytes) -> bytes:
    return (MAGIC + struct.pack("<I", flag << 29 | len(payload)) + payload
            + bytes(-len(payload) % 4))


def test_recordio_reads_parts_written_by_hand():
    stream = part(0, b"abc") + part(1, b"1234") + part(2, b"") + part(3, b"xy") + part(0, b"")
    assert frame_bytes("recordio", stream) == [b"abc", b"1234" + MAGIC + MAGIC + b"xy", b""]
    for cut in range(len(stream) + 1):
        assert [bytes(r) for r in frame_stream("recordio", [stream[:cut], stream[cut:]])] == \
            [b"abc", b"1234" + MAGIC + MAGIC + b"xy", b""]


def test_recordio_bad_magic():
    stream = part(0, b"abcde") + b"\xde\xad\xbe\xef" + part(0, b"x")[4:]
    with pytest.raises(RecordError, match="bad RecordIO magic") as info:
        frame_bytes("recordio", stream, url=URL)
    assert info.value.details == {"url": URL, "offset": 16}
    assert "offset 16" in str(info.value) and URL in str(info.value)
    f = framer("recordio", URL)
    assert [bytes(r) for r in f.feed(stream[:18])] == [b"abcde"]
    with pytest.raises(RecordError, match="offset 16"):
        list(f.feed(stream[18:]))


@pytest.mark.parametrize("parts, offset", [
    ([part(2, b"ab")], 0),
    ([part(0, b"a"), part(3, b"ab")], 12),
    ([part(1, b"abcd"), part(0, b"ab")], 12),
    ([part(1, b"abcd"), part(1, b"ab")], 12),
    ([part(5, b"ab")], 0),
])
def test_recordio_bad_flag_sequence(parts, offset):
    with pytest.raises(RecordError, match="part sequence") as info:
        frame_bytes("recordio", b"".join(parts), url=URL)
    assert info.value.details["offset"] == offset
    assert f"offset {offset}" in str(info.value)


def test_recordio_unfinished_multipart_is_truncated():
    stream = part(0, b"a") + part(1, b"abcd") + part(2, b"efgh")
    f = framer("recordio", URL)
    assert [bytes(r) for r in f.feed(stream)] == [b"a"]
    with pytest.raises(RecordError, match="truncated") as info:
        f.finish()
    assert info.value.details["offset"] == 12
