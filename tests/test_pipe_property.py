"""The Pipe reader checked against an in-memory reference with hypothesis:
any object sizes, part sizes, budgets, Gzip or not, shuffled or not, on local
files (the transport's local backend, so that each example is cheap)."""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from channels.modes.pipe.reader import PipeReader
from channels.sharding import plan
from channels.transport import TransportConfig

line = st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"."))
an_object = st.lists(line, max_size=400).map(lambda lines: b"".join(x + b"\n" for x in lines))


@settings(max_examples=40, deadline=None)
@given(objects=st.lists(an_object, min_size=1, max_size=6), part=st.sampled_from([4096, 10_000, 65536]),
       budget_parts=st.integers(2, 6), compressed=st.booleans(), seed=st.one_of(st.none(), st.integers(0, 99)),
       epoch=st.integers(0, 3), framing=st.sampled_from(["raw", "lines", "object"]))
def test_reader_matches_a_reference(objects, part, budget_parts, compressed, seed, epoch, framing):
    root = Path(tempfile.mkdtemp())
    try:
        for i, body in enumerate(objects):
            (root / f"part-{i:03d}").write_bytes(gzip.compress(body) if compressed else body)
        config = TransportConfig(part_size=part, budget_bytes=part * budget_parts, max_workers=3)
        with PipeReader(f"file://{root}/", framing=framing, compression="Gzip" if compressed else "None",
                        shuffle_seed=seed, epoch=epoch, config=config) as reader:
            got = list(reader.records())
            peak = reader.stats()["transport_buffer_peak"]
        order = plan([1] * len(objects), 1, seed=seed, epoch=epoch).units_for(0)
        ordered = [objects[i] for i in order]
        if framing == "raw":
            assert b"".join(got) == b"".join(ordered)
        elif framing == "object":
            assert got == ordered
        else:
            assert got == [x for body in ordered for x in body.split(b"\n")[:-1]]
        assert peak <= part * budget_parts
    finally:
        shutil.rmtree(root)
