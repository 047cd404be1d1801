"""A local cache of whole objects for later epochs (layer 5), enabled by a size limit.

Keyed by URL and ETag (a changed object is another entry), bounded by the
limit (least recently used entries give way, but never to a newcomer read no
more often than they are: :mod:`channels.cache.policy`), written atomically
(temporary file, then rename: :mod:`channels.cache.layout`), and safe for
several processes sharing one directory (:mod:`channels.cache.index`).
The transport reads through it (:mod:`channels.transport.cached`), so Pipe,
FastFile and the adapters all use it when their ``TransportConfig`` has a
``cache``.

Example:
    >>> from channels.cache import CacheConfig
    >>> CacheConfig("/tmp/channels-cache", "2GiB").size_bytes
    2147483648
"""

from channels.cache.config import CacheConfig
from channels.cache.objects import ObjectCache
from channels.cache.stats import CacheStats

__all__ = ["CacheConfig", "CacheStats", "ObjectCache"]
