"""Transport: the one engine that moves bytes (layer 4).

Every input mode reads through :class:`Transport`; none talks to s3fs or boto
directly. ``s3://`` goes through an http.client + SigV4 fast path, ``file://`` and
plain paths through ``preadv``, anything else through fsspec.

Example:
    >>> from channels.transport import Transport, TransportConfig
    >>> t = Transport(config=TransportConfig(part_size=8 << 20))   # doctest: +SKIP
    >>> for chunk in t.stream(refs):                               # doctest: +SKIP
    ...     out.write(chunk.data)
"""

from channels.transport.backends import Backend, backend_class, backend_names, register_backend
from channels.transport.config import TransportConfig
from channels.transport.engine import Transport
from channels.transport.errors import AccessDeniedError, Cancelled, PartialRead
from channels.transport.stats import TransportStats
from channels.transport.stream import Chunk, ChunkStream, plan_parts

__all__ = [
    "AccessDeniedError",
    "Backend",
    "Cancelled",
    "Chunk",
    "ChunkStream",
    "PartialRead",
    "Transport",
    "TransportConfig",
    "TransportStats",
    "backend_class",
    "backend_names",
    "plan_parts",
    "register_backend",
]
