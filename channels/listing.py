"""Data sources become ordered lists of object refs (listing layer)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object: where it is, how big, and its version tag.

    Attributes:
        url: full URL (``s3://bucket/key``, ``file:///abs/path``, ...).
        size: bytes.
        etag: the store's ETag (quotes stripped) or None where it has none.
        key: the object's path below the channel's prefix ("" when not under one);
            File mode writes the object there, FastFile shows it there.
        inline: the bytes themselves, for values that live in a manifest line
            rather than in an object (augmented manifests); no request is made.
    """

    url: str
    size: int
    etag: str | None = None
    key: str = ""
    inline: bytes | None = None
