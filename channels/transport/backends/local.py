"""Local files (``file://`` URLs and plain paths): ``preadv`` into the buffer."""

from __future__ import annotations

import os
import threading

from channels.errors import ObjectChangedError, SourceNotFoundError
from channels.store import split_url
from channels.transport.backends.base import Backend
from channels.transport.errors import AccessDeniedError, PartialRead

_HAS_PREADV = hasattr(os, "preadv")


class LocalBackend(Backend):
    """Reads straight into the caller's buffer: no intermediate bytes."""

    name = "local"
    remote = False

    def _open(self, url: str) -> int:
        path = split_url(url)[2]
        try:
            return os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"{url} does not exist", url=url) from exc
        except PermissionError as exc:
            raise AccessDeniedError(f"permission denied reading {url}; check the file's mode "
                                    f"and owner", url=url) from exc
        except IsADirectoryError as exc:
            raise SourceNotFoundError(f"{url} is a directory, not a file", url=url) from exc

    def _read_into(self, url: str, start: int, buf: memoryview, size: int | None,
                   etag: str | None, cancel: threading.Event | None) -> None:
        self.stats.add(requests=1)
        fd = self._open(url)
        nread = 0
        try:
            if size is not None:
                actual = os.fstat(fd).st_size
                if actual != size:
                    raise ObjectChangedError(
                        f"{url} changed since it was listed: {actual} bytes, listed {size}",
                        url=url, offset=start, expected_size=size, actual_size=actual)
            while nread < len(buf):
                n = _pread_into(fd, buf[nread:], start + nread)
                if n == 0:
                    raise ObjectChangedError(
                        f"{url} ended at offset {start + nread}, before the {start + len(buf)} "
                        f"bytes asked for: it changed since it was listed",
                        url=url, offset=start + nread)
                nread += n
        except OSError as exc:
            if isinstance(exc, ObjectChangedError):
                raise
            raise PartialRead(nread, exc) from exc
        finally:
            os.close(fd)

    def _get(self, url: str) -> bytes:
        self.stats.add(requests=1)
        fd = self._open(url)
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read()
        except OSError as exc:
            raise PartialRead(0, exc) from exc
        finally:
            os.close(fd)


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    if _HAS_PREADV:
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)  # pragma: no cover - Windows
    view[: len(data)] = data
    return len(data)
