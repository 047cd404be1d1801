"""`channels pipe` as AWS's own Pipe reader reads it (sagemaker-tensorflow's PipeModeDataset).

PipeModeDataset is C++ inside TensorFlow, which this machine lacks; these
consumers follow its rules as its source states them:

* RecordIOReader: read the 8-byte header, check the magic, take the low 29
  bits as the length, read the payload, skip the padding; while the flag is
  1 or 2 read the next part and append it, WITHOUT putting a magic word back;
* RecordReader: before opening ``<channel>_<epoch>``, stat it and, while it
  is missing, sleep 1 s (then 2 s, ...);
* the channel must be in ``input/config/inputdataconfig.json`` in Pipe mode.

Real `channels pipe` subprocesses, real FIFOs, moto on loopback.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import time
from collections.abc import Iterator
from typing import BinaryIO

import pytest
from pipeserver import channel, finish, job_file, serve, wait_for_path

from channels.errors import RecordError
from channels.modes.pipe.fifo import FifoServer
from channels.modes.pipe.reader import PipeReader
from channels.records import MAGIC, MAX_LENGTH, encode_recordio, frame_bytes
from channels.units import KIB, MIB

M = struct.pack("<I", MAGIC)


def aws_records(f: BinaryIO) -> Iterator[bytes]:
    """Records as AWS's RecordIOReader::ReadRecord reads them (parts joined as they are)."""
    while True:
        record = b""
        while True:
            header = f.read(8)
            if not header and not record:
                return
            assert len(header) == 8, f"a header cut short: {header!r}"
            magic, word = struct.unpack("<II", header)
            assert magic == MAGIC, f"Invalid magic number: {magic}"
            size, flag = word & MAX_LENGTH, (word >> 29) & 7
            payload = f.read(size)
            assert len(payload) == size
            f.read(-size % 4)  # the padding
            record += payload  # no magic word put back between parts
            if flag not in (1, 2):
                break
        yield record


def with_magic_words(size: int) -> bytes:
    """``size`` bytes holding the magic word at aligned and unaligned offsets throughout."""
    data = bytearray(os.urandom(size))
    for at in range(0, size - 8, 64 * KIB):
        data[at:at + 4] = M  # aligned
        data[at + 4097:at + 4101] = M  # unaligned
    return bytes(data)


OBJECTS = {
    "00-empty": b"",
    "01-three-bytes": b"abc",
    "02-just-the-magic": M,
    "03-aligned": b"abcd" + M + b"efgh",
    "04-unaligned": b"ab" + M + b"cd",
    "05-ends-with-it": b"1234" + M,
    "06-three-of-the-magic": M[:3],
    "07-3mib": with_magic_words(3 * MIB),
}


def test_a_recordio_channel_reaches_aws_recordioreader_byte_for_byte(s3_client, bucket, tmp_path):
    for name, body in OBJECTS.items():
        s3_client.put_object(Bucket=bucket, Key=f"rio/{name}", Body=body)
        s3_client.put_object(Bucket=bucket, Key=f"gz/{name}.gz", Body=gzip.compress(body))  # length unknown
    # The dmlc writer's split would not survive this reader: 4 bytes short per aligned magic word.
    assert list(aws_records(io.BytesIO(encode_recordio(OBJECTS["03-aligned"])))) == [b"abcdefgh"]
    job = job_file(tmp_path, [
        channel("rio", f"s3://{bucket}/rio/", RecordWrapperType="RecordIO"),
        channel("gz", f"s3://{bucket}/gz/", RecordWrapperType="RecordIO", CompressionType="Gzip"),
    ])
    proc = serve(job, tmp_path, "--epochs", "1")
    data_dir = tmp_path / "input" / "data"
    want = [OBJECTS[k] for k in sorted(OBJECTS)]
    for name in ("rio", "gz"):
        wait_for_path(data_dir / f"{name}_0", proc)
        with open(data_dir / f"{name}_0", "rb") as f:
            stream = f.read()
        got = list(aws_records(io.BytesIO(stream)))
        assert [len(r) for r in got] == [len(w) for w in want]
        assert got == want
        assert frame_bytes("recordio", stream) == want  # and the dmlc reader agrees
    rc, err = finish(proc)
    assert rc == 0, err


def test_pipe_consumer_that_sleeps_when_the_next_fifo_is_missing_never_sleeps(s3_client, bucket, tmp_path,
                                                                             capsys):
    for i in range(8):
        s3_client.put_object(Bucket=bucket, Key=f"train/{i}", Body=bytes([i]) * MIB)
    job = job_file(tmp_path, [channel("train", f"s3://{bucket}/train/")])
    proc = serve(job, tmp_path, "--epochs", "3")
    data_dir = tmp_path / "input" / "data"
    wait_for_path(data_dir / "train_0", proc)
    config = json.loads((tmp_path / "input" / "config" / "inputdataconfig.json").read_text())
    assert config["train"]["TrainingInputMode"] == "Pipe"  # PipeModeDataset checks this first
    sleeps, seconds = 0, []
    for epoch in range(3):
        started = time.monotonic()
        path = data_dir / f"train_{epoch}"
        pause = 0
        while not path.exists():  # RecordReader::WaitForFile
            pause += 1
            sleeps += 1
            time.sleep(pause)
        size = 0
        with open(path, "rb") as f:
            while chunk := f.read(MIB):
                size += len(chunk)
        assert size == 8 * MIB
        seconds.append(time.monotonic() - started)
    rc, err = finish(proc)
    assert rc == 0, err
    with capsys.disabled():  # measured, not asserted
        print("\n  PipeModeDataset-style consumer, 8 MiB per epoch: "
              + ", ".join(f"epoch {e} {s:.3f} s" for e, s in enumerate(seconds)))
    assert sleeps == 0


def test_an_object_too_large_for_one_record_fails_before_any_fifo_naming_it(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "small").write_bytes(b"x")
    with open(src / "huge.bin", "wb") as f:  # sparse: no disk, no memory
        f.truncate(MAX_LENGTH + 1)
    reader = PipeReader(src.as_uri() + "/", record_wrapper="RecordIO", framing="raw")
    server = FifoServer({"train": reader}, tmp_path / "root", epochs=1)
    with pytest.raises(RecordError, match=r"channel train: .*huge\.bin holds 536870912 bytes.*RecordWrapperType None") \
            as caught:
        server.serve()
    assert caught.value.details["url"].endswith("/src/huge.bin")
    assert (caught.value.details["length"], caught.value.details["limit"]) == (MAX_LENGTH + 1, MAX_LENGTH)
    assert list((tmp_path / "root" / "input" / "data").iterdir()) == []
