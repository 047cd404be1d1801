"""The PyTorch adapter: 2 ranks x 4 DataLoader workers read every record exactly once per epoch.

Ranks are simulated the way torchrun sets them (RANK, WORLD_SIZE,
LOCAL_RANK, LOCAL_WORLD_SIZE), one after the other in this process; the
workers are real DataLoader worker processes reading from the loopback
endpoint (or the local directory).
"""

from __future__ import annotations

from collections import Counter

import pytest

torch = pytest.importorskip("torch", reason="the torch extra is not installed (pip install 'channels[torch]')")

from torch.utils.data import DataLoader  # noqa: E402

from channels.adapters import (  # noqa: E402
    DirectorySource, FastFileSource, PipeReaderSource, Split, split_for,
)
from channels.adapters.torch import ChannelDataset  # noqa: E402
from channels.hosts import Identity, process_identity  # noqa: E402

OBJECTS, LINES, SEED = 24, 5, 7
RECORDS = sorted(f"obj-{i:02d} rec-{j}" for i in range(OBJECTS) for j in range(LINES))


def torchrun(rank: int, world: int) -> Identity:
    env = {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world),
           "SM_RESOURCE_CONFIG": '{"current_host": "algo-1", "hosts": ["algo-1"]}'}
    return process_identity(environ=env)


def body(i: int) -> bytes:
    return "".join(f"obj-{i:02d} rec-{j}\n" for j in range(LINES)).encode()


@pytest.fixture
def source_of(s3_client, bucket, tmp_path):
    """Build a source by kind over the same 24 objects (120 lines)."""
    for i in range(OBJECTS):
        s3_client.put_object(Bucket=bucket, Key=f"train/part/obj-{i:02d}.txt", Body=body(i))
        path = tmp_path / "train" / "part" / f"obj-{i:02d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body(i))

    def make(kind: str):
        if kind == "pipe":
            return PipeReaderSource(f"s3://{bucket}/train/", framing="lines", shuffle_seed=SEED)
        if kind == "fastfile":
            return FastFileSource(f"s3://{bucket}/train/", framing="lines", shuffle_seed=SEED)
        return DirectorySource(tmp_path / "train", framing="lines", shuffle_seed=SEED)

    return make


def read_epoch(source, epoch: int, ranks: int = 2, workers: int = 4) -> list[list[str]]:
    """Each rank's records, in the order its DataLoader yielded them."""
    out = []
    for rank in range(ranks):
        ds = ChannelDataset(source, identity=torchrun(rank, ranks), transform=lambda r: r.decode())
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context="fork")
        out.append(list(loader))
    return out


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
@pytest.mark.parametrize("kind", ["pipe", "directory", "fastfile"])
def test_every_record_once_per_epoch_and_reshuffled(kind, source_of):
    source = source_of(kind)
    seen = {}
    for epoch in (0, 1):
        per_rank = read_epoch(source, epoch)
        counts = Counter(r for rank in per_rank for r in rank)
        assert sorted(counts) == RECORDS and set(counts.values()) == {1}, f"epoch {epoch}: duplicates or gaps"
        assert all(per_rank), "each rank gets a share"
        seen[epoch] = per_rank
    # The seeded shuffle changes each epoch: another order, and other objects per rank.
    assert seen[0] != seen[1]
    assert set(seen[0][0]) != set(seen[1][0])


def test_without_workers_and_without_seed(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_bytes(body(i))
    ds = ChannelDataset(DirectorySource(tmp_path), identity=Identity(0, 1, "algo-1"))
    assert list(ds) == [body(0), body(1), body(2)]  # each file one record, in key order


def test_host_scope_splits_only_among_the_hosts_processes():
    # ShardedByS3Key File channel: host 1 of 2 holds its own share; its 2 local ranks split it.
    ident = Identity(host_index=1, hosts=2, host="algo-2", local_rank=1, local_world_size=2, rank=3, world_size=4)
    assert split_for(ident, "host", worker=2, workers=4) == Split(6, 8)
    assert split_for(ident, "job", worker=2, workers=4) == Split(14, 16)
    with pytest.raises(ValueError, match="unknown scope"):
        split_for(ident, "node")


def test_for_channel_reads_the_container(tmp_path):
    env = {"SM_INPUT_DATA_CONFIG": '{"train": {"TrainingInputMode": "File", "S3DistributionType": '
                                   '"ShardedByS3Key", "RecordWrapperType": "None"}, "stream": '
                                   '{"TrainingInputMode": "Pipe", "S3DistributionType": "FullyReplicated", '
                                   '"RecordWrapperType": "None"}}',
           "SM_CHANNEL_TRAIN": str(tmp_path)}
    src = DirectorySource.for_channel("train", environ=env)
    assert src.path == tmp_path and src.scope == "host"
    with pytest.raises(ValueError, match="Pipe mode.*PipeReaderSource"):
        DirectorySource.for_channel("stream", environ=env)
    with pytest.raises(ValueError, match="unknown framing"):
        DirectorySource(tmp_path, framing="csv")
