"""The framing benchmark's cases: in-memory objects of records, fed to a framer in 4 MiB chunks.

Shared by ``test_bench_framing.py`` (pytest-benchmark) and ``pipe_bench.py``
(framer throughput beside the Pipe figures). Each case is (framing, record
size, record count); its object is made from up to 64 distinct payloads,
repeated, so making it stays cheap.
"""

from __future__ import annotations

import random

from channels.records import encode_recordio, encode_tfrecord, framer

CHUNK = 4 << 20  # a transport-sized piece

CASES = [
    ("tfrecord", 65536, 2048),      # 128 MiB
    ("tfrecord", 100, 400_000),     # 45 MB
    ("recordio", 65536, 2048),
    ("recordio", 100, 400_000),
    ("lines", 100, 400_000),
]


def make_object(name: str, size: int, count: int) -> bytes:
    """``count`` records of ``size`` bytes in the ``name`` framing (``lines``: text lines)."""
    rnd = random.Random(size)
    payloads = [rnd.randbytes(size) for _ in range(min(count, 64))]
    if name == "lines":
        alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789,"
        payloads = [bytes(rnd.choice(alphabet) for _ in range(size)) for _ in range(64)]
        return b"".join(payloads[i % 64] + b"\n" for i in range(count))
    encode = {"tfrecord": encode_tfrecord, "recordio": encode_recordio}[name]
    encoded = [encode(p) for p in payloads]
    return b"".join(encoded[i % len(encoded)] for i in range(count))


def chunks(data: bytes) -> list[memoryview]:
    """``data`` in :data:`CHUNK`-sized views, as the transport hands it over."""
    view = memoryview(data)
    return [view[i:i + CHUNK] for i in range(0, len(data), CHUNK)]


def frame(name: str, pieces: list[memoryview]) -> int:
    """Feed every piece to a ``name`` framer (CRCs checked), consume every record; the records."""
    f = framer(name, "bench")
    for piece in pieces:
        for _ in f.feed(piece):
            pass
    for _ in f.finish():
        pass
    return f.records_out
