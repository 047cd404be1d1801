"""PipeReader's own state: killed at any record of an epoch, resumed, the epoch exactly once.

Every framing (raw chunks too, whose position is in bytes), with and without
Gzip, on local files through the transport; RecordIO records that hold the
magic word at an aligned offset (multipart on disk) included.
"""

from __future__ import annotations

import gzip

import pytest
from adapterdata import encode, record_id
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.errors import ResumeStateError
from channels.modes.pipe import PipeReader
from channels.records import MAGIC
from channels.transport import TransportConfig

CONFIG = TransportConfig(part_size=2048, budget_bytes=16 * 1024, max_workers=2, first_part_size=700)
FRAMINGS = ("raw", "object", "lines", "tfrecord", "recordio", "parquet")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    out = {}
    for framing in FRAMINGS:
        for gz in (False, True):
            root = tmp_path_factory.mktemp(f"{framing}-{gz}")
            for o, n in enumerate((5, 0, 30, 2, 12)):
                ids = [f"o{o}:{r:02d}" for r in range(n)]
                body = encode("recordio" if framing in ("raw", "object") else framing, ids, 150)
                if framing == "recordio" and n:  # one record split at an aligned magic word
                    body += encode("recordio", [], 0) + _multipart(f"o{o}:zz")
                (root / f"o{o}").write_bytes(gzip.compress(body, 1) if gz else body)
            out[framing, gz] = root
    return out


def _multipart(rid: str) -> bytes:
    from channels.records import encode_recordio

    return encode_recordio(f"{rid}|".encode().ljust(8, b".") + MAGIC.to_bytes(4, "little") + b"tail")


def key(framing: str, records: list) -> list:
    if framing == "raw":
        return [b"".join(bytes(r) for r in records)]
    if framing == "object":
        return sorted(bytes(r) for r in records)
    return sorted(record_id(r) for r in records)


def reader(root, framing: str, gz: bool, seed: int = 4) -> PipeReader:
    return PipeReader(str(root), framing=framing, compression="Gzip" if gz else "None", shuffle_seed=seed,
                      config=CONFIG)


@settings(max_examples=40, deadline=None)
@given(framing=st.sampled_from(FRAMINGS), gz=st.booleans(), kill=st.floats(0, 1.05), epoch=st.integers(0, 3))
def test_killed_anywhere_resumed_exactly_once(dirs, framing, gz, kill, epoch):
    root = dirs[framing, gz]
    with reader(root, framing, gz) as r:
        whole = [r if framing == "parquet" else bytes(r) for r in r.epoch(epoch)]
    with reader(root, framing, gz) as r:
        it = r.epoch(epoch)
        before = [x if framing == "parquet" else bytes(x) for _, x in zip(range(int(kill * len(whole))), it)]
        state = r.state_dict()
        it.close()
    with reader(root, framing, gz) as r:
        r.load_state_dict(state)
        assert r.default_epoch == epoch
        after = [x if framing == "parquet" else bytes(x) for x in r]
    if framing == "raw":  # chunks: the bytes, in order
        assert b"".join(before + after) == b"".join(whole)
    else:
        assert before + after == whole if framing != "parquet" else key(framing, before + after) == key(framing, whole)


def test_a_reader_with_other_settings_refuses_the_state(dirs):
    root = dirs["lines", False]
    with reader(root, "lines", False) as r:
        it = r.epoch(2)
        next(it)
        state = r.state_dict()
        it.close()
    with reader(root, "lines", False, seed=5) as r, pytest.raises(ResumeStateError, match="seed: saved 4, here 5"):
        r.load_state_dict(state)
    with PipeReader(str(root), framing="lines", shuffle_seed=4, hosts=2, config=CONFIG) as r:
        with pytest.raises(ResumeStateError, match="hosts: saved 1, here 2"):
            r.load_state_dict(state)
