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

__all__ = ["CacheConfig", "CacheStats", "ObjectCache"]

#: Loaded when first named: they bring sqlite3 and the index, which a transport without a
#: cache (``channels download``, whose start-up is timed against s5cmd) never needs.
_LAZY = {"ObjectCache": "channels.cache.objects", "CacheStats": "channels.cache.stats"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'channels.cache' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
