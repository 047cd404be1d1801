"""Saved states against the S3 endpoint: resumed with a ranged read, refused when they do not fit.

A state that does not match the channel (another seed or policy, other
objects, an object with a new ETag) is an error naming what differs, never a
silent restart; one that fits continues at the next record, fetching from
its byte offset.
"""

from __future__ import annotations

import json
import pickle

import pytest
from adapterdata import encode, run_job

from channels.adapters import Consumers, PipeReaderSource, Split
from channels.errors import ResumeStateError
from channels.modes.pipe import PipeReader
from channels.transport import TransportConfig

PART = 64 * 1024
CONFIG = TransportConfig(part_size=PART, budget_bytes=8 * PART, max_workers=4, first_part_size=16 * 1024)


@pytest.fixture
def tfrecords(s3_client, bucket):
    """Four TFRecord objects of 400 records (about 200 KiB each) under s3://bucket/tf/."""
    ids = []
    for o in range(4):
        rec = [f"o{o:02d}:{r:03d}" for r in range(400)]
        s3_client.put_object(Bucket=bucket, Key=f"tf/o{o:02d}.tfrecord", Body=encode("tfrecord", rec, 500))
        ids += rec
    return f"s3://{bucket}/tf/", ids


def ident(records) -> list[str]:
    return [bytes(r).split(b"|", 1)[0].decode() for r in records]


def test_pipereader_resumes_with_a_ranged_read_from_the_next_record(tfrecords):
    uri, ids = tfrecords
    with PipeReader(uri, framing="tfrecord", shuffle_seed=3, config=CONFIG) as reader:
        it = reader.epoch(1)
        before = [bytes(next(it)) for _ in range(650)]  # in the middle of the second object
        state = reader.state_dict()
        it.close()
    assert json.loads(json.dumps(state)) == state and pickle.loads(pickle.dumps(state)) == state
    total = sum(len(encode("tfrecord", [f"o{o:02d}:{r:03d}" for r in range(400)], 500)) for o in range(4))
    with PipeReader(uri, framing="tfrecord", shuffle_seed=3, config=CONFIG) as reader:
        reader.load_state_dict(state)
        after = [bytes(r) for r in reader]
        fetched, skipped = reader.counts["bytes_in"], reader.counts["skipped"]
    assert sorted(ident(before + after)) == sorted(ids) and len(before + after) == len(ids)
    remaining = total * (len(after) / len(ids))  # records are all the same size
    assert fetched <= remaining + PART, (fetched, remaining)  # nothing read again beyond one part
    assert skipped < PART // 500


def test_a_changed_object_is_named_not_restarted(tfrecords, s3_client, bucket):
    uri, _ = tfrecords
    source = PipeReaderSource(uri, framing="tfrecord", shuffle_seed=3, config=CONFIG)
    _, state = run_job(Consumers(source, policy="none"), 2, 2, 0, limit=100)
    with PipeReader(uri, framing="tfrecord", shuffle_seed=3, config=CONFIG) as reader:
        it = reader.epoch(0)
        next(it)
        reader_state = reader.state_dict()
        it.close()
    s3_client.put_object(Bucket=bucket, Key="tf/o02.tfrecord", Body=encode("tfrecord", ["new"], 10))
    fresh = Consumers(PipeReaderSource(uri, framing="tfrecord", shuffle_seed=3, config=CONFIG), policy="none")
    with pytest.raises(ResumeStateError, match=r"changed since the state was saved .*: s3://test-bucket/tf/"
                                               r"o02.tfrecord;") as err:
        fresh.open(Split(0, 4), 0, state=state)
    assert err.value.details["field"] == "versions"
    assert err.value.details["objects"] == [f"{uri}o02.tfrecord"]
    with PipeReader(uri, framing="tfrecord", shuffle_seed=3, config=CONFIG) as reader:
        with pytest.raises(ResumeStateError, match="o02.tfrecord"):
            reader.load_state_dict(reader_state)


def test_a_state_that_does_not_fit_says_what_differs(tmp_path):
    for o in range(3):
        (tmp_path / f"{o}.txt").write_text("".join(f"{o}:{k}\n" for k in range(5)))

    def consumers(**kw) -> Consumers:
        return Consumers(PipeReaderSource(str(tmp_path), framing="lines", shuffle_seed=kw.pop("seed", 1)), **kw)

    _, state = run_job(consumers(), 2, 1, 4, limit=3)
    with pytest.raises(ResumeStateError, match="seed: saved 1, here 2") as err:
        consumers(seed=2).open(Split(0, 2), 4, state=state)
    assert err.value.details["field"] == "seed"
    with pytest.raises(ResumeStateError, match="policy: saved 'pad', here 'drop'"):
        consumers(policy="drop").open(Split(0, 2), 4, state=state)
    with pytest.raises(ResumeStateError, match="split: saved 'bytes', here 'count'"):
        consumers(split="count").open(Split(0, 2), 4, state=state)
    # Resuming on 3 consumers needs both saved positions.
    one = dict(state, positions={0: state["positions"][0]})
    with pytest.raises(ResumeStateError, match=r"needs the position of every one of the 2; 1 missing \(consumers 1\)"):
        consumers().open(Split(0, 3), 4, state=one)
    with pytest.raises(ResumeStateError, match="no position for consumer 1 of 2"):
        consumers().open(Split(1, 2), 4, state=one)
    (tmp_path / "3.txt").write_text("3:0\n")
    with pytest.raises(ResumeStateError, match=r"lists other objects .*\(4 now, 3 then; differing: .*3.txt\)") as err:
        consumers().open(Split(0, 2), 4, state=state)
    assert err.value.details["field"] == "objects"
    with pytest.raises(ResumeStateError, match="layout version 0"):
        consumers().open(Split(0, 2), 4, state=dict(state, version=0))
    # Through JSON (positions' keys become strings) a state still loads.
    (tmp_path / "3.txt").unlink()
    consumers().open(Split(1, 2), 4, state=json.loads(json.dumps(state)))
