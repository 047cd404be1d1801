"""File mode through the Python API, on the loopback S3 endpoint."""

from __future__ import annotations

import _thread
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from channels.units import human_bytes
from channels.errors import InsufficientSpaceError, UnsafeKeyError
from channels.listing import list_prefix
from channels.modes.file.keys import TMP_MARK
from channels.modes.file.download import download
from channels.store import Store
from channels.testing import KIB, MIB, object_bytes
from channels.transport import TransportConfig

SMALL_PARTS = TransportConfig(part_size=256 * KIB, budget_bytes=4 * MIB, max_workers=8)


def put_all(client, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (journal and hidden files included), by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def data_files(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(root).items() if not k.startswith(".channels-download")}


@pytest.fixture
def mixed(s3_client, bucket):
    """Nested keys, an empty object, small ones, and large ones in many parts."""
    objects = {f"train/{k}": object_bytes(k, n) for k, n in [
        ("a.bin", 1000), ("empty", 0), ("sub/b.bin", 3 * MIB + 17), ("sub/deeper/c.bin", 64 * KIB),
        ("big.bin", 2 * MIB), (".hidden", 5)]}
    objects.update({f"train/many/{i:03d}": object_bytes(str(i), 100 + i) for i in range(40)})
    put_all(s3_client, bucket, objects)
    return {k[len("train/"):]: v for k, v in objects.items()}


def test_download_writes_every_object_at_its_key(s3, bucket, mixed, tmp_path):
    lines: list[str] = []
    dest = tmp_path / "dest"
    result = download(f"s3://{bucket}/train/", dest, config=SMALL_PARTS, log=lines.append,
                      store=Store(s3.endpoint_url))
    assert data_files(dest) == mixed
    assert result.objects == len(mixed) and result.skipped == 0
    assert result.bytes == sum(map(len, mixed.values())) and result.share_objects == len(mixed)
    assert result.retries == 0 and result.requests >= len(mixed) - 1  # the empty object needs no GET
    assert result.mb_per_s > 0
    assert (dest / ".channels-download.algo-1.jsonl").is_file()
    assert not [p for p in dest.rglob(f"*{TMP_MARK}*")]
    for path in dest.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o022 == 0, f"{path} is group/world-writable"
    assert any("this host (algo-1, index 0) gets 46 objects" in line for line in lines)
    assert f"{len(mixed)} of {len(mixed)} objects to fetch" in "\n".join(lines)
    assert lines[-1].startswith(f"downloaded {len(mixed)} objects")


def test_rerun_fetches_only_what_is_missing_or_changed(s3, s3_client, bucket, mixed, tmp_path):
    store = Store(s3.endpoint_url)
    dest = tmp_path / "dest"
    download(f"s3://{bucket}/train/", dest, config=SMALL_PARTS, store=store)
    # Changed in the store (same size, new ETag), removed locally, edited
    # locally, and new in the store; everything else stays put.
    s3_client.put_object(Bucket=bucket, Key="train/a.bin", Body=b"x" * 1000)
    (dest / "many/000").unlink()
    (dest / "sub/deeper/c.bin").write_bytes(b"edited")
    s3_client.put_object(Bucket=bucket, Key="train/new.bin", Body=b"new")
    expected = {**mixed, "a.bin": b"x" * 1000, "new.bin": b"new"}

    lines: list[str] = []
    result = download(f"s3://{bucket}/train/", dest, config=SMALL_PARTS, store=store, log=lines.append)
    assert result.objects == 4 and result.skipped == len(expected) - 4
    assert result.bytes == 1000 + 100 + 64 * KIB + 3
    assert f"4 of {len(expected)} objects to fetch" in "\n".join(lines)
    assert f"{len(expected) - 4} up to date" in "\n".join(lines)
    assert data_files(dest) == expected

    again = download(f"s3://{bucket}/train/", dest, config=SMALL_PARTS, store=store)
    assert again.objects == 0 and again.requests == 0 and again.skipped == len(expected)


def test_a_file_without_a_record_is_fetched_again(s3, bucket, mixed, tmp_path):
    """The journal, not the file's presence, says an object is complete."""
    store = Store(s3.endpoint_url)
    dest = tmp_path / "dest"
    download(f"s3://{bucket}/train/", dest, store=store)
    (dest / ".channels-download.algo-1.jsonl").unlink()
    (dest / "big.bin").write_bytes(b"\0" * (2 * MIB))  # same size, wrong bytes, no record
    result = download(f"s3://{bucket}/train/", dest, store=store)
    assert result.objects == len(mixed) and result.skipped == 0
    assert data_files(dest) == mixed


def test_hosts_split_the_prefix_and_together_make_the_dataset(s3, bucket, mixed, tmp_path):
    store = Store(s3.endpoint_url)
    dest = tmp_path / "shared"
    counts = []
    for index in range(3):
        r = download(f"s3://{bucket}/train/", dest, hosts=3, host_index=index, store=store,
                     strategy="size-balanced", config=SMALL_PARTS)
        counts.append(r.objects)
    assert sum(counts) == len(mixed) and min(counts) > 0
    assert data_files(dest) == mixed
    journals = sorted(p.name for p in dest.glob(".channels-download.*"))
    assert journals == [f".channels-download.algo-{i}.jsonl" for i in (1, 2, 3)]


def test_unsafe_keys_are_refused_before_anything_is_written(s3, s3_client, bucket, tmp_path):
    put_all(s3_client, bucket, {"p/ok.bin": b"ok", "p/a/../../x": b"up", "p//abs": b"abs",
                                "p/./dot": b"dot", "p/a//b": b"empty", "/abs": b"root"})
    store = Store(s3.endpoint_url)
    keys = {r.key for r in list_prefix(f"s3://{bucket}/p/", store=store).refs}
    assert {"a/../../x", "/abs", "./dot", "a//b"} <= keys  # the store kept them verbatim
    outside = tmp_path / "outside"
    outside.mkdir()
    before = sorted(p.as_posix() for p in tmp_path.rglob("*"))
    dest = outside / "dest"
    for source in (f"s3://{bucket}/p/", f"s3://{bucket}/"):
        with pytest.raises(UnsafeKeyError) as err:
            download(source, dest, store=store)
        message = str(err.value)
        assert "'a/../../x'" in message or "'p/a/../../x'" in message
        assert "'/abs'" in message and "Nothing was downloaded" in message
    bad = {k for k, _ in err.value.details["keys"]}
    assert bad == {"p/a/../../x", "p//abs", "p/./dot", "p/a//b", "/abs"}
    assert sorted(p.as_posix() for p in tmp_path.rglob("*")) == before
    assert not dest.exists()


def test_not_enough_space_fails_before_any_download(s3, bucket, mixed, tmp_path):
    store = Store(s3.endpoint_url)
    dest = tmp_path / "dest"
    total = sum(map(len, mixed.values()))
    with pytest.raises(InsufficientSpaceError) as err:
        download(f"s3://{bucket}/train/", dest, store=store, disk_free=lambda path: 1000)
    assert f"needs {human_bytes(total)} ({total} bytes)" in str(err.value) and "(1000 bytes) free" in str(err.value)
    assert err.value.details["needed"] == total and err.value.details["free"] == 1000
    with pytest.raises(InsufficientSpaceError, match=r"more than VolumeSizeInGB 0\.001"):
        download(f"s3://{bucket}/train/", dest, store=store, volume_size_gb=0.001)
    assert not dest.exists()
    # The same share fits once half of it is already up to date on this disk.
    download(f"s3://{bucket}/train/", dest, store=store, hosts=2, host_index=0)
    r = download(f"s3://{bucket}/train/", dest, store=store, disk_free=lambda path: total - 2 * MIB,
                 volume_size_gb=total / 1024 ** 3)
    assert r.objects > 0 and r.skipped > 0


def test_ctrl_c_removes_temporary_files_and_keeps_completed_ones(s3, s3_client, bucket, tmp_path):
    objects = {f"d/{i:02d}.bin": object_bytes(str(i), MIB) for i in range(24)}
    put_all(s3_client, bucket, objects)
    store = Store(s3.endpoint_url)
    dest = tmp_path / "dest"
    slow = TransportConfig(part_size=64 * KIB, budget_bytes=256 * KIB, max_workers=1)

    def interrupt_after_first_files() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len([p for p in dest.glob("*.bin")]) >= 3:
                break
            time.sleep(0.002)
        _thread.interrupt_main()

    lines: list[str] = []
    # interrupt_main() does nothing while SIGINT is ignored, as it is in a shell's background job
    # (`make test &`): Ctrl-C's own handler, for this test.
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        watcher = threading.Thread(target=interrupt_after_first_files)
        watcher.start()
        with pytest.raises(KeyboardInterrupt):
            download(f"s3://{bucket}/d/", dest, store=store, config=slow, log=lines.append)
        watcher.join()
    finally:
        signal.signal(signal.SIGINT, old_handler)
    kept = data_files(dest)
    assert 3 <= len(kept) < len(objects), "the download was not interrupted midway"
    assert all(objects[f"d/{k}"] == v for k, v in kept.items())
    assert not [p for p in dest.rglob(f"*{TMP_MARK}*")]
    assert lines[-1].startswith(f"stopped: {len(kept)} of {len(objects)} objects completed and kept")

    result = download(f"s3://{bucket}/d/", dest, store=store)
    assert result.skipped == len(kept) and result.objects == len(objects) - len(kept)
    assert data_files(dest) == {k[2:]: v for k, v in objects.items()}


def test_stale_temporary_files_of_a_dead_process_are_removed(s3, bucket, mixed, tmp_path):
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    stale = dest / "sub" / f".b.bin{TMP_MARK}{dead}-abcd"
    stale.write_bytes(b"partial")
    mine = dest / "sub" / f".c.bin{TMP_MARK}{os.getpid()}-abcd"  # a live process's: left alone
    mine.write_bytes(b"in flight")
    download(f"s3://{bucket}/train/", dest, store=Store(s3.endpoint_url))
    assert not stale.exists() and mine.exists()


def test_a_key_with_a_255_byte_name_downloads(s3, s3_client, bucket, tmp_path):
    name = "n" * 255
    s3_client.put_object(Bucket=bucket, Key=f"long/{name}", Body=b"long")
    download(f"s3://{bucket}/long/", tmp_path / "d", store=Store(s3.endpoint_url))
    assert (tmp_path / "d" / name).read_bytes() == b"long"


def test_a_manifest_downloads_its_entries_at_their_paths_below_the_prefix(s3, s3_client, bucket, mixed, tmp_path):
    manifest = f'[{{"prefix": "s3://{bucket}/train/"}}, "a.bin", "sub/b.bin", "a.bin"]'
    s3_client.put_object(Bucket=bucket, Key="lists/m.json", Body=manifest.encode())
    result = download(f"s3://{bucket}/lists/m.json", tmp_path / "d", data_type="ManifestFile",
                      store=Store(s3.endpoint_url))
    assert data_files(tmp_path / "d") == {"a.bin": mixed["a.bin"], "sub/b.bin": mixed["sub/b.bin"]}
    assert result.objects == 2  # an entry listed twice is fetched once
