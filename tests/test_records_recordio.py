"""RecordIO writers: dmlc-core's magic-splitting rule, and Pipe mode's whole-record wrapper, streaming."""

from __future__ import annotations

import io
import mmap
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.records import (
    MAGIC,
    MAX_LENGTH,
    RecordIOStreamEncoder,
    RecordIOWriter,
    encode_recordio,
    find_aligned_magic,
    frame_bytes,
    frame_stream,
    iter_encode_recordio,
    recordio_header,
    recordio_padding,
    wrap_recordio,
)
from channels.records.recordio import FLAG_WHOLE

M = struct.pack("<I", MAGIC)


def parts_of(encoded: bytes) -> list[tuple[int, bytes]]:
    """(flag, payload) of each part, read naively."""
    out, at = [], 0
    while at < len(encoded):
        magic, word = struct.unpack_from("<II", encoded, at)
        assert magic == MAGIC
        length = word & MAX_LENGTH
        out.append((word >> 29, encoded[at + 8:at + 8 + length]))
        padding = encoded[at + 8 + length:at + 8 + (length + 3) // 4 * 4]
        assert padding == bytes(len(padding))
        at += 8 + (length + 3) // 4 * 4
    return out


def header_offsets(encoded: bytes) -> list[int]:
    offsets, at = [], 0
    while at < len(encoded):
        offsets.append(at)
        length = struct.unpack_from("<I", encoded, at + 4)[0] & MAX_LENGTH
        at += 8 + (length + 3) // 4 * 4
    return offsets


def test_known_bytes():
    assert encode_recordio(b"abcde") == M + b"\x05\0\0\0abcde\0\0\0"
    assert encode_recordio(b"") == M + bytes(4)
    assert recordio_header(5, 3) == M + struct.pack("<I", 3 << 29 | 5)
    assert [recordio_padding(n) for n in range(5)] == [b"", b"\0\0\0", b"\0\0", b"\0", b""]


@pytest.mark.parametrize("payload, parts", [
    (b"abcd" + M + b"efgh", [(1, b"abcd"), (3, b"efgh")]),
    (M, [(1, b""), (3, b"")]),
    (M + M + b"x", [(1, b""), (2, b""), (3, b"x")]),
    (b"1234" + M + b"5678" + M, [(1, b"1234"), (2, b"5678"), (3, b"")]),
    (b"ab" + M + b"cd", [(0, b"ab" + M + b"cd")]),  # unaligned: left alone
    (b"abcdef" + M[:2], [(0, b"abcdef" + M[:2])]),
])
def test_aligned_magic_splits_the_record(payload, parts):
    encoded = encode_recordio(payload)
    assert parts_of(encoded) == parts
    assert frame_bytes("recordio", encoded) == [payload]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip_and_no_aligned_magic_but_headers(data):
    pieces = data.draw(st.lists(st.one_of(st.binary(max_size=9), st.just(M)), max_size=10))
    payload = b"".join(pieces)
    encoded = encode_recordio(payload)
    headers = set(header_offsets(encoded))
    assert set(find_aligned_magic(encoded).tolist()) == headers
    assert frame_bytes("recordio", encoded) == [payload]
    # Pipe mode's wrapper: one whole record, any chunking, known length or not.
    whole = wrap_recordio(payload)
    assert parts_of(whole) == [(FLAG_WHOLE, payload)]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=6)))
    bounds = [0, *cuts, len(payload)]
    chunks = [payload[a:b] for a, b in zip(bounds, bounds[1:])]
    total = data.draw(st.sampled_from([None, len(payload)]))
    streamed = list(iter_encode_recordio(chunks, total))
    assert b"".join(streamed) == whole
    # The dmlc reader reads the whole record byte-exact too, taking the pieces as chunks.
    assert [bytes(r) for r in frame_stream("recordio", streamed)] == [payload]


def test_stream_encoder_streams_a_known_length_uncopied_and_holds_an_unknown_one():
    payload = b"abcd" + M + b"efghijklmnopqr"  # an aligned magic word: not a cut
    enc = RecordIOStreamEncoder(total_len=len(payload))
    buf = bytearray(payload[:12])
    out = list(enc.feed(buf))
    assert out[0] == recordio_header(len(payload), FLAG_WHOLE) and out[1].obj is buf  # the caller's own bytes
    out += enc.feed(payload[12:])
    out += enc.finish()
    assert b"".join(out) == wrap_recordio(payload) == recordio_header(22, 0) + payload + b"\0\0"
    assert (enc.bytes_in, enc.bytes_out, enc.held) == (22, 32, 0)
    enc = RecordIOStreamEncoder()  # an inflated Gzip object: length unknown until the end
    buf = bytearray(payload)
    assert enc.feed(buf) == [] and enc.held == 22
    buf[:] = b"X" * 22  # the caller reuses its buffer: what is held is a copy
    assert b"".join(enc.finish()) == wrap_recordio(payload)


def test_stream_encoder_empty_and_unaligned_payloads():
    for payload in (b"", b"abc", M[:3], b"ab" + M + b"c", M):
        for total in (None, len(payload)):
            got = b"".join(iter_encode_recordio([payload[:2], payload[2:]], total))
            assert got == wrap_recordio(payload) and parts_of(got) == [(FLAG_WHOLE, payload)]


def test_stream_encoder_checks_total_len():
    with pytest.raises(ValueError, match="total_len"):
        list(iter_encode_recordio([b"abc"], total_len=4))
    with pytest.raises(ValueError, match="total_len"):
        list(iter_encode_recordio([b"abc", b"de"], total_len=4))
    enc = RecordIOStreamEncoder()
    enc.finish()
    with pytest.raises(RuntimeError):
        enc.feed(b"x")


def test_payload_limit_is_refused_up_front_naming_the_object():
    with pytest.raises(ValueError, match="s3://b/huge.bin holds 536870912 bytes.*536870911") as caught:
        RecordIOStreamEncoder(total_len=MAX_LENGTH + 1, name="s3://b/huge.bin")
    assert caught.value.details["url"] == "s3://b/huge.bin"
    assert "RecordWrapperType None" in str(caught.value)
    RecordIOStreamEncoder(total_len=MAX_LENGTH)
    # An anonymous mapping: no memory is touched before the check refuses it.
    with mmap.mmap(-1, MAX_LENGTH + 1) as big:
        with pytest.raises(ValueError, match="2\\*\\*29"):
            encode_recordio(big)
        with pytest.raises(ValueError, match="2\\*\\*29"):
            wrap_recordio(big)
    enc = RecordIOStreamEncoder(name="s3://b/big.gz")  # unknown length: refused before any copy
    assert enc.feed(b"abcd") == []
    big = mmap.mmap(-1, MAX_LENGTH - 3)  # left to the collector: the traceback holds a view of it
    with pytest.raises(ValueError, match="s3://b/big.gz holds 536870912 bytes"):
        enc.feed(big)
    assert enc.held == 4
    with pytest.raises(ValueError, match="29 bits"):
        recordio_header(MAX_LENGTH + 1)
    with pytest.raises(ValueError, match="flag"):
        recordio_header(1, 4)


def test_writer():
    sink = io.BytesIO()
    w = RecordIOWriter(sink)
    payloads = [b"one", b"two" + bytes(1) + M + b"x", b""]
    written = sum(w.write(p) for p in payloads)
    assert written == len(sink.getvalue())
    assert sink.getvalue() == b"".join(encode_recordio(p) for p in payloads)
    assert (w.records, w.splits) == (3, 1)
    assert frame_bytes("recordio", sink.getvalue()) == payloads
