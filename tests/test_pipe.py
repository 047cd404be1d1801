"""The Pipe reader against a real S3 endpoint (moto on loopback): framings,
Gzip, the RecordIO wrapper, shuffling per epoch, sharding, inline values and
corruption reported with the object and offset."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from channels.errors import RecordError, ShardingError
from channels.modes.pipe.reader import FRAMINGS, PipeReader
from channels.modes.pipe.source import PipeSource
from channels.records import encode_recordio
from channels.sharding import plan
from channels.spec import Channel, S3DataSource
from channels.store import Store
from channels.transport import TransportConfig
from channels.units import KIB

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
SMALL = TransportConfig(part_size=64 * KIB, small_object_threshold=64 * KIB, budget_bytes=1024 * KIB,
                        max_workers=4)


def reader(s3, uri: str, **kwargs) -> PipeReader:
    kwargs.setdefault("store", Store(s3.endpoint_url))
    return PipeReader(uri, **kwargs)


def upload(client, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)


def lines_objects(count: int = 6, lines: int = 3) -> dict[str, bytes]:
    return {f"lines/part-{i:03d}.txt": b"".join(f"obj{i} line{j}\n".encode() for j in range(lines))
            for i in range(count)}


# ---------------------------------------------------------------- the must-show file


def tfrecords_file() -> bytes:
    path = TESTDATA / "100.tfrecords"
    if not path.exists():
        pytest.skip(f"{path} is missing: shared/testdata must sit beside the repository")
    return path.read_bytes()


def test_tfrecords_from_tensorflow_read_through_the_endpoint(s3, s3_client, bucket):
    s3_client.put_object(Bucket=bucket, Key="tf/100.tfrecords", Body=tfrecords_file())
    with reader(s3, f"s3://{bucket}/tf/", framing="tfrecord") as r:
        got = list(r.records())
        stats = r.stats()
    assert got == [f"hello world {i}".encode() for i in range(100)]
    assert stats["records"] == 100 and stats["objects"] == 1 and stats["transport_requests"] == 1


def test_a_flipped_byte_names_the_object_and_offset(s3, s3_client, bucket):
    data = bytearray(tfrecords_file())
    offsets = []  # where each record starts
    pos = 0
    while pos < len(data):
        offsets.append(pos)
        pos += 12 + int.from_bytes(data[pos:pos + 8], "little") + 4
    data[offsets[37] + 12 + 3] ^= 0x01  # inside record 37's payload
    s3_client.put_object(Bucket=bucket, Key="tf/bad.tfrecords", Body=bytes(data))
    url = f"s3://{bucket}/tf/bad.tfrecords"
    got = []
    with reader(s3, f"s3://{bucket}/tf/", framing="tfrecord") as r, pytest.raises(RecordError) as info:
        for record in r.epoch(0):
            got.append(bytes(record))
    assert info.value.details["url"] == url and info.value.details["offset"] == offsets[37]
    assert url in str(info.value) and f"offset {offsets[37]}" in str(info.value)
    assert got == [f"hello world {i}".encode() for i in range(37)]


# ---------------------------------------------------------------- framings


def test_raw_framing_yields_every_byte_in_listing_order(s3, s3_client, bucket):
    objects = {f"raw/{i}": bytes([i]) * (100 * KIB + i) for i in range(5)}
    objects["raw/empty"] = b""
    upload(s3_client, bucket, objects)
    with reader(s3, f"s3://{bucket}/raw/", config=SMALL) as r:
        chunks = [bytes(c) for c in r]
        assert r.counts["objects"] == 6
    assert b"".join(chunks) == b"".join(objects[k] for k in sorted(objects))
    assert max(map(len, chunks)) <= 64 * KIB  # parts of a large object, never joined


def test_records_are_views_released_at_the_next_record(s3, s3_client, bucket):
    upload(s3_client, bucket, {"raw/a": b"a" * 200 * KIB})
    with reader(s3, f"s3://{bucket}/raw/", config=SMALL) as r:
        it = r.epoch(0)
        first = next(it)
        assert isinstance(first, memoryview) and bytes(first[:1]) == b"a"
        next(it)
        with pytest.raises(ValueError):
            bytes(first)
        it.close()


def test_lines_framing_frames_each_object_from_its_start(s3, s3_client, bucket):
    objects = lines_objects()
    objects["lines/part-999.txt"] = b"no newline at the end"
    upload(s3_client, bucket, objects)
    with reader(s3, f"s3://{bucket}/lines/", framing="lines") as r:
        got = list(r.records())
    expected = [line for k in sorted(objects) for line in objects[k].split(b"\n") if line]
    assert got == expected


def test_recordio_framing_inside_objects(s3, s3_client, bucket):
    payloads = [b"x" * n for n in (0, 1, 5, 4096)] + [b"\x0a\x23\xd7\xce" * 3]  # the magic inside
    upload(s3_client, bucket, {"rio/a.rec": b"".join(encode_recordio(p) for p in payloads)})
    with reader(s3, f"s3://{bucket}/rio/", framing="recordio") as r:
        assert list(r.records()) == payloads


def test_parquet_framing_yields_row_batches(s3, s3_client, bucket):
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": list(range(1000))}), buf, row_group_size=300)
    upload(s3_client, bucket, {"pq/a.parquet": buf.getvalue()})
    with reader(s3, f"s3://{bucket}/pq/", framing="parquet", config=SMALL) as r:
        batches = list(r.records())
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    assert [x for b in batches for x in b.column("x").to_pylist()] == list(range(1000))


# ---------------------------------------------------------------- channel settings


def test_gzip_channel_gives_the_records_of_the_uncompressed_source(s3, s3_client, bucket):
    objects = lines_objects(count=4, lines=60_000)  # ~1 MiB each: many inflated pieces, many parts
    upload(s3_client, bucket, objects)
    upload(s3_client, bucket, {k.replace("lines/", "gz/") + ".gz": gzip.compress(v) for k, v in objects.items()})
    with reader(s3, f"s3://{bucket}/lines/", framing="lines") as plain, \
            reader(s3, f"s3://{bucket}/gz/", framing="lines", compression="Gzip", config=SMALL) as gz:
        expected = list(plain.records())
        got = list(gz.records())
        assert gz.counts["bytes_out"] == sum(map(len, objects.values())) > gz.counts["bytes_in"]
        assert gz.stats()["transport_requests"] > len(objects)  # fetched in parts, inflated as a stream
    assert got == expected and len(got) == 240_000


def test_gzip_corruption_names_the_object(s3, s3_client, bucket):
    upload(s3_client, bucket, {"gz/a.gz": gzip.compress(b"hello\n" * 1000)[:-20]})
    with reader(s3, f"s3://{bucket}/gz/", framing="lines", compression="Gzip") as r, \
            pytest.raises(RecordError, match=f"s3://{bucket}/gz/a.gz"):
        list(r.records())


def test_recordio_wrapper_makes_each_object_one_record(s3, s3_client, bucket):
    objects = {"w/a": b"A" * 10, "w/b": b"", "w/c": bytes(range(256)) * 1000}  # c spans parts
    upload(s3_client, bucket, objects)
    with reader(s3, f"s3://{bucket}/w/", record_wrapper="RecordIO", config=SMALL) as r:
        assert r.framing == "object"
        assert list(r.records()) == [objects[k] for k in sorted(objects)]
    with pytest.raises(ValueError, match="contradicts RecordWrapperType RecordIO"):
        reader(s3, f"s3://{bucket}/w/", record_wrapper="RecordIO", framing="tfrecord")


def test_shuffle_reorders_each_epoch_and_the_listing_is_reused(s3, s3_client, bucket):
    objects = {f"s/{i:02d}": f"{i}".encode() for i in range(20)}
    upload(s3_client, bucket, objects)
    with reader(s3, f"s3://{bucket}/s/", record_wrapper="RecordIO", shuffle_seed=42) as r:
        epoch0 = list(r.records(0))
        s3_client.put_object(Bucket=bucket, Key="s/99", Body=b"late")  # listed once: never seen
        epoch1 = list(r.records(1))
    keys = sorted(objects)
    for e, got in ((0, epoch0), (1, epoch1)):
        order = plan([1] * 20, 1, "FullyReplicated", seed=42, epoch=e).units_for(0)
        assert got == [objects[keys[i]] for i in order]
    assert epoch0 != epoch1 and sorted(epoch0) == sorted(epoch1)


def test_sharded_by_s3_key_splits_the_objects_across_hosts(s3, s3_client, bucket):
    objects = {f"s/{i:02d}": f"{i}".encode() for i in range(10)}
    upload(s3_client, bucket, objects)
    for epoch in (0, 1):
        shares = []
        for host in range(3):
            with reader(s3, f"s3://{bucket}/s/", record_wrapper="RecordIO", shuffle_seed=7,
                        distribution="ShardedByS3Key", hosts=3, host_index=host) as r:
                shares.append(list(r.records(epoch)))
        assert sorted(map(len, shares)) == [3, 3, 4]
        assert sorted(x for s in shares for x in s) == sorted(objects.values())
    with pytest.raises(ShardingError):
        reader(s3, f"s3://{bucket}/s/", hosts=3, host_index=3)


def test_augmented_manifest_values_stream_inline_between_objects(s3, s3_client, bucket):
    upload(s3_client, bucket, {"img/0.jpg": b"IMG0" * 1000, "img/1.jpg": b"IMG1"})
    manifest = "".join(json.dumps({"source-ref": f"s3://{bucket}/img/{i}.jpg", "class": i}) + "\n"
                       for i in (1, 0))
    upload(s3_client, bucket, {"m/train.manifest": manifest.encode()})
    with reader(s3, f"s3://{bucket}/m/train.manifest", data_type="AugmentedManifestFile",
                attribute_names=("source-ref", "class"), record_wrapper="RecordIO") as r:
        got = list(r.records())
        assert r.stats()["transport_requests"] == 2  # the inline values make none
    assert got == [b"IMG1", b"1", b"IMG0" * 1000, b"0"]


def test_from_channel_takes_the_job_channels_settings(s3, s3_client, bucket):
    upload(s3_client, bucket, {f"c/{i}": gzip.compress(str(i).encode()) for i in range(6)})
    channel = Channel("train", S3DataSource("S3Prefix", f"s3://{bucket}/c/", "ShardedByS3Key"),
                      compression="Gzip", record_wrapper="RecordIO", shuffle_seed=3)
    with PipeReader.from_channel(channel, hosts=2, host_index=1, store=Store(s3.endpoint_url)) as r:
        assert r.source == PipeSource(f"s3://{bucket}/c/", compression="Gzip", record_wrapper="RecordIO",
                                      shuffle_seed=3, distribution="ShardedByS3Key", name="train")
        got = list(r.records(0))
    order = plan([1] * 6, 2, "ShardedByS3Key", seed=3, epoch=0).units_for(1)
    assert got == [str(i).encode() for i in order]


def test_stopping_early_cancels_and_the_next_epoch_reads_whole(s3, s3_client, bucket):
    upload(s3_client, bucket, {f"e/{i}": bytes([i]) * 300 * KIB for i in range(8)})
    with reader(s3, f"s3://{bucket}/e/", config=SMALL) as r:
        for _ in r.epoch(0):
            break
        assert sum(len(c) for c in r.epoch(1)) == 8 * 300 * KIB


@pytest.mark.parametrize("kwargs, fragment", [
    ({"framing": "csv"}, "use one of " + ", ".join(FRAMINGS)),
    ({"compression": "Zstd"}, "compression 'Zstd' is not one of None, Gzip"),
    ({"record_wrapper": "TFRecord"}, "record_wrapper"),
    ({"distribution": "Everywhere"}, "unknown sharding strategy"),
])
def test_bad_settings_say_what_is_valid(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        PipeReader("s3://bucket/p/", store=Store("http://127.0.0.1:9"), **kwargs)
