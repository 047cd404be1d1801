"""The FIFO server, as a training script sees it: `python -m channels pipe` in
a subprocess, real FIFOs, consumers written the way SageMaker documents
(open ``train_0``, read to EOF, open ``train_1``, ...; retry until the next
exists), against a real S3 endpoint on loopback."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time

import pytest
from pipeserver import TIMEOUT, channel, consume, finish, job_file, serve, wait_for_path

from channels.modes.pipe.fifo import FifoServer, make_fifo
from channels.modes.pipe.reader import PipeReader
from channels.records import MAGIC, frame_bytes
from channels.sharding import plan
from channels.store import Store
from channels.units import KIB


def objects_in_order(objects: dict[str, bytes], seed: int, epoch: int) -> list[bytes]:
    keys = sorted(objects)
    return [objects[keys[i]] for i in plan([1] * len(keys), 1, seed=seed, epoch=epoch).units_for(0)]


def test_two_channels_read_at_once_get_every_record_once_per_epoch_in_seeded_order(
        s3_client, bucket, tmp_path):
    magic = MAGIC.to_bytes(4, "little")
    train = {f"train/{i:02d}.bin": bytes([i]) * (i * 9 * KIB + i) for i in range(12)}
    train["train/magic.bin"] = b"abcd" + magic + b"efgh" * 3000  # an aligned magic word: still one record
    lines = {f"lines/{i:02d}.txt": b"".join(f"{i}:{j}\n".encode() for j in range(5000)) for i in range(8)}
    for key, body in {**train, **lines}.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    job = job_file(tmp_path, [
        channel("train", f"s3://{bucket}/train/", RecordWrapperType="RecordIO", ShuffleConfig={"Seed": 11}),
        channel("lines", f"s3://{bucket}/lines/", ShuffleConfig={"Seed": 5}),
    ])
    proc = serve(job, tmp_path, "--epochs", "2")
    data_dir = tmp_path / "input" / "data"
    got: dict[str, dict[int, bytes]] = {"train": {}, "lines": {}}
    threads = [threading.Thread(target=consume, args=(data_dir, name, 2, proc, got[name])) for name in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    rc, err = finish(proc)
    assert rc == 0, err
    for e in (0, 1):
        assert frame_bytes("recordio", got["train"][e]) == objects_in_order(train, 11, e)
        assert got["lines"][e] == b"".join(objects_in_order(lines, 5, e))
    assert got["train"][0] != got["train"][1]
    assert list(data_dir.iterdir()) == []


def test_a_consumer_that_closes_early_moves_on_to_the_next_epoch(s3_client, bucket, tmp_path):
    objects = {f"big/{i}": bytes([65 + i]) * 512 * KIB for i in range(6)}  # 3 MiB: more than a pipe holds
    for key, body in objects.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    job = job_file(tmp_path, [channel("train", f"s3://{bucket}/big/")])
    proc = serve(job, tmp_path, "--epochs", "3", "-v")
    got: dict[int, bytes] = {}
    consume(tmp_path / "input" / "data", "train", 3, proc, got, early={0, 1})
    rc, err = finish(proc)
    assert rc == 0, err
    assert got[0] == got[1] == b"A" * 100
    assert got[2] == b"".join(objects[k] for k in sorted(objects))
    assert "train: 3 epoch(s), 2 closed early" in err


def test_closing_early_with_the_rest_already_in_the_pipe_ends_the_epoch(s3_client, bucket, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="d/a", Body=b"s" * 1000)  # fits in the pipe at once
    job = job_file(tmp_path, [channel("train", f"s3://{bucket}/d/")])
    proc = serve(job, tmp_path, "--epochs", "2", "-v")
    got: dict[int, bytes] = {}
    consume(tmp_path / "input" / "data", "train", 2, proc, got, early={0})
    rc, err = finish(proc)
    assert rc == 0, err
    assert got == {0: b"s" * 100, 1: b"s" * 1000}
    assert "1 closed early" in err


def test_the_next_epochs_fifo_exists_before_this_one_ends_and_none_after_the_last(s3_client, bucket, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="d/a", Body=b"q" * 3 * 1024 * KIB)
    job = job_file(tmp_path, [channel("train", f"s3://{bucket}/d/")])
    proc = serve(job, tmp_path, "--epochs", "2")
    data_dir = tmp_path / "input" / "data"
    wait_for_path(data_dir / "train_0", proc)
    with open(data_dir / "train_0", "rb", buffering=0) as f:  # unbuffered: no read-ahead
        head = b""
        while len(head) < 3 * 1024 * KIB - 100:
            head += f.read(3 * 1024 * KIB - 100 - len(head))
        # 100 bytes still wait in the pipe, and the next epoch's FIFO is already there.
        assert stat.S_ISFIFO(os.stat(data_dir / "train_1").st_mode)
        tail = f.read()
    assert head + tail == b"q" * 3 * 1024 * KIB
    with open(data_dir / "train_1", "rb") as f:  # no wait: it exists
        assert len(f.read()) == 3 * 1024 * KIB
        assert not (data_dir / "train_2").exists()  # --epochs 2: there is no third
    rc, err = finish(proc)
    assert rc == 0, err
    assert list(data_dir.iterdir()) == []


def test_sigterm_lets_a_reader_waiting_on_the_next_epochs_fifo_go_with_eof(s3_client, bucket, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="d/a", Body=b"w" * 4 * 1024 * KIB)
    job = job_file(tmp_path, [channel("train", f"s3://{bucket}/d/")])
    proc = serve(job, tmp_path)
    data_dir = tmp_path / "input" / "data"
    wait_for_path(data_dir / "train_0", proc)
    got: dict[str, bytes] = {}

    def read_next() -> None:  # opens train_1 while train_0 is still being written: blocks
        with open(data_dir / "train_1", "rb") as f:
            got["next"] = f.read()

    with open(data_dir / "train_0", "rb") as f:
        assert f.read(10) == b"w" * 10
        wait_for_path(data_dir / "train_1", proc)
        waiter = threading.Thread(target=read_next)
        waiter.start()
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        rc, err = finish(proc)
        waiter.join(5)
    assert not waiter.is_alive() and got["next"] == b""
    assert rc == 0, err
    assert list(data_dir.iterdir()) == []


def test_fifos_are_private_and_sigterm_stops_a_writer_waiting_for_its_reader(s3_client, bucket, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="d/a", Body=b"x" * 1000)
    job = job_file(tmp_path, [channel("train", f"s3://{bucket}/d/"), channel("eval", f"s3://{bucket}/d/")])
    proc = serve(job, tmp_path)  # epochs until stopped
    data_dir = tmp_path / "input" / "data"
    for name in ("train", "eval"):
        wait_for_path(data_dir / f"{name}_0", proc)
        mode = os.stat(data_dir / f"{name}_0").st_mode
        assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) & 0o077 == 0
    with open(data_dir / "eval_0", "rb") as f:  # one epoch read; eval_1 then waits too
        assert f.read() == b"x" * 1000
    wait_for_path(data_dir / "eval_1", proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc, err = finish(proc)
    assert rc == 0, err
    assert time.monotonic() - started < 5
    assert "stopped by SIGTERM" in err
    assert list(data_dir.iterdir()) == []


def test_ctrl_c_stops_a_writer_blocked_on_a_full_pipe_and_the_reader_sees_eof(s3_client, bucket, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="d/a", Body=b"y" * 4 * 1024 * KIB)
    job = job_file(tmp_path, [channel("train", f"s3://{bucket}/d/")])
    proc = serve(job, tmp_path)
    path = tmp_path / "input" / "data" / "train_0"
    wait_for_path(path, proc)
    with open(path, "rb") as f:
        assert f.read(10) == b"y" * 10
        time.sleep(0.3)  # the writer fills the pipe and waits
        proc.send_signal(signal.SIGINT)
        rc, err = finish(proc)
        rest = f.read()  # what was in the pipe, then EOF rather than a hang
    assert rc == 130, err
    assert 0 < len(rest) < 4 * 1024 * KIB
    assert not path.exists()


def test_a_broken_channel_stops_the_server_with_its_error(s3, tmp_path):
    job = job_file(tmp_path, [channel("train", "s3://no-such-bucket/p/")])
    proc = serve(job, tmp_path, "--epochs", "1")
    rc, err = finish(proc)
    assert rc == 2
    assert "no-such-bucket" in err and "does not exist" in err
    assert list((tmp_path / "input" / "data").iterdir()) == []


def test_server_in_process_replaces_a_stale_fifo(s3, s3_client, bucket, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="d/a", Body=b"z" * 5000)
    data_dir = tmp_path / "input" / "data"
    data_dir.mkdir(parents=True)
    os.mkfifo(data_dir / "train_0", 0o600)  # left by a crashed run
    reader = PipeReader(f"s3://{bucket}/d/", store=Store(s3.endpoint_url))
    with FifoServer({"train": reader}, tmp_path, epochs=1) as server:
        server.start()
        got: dict[int, bytes] = {}
        deadline = time.monotonic() + TIMEOUT
        while not server.writers[0].current and time.monotonic() < deadline:
            time.sleep(0.005)
        with open(data_dir / "train_0", "rb") as f:
            got[0] = f.read()
        assert server.wait(TIMEOUT)
    assert got[0] == b"z" * 5000
    assert server.writers[0].bytes_written == 5000 and server.writers[0].error is None


def test_make_fifo_refuses_what_it_must_not_replace(tmp_path):
    (tmp_path / "train_0").write_bytes(b"a file")
    with pytest.raises(FileExistsError):
        make_fifo(tmp_path / "train_0")
    with pytest.raises(ValueError, match="0o666"):
        make_fifo(tmp_path / "train_1", 0o666)
    with pytest.raises(ValueError, match="epochs"):
        FifoServer({"t": None}, tmp_path, epochs=-1)  # type: ignore[dict-item]


def test_unknown_channel_is_refused_with_the_valid_names(tmp_path):
    job = job_file(tmp_path, [channel("train", "s3://any-bucket/p/")])
    proc = serve(job, tmp_path, "--channel", "eval")
    rc, err = finish(proc)
    assert rc == 2 and "no Pipe channel named eval" in err and "its Pipe channels: train" in err
