"""Any store fsspec reaches (``memory://``, ``gs://``, ``hdfs://``...).

``cat_file`` returns bytes, copied once into the caller's buffer: fine for the
long tail of protocols; S3 and local files have zero-copy backends.
"""

from __future__ import annotations

import errno
import threading

from channels.errors import ObjectChangedError, SourceNotFoundError, TransportError
from channels.transport.backends.base import Backend
from channels.transport.errors import AccessDeniedError, PartialRead

#: OSError numbers worth a retry (s3fs maps throttling and 5xx to these).
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT,
                              errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE})


class FsspecBackend(Backend):
    """Ranged reads through ``fs.cat_file(url, start, end)``.

    ETags are not verified (fsspec has no conditional read); a size change is
    detected when the object got shorter.
    """

    name = "fsspec"

    def _call(self, url: str, fn, **kwargs):
        self.stats.add(requests=1)
        try:
            return fn(url, **kwargs)
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"{url} does not exist", url=url) from exc
        except PermissionError as exc:
            raise AccessDeniedError(f"access denied to {url}; check the credentials for this "
                                    f"store", url=url) from exc
        except (TimeoutError, ConnectionError) as exc:
            raise PartialRead(0, exc) from exc
        except OSError as exc:
            if exc.errno is None or exc.errno in TRANSIENT_ERRNOS:
                raise PartialRead(0, exc) from exc
            raise TransportError(f"reading {url} failed: {exc}", url=url,
                                 offset=kwargs.get("start", 0)) from exc

    def _read_into(self, url: str, start: int, buf: memoryview, size: int | None,
                   etag: str | None, cancel: threading.Event | None) -> None:
        fs = self.store.filesystem(url)
        end = start + len(buf)
        data = self._call(url, fs.cat_file, start=start, end=end)
        if len(data) != len(buf):
            raise ObjectChangedError(
                f"{url} returned {len(data)} bytes for range [{start}, {end}): it changed since "
                f"it was listed", url=url, offset=start)
        buf[:] = data

    def _get(self, url: str) -> bytes:
        return self._call(url, self.store.filesystem(url).cat_file)
