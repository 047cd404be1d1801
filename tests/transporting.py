"""What the transport tests share: an object put as an ObjectRef, a transport on the endpoint, a stream collected."""

from __future__ import annotations

from channels.listing import ObjectRef
from channels.store import Store
from channels.transport import Transport, TransportConfig


def put(client, bucket: str, key: str, data: bytes) -> ObjectRef:
    """Puts ``data`` at ``s3://bucket/key``; its ref, with the ETag S3 gave it."""
    etag = client.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')
    return ObjectRef(f"s3://{bucket}/{key}", len(data), etag, key)


def transport(s3, **config) -> Transport:
    """A transport on the ``s3`` fixture's endpoint, ``config`` its TransportConfig."""
    return Transport(Store(s3.endpoint_url), TransportConfig(**config))


def collect(chunks) -> dict[str, bytearray]:
    """A stream's chunks joined per object: url -> bytes."""
    out: dict[str, bytearray] = {}
    for chunk in chunks:
        out.setdefault(chunk.ref.url, bytearray()).extend(chunk.data)
    return out
