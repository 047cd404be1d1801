"""Which libfuse the FastFile mount loads, and what that library lets it ask the kernel for.

The mount talks to libfuse through ``mfusepy`` (ctypes), which loads the
library named by the ``FUSE_LIBRARY_PATH`` environment variable, or else the
system's (``find_library("fuse3")``). libfuse 3.17 is the first that can ask
the kernel for FUSE_DIRECT_IO_ALLOW_MMAP, which lets the mount bypass the
page cache and still serve a shared mmap; Debian 12 ships 3.14. So
``make system-deps`` builds 3.17 from Debian's own source package into this
environment (``<venv>/libfuse``) where the system's is older, and
:func:`load_binding` looks, in order, at:

1. ``FUSE_LIBRARY_PATH``, when the user sets it (mfusepy's own variable);
2. the library built into this environment, if it loads and is 3.17 or newer;
3. the system's.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from channels.errors import MountError

log = logging.getLogger(__name__)

#: Where ``make system-deps`` installs libfuse 3.17 (inside the virtual environment).
PROJECT_PREFIX = Path(sys.prefix) / "libfuse"
PROJECT_LIBRARY = PROJECT_PREFIX / "lib" / "libfuse3.so.4"
#: mfusepy's variable naming the library to load.
ENV = "FUSE_LIBRARY_PATH"
#: The first libfuse that can request FUSE_DIRECT_IO_ALLOW_MMAP (``fuse_conn_info.want_ext``).
ALLOW_MMAP_SINCE = (3, 17)
#: FUSE_CAP_DIRECT_IO_ALLOW_MMAP in libfuse 3.17's fuse_common.h: a bit of ``capable_ext``/``want_ext``.
CAP_DIRECT_IO_ALLOW_MMAP = 1 << 28

ORIGIN_ENV = f"from {ENV}"
ORIGIN_PROJECT = "built by make system-deps"
ORIGIN_SYSTEM = "the system's"


@dataclass(frozen=True)
class Libfuse:
    """The libfuse a process loaded.

    Attributes:
        path: what was passed to ``dlopen`` (a path, or a soname for the system's).
        version: ``(major, minor)`` as the library reports it.
        origin: why this one (``ORIGIN_ENV``, ``ORIGIN_PROJECT`` or ``ORIGIN_SYSTEM``).
    """

    path: str
    version: tuple[int, int]
    origin: str

    @property
    def can_allow_mmap(self) -> bool:
        """Whether this library can ask for direct I/O with shared mmap allowed."""
        return self.version >= ALLOW_MMAP_SINCE

    def __str__(self) -> str:
        return f"libfuse {self.version[0]}.{self.version[1]} ({self.path}, {self.origin})"


def library_version(path: str | os.PathLike) -> tuple[int, int]:
    """``(major, minor)`` of the libfuse at ``path``; OSError if it does not load."""
    lib = ctypes.CDLL(os.fspath(path))
    lib.fuse_version.restype = ctypes.c_int
    v = lib.fuse_version()  # 314 for 3.14, 317 for 3.17; 29 for 2.9
    return (v // 100, v % 100) if v >= 100 else (v // 10, v % 10)


def project_library(path: Path = PROJECT_LIBRARY) -> str | None:
    """The library ``make system-deps`` built, if it is there, loads and is new enough."""
    if not path.exists():
        return None
    try:
        version = library_version(path)
    except OSError as exc:
        log.warning("ignoring %s, it does not load (%s): using the system's libfuse; "
                    "rebuild it with make system-deps", path, exc)
        return None
    if version < ALLOW_MMAP_SINCE:
        log.warning("ignoring %s: it is libfuse %d.%d, older than %d.%d", path, *version, *ALLOW_MMAP_SINCE)
        return None
    return str(path)


def load_binding():
    """The ``mfusepy`` module over the chosen libfuse, or a MountError naming what to install.

    ``FUSE_LIBRARY_PATH`` is set only while mfusepy is imported (it reads the
    variable once, at import): child processes choose again by the same rules.
    """
    if "mfusepy" not in sys.modules and not os.environ.get(ENV) and (path := project_library()):
        os.environ[ENV] = path
        try:
            return _import()
        finally:
            del os.environ[ENV]
    return _import()


def _import():
    try:
        import mfusepy
    except ImportError as exc:
        raise MountError("the FUSE binding is missing: pip install mfusepy (or reinstall channels)") from exc
    except OSError as exc:  # mfusepy raises this when libfuse cannot be found or loaded
        where = f" from {ENV}={os.environ[ENV]}" if os.environ.get(ENV) else ""
        raise MountError(f"libfuse3 could not be loaded{where} ({exc}): apt-get install fuse3 libfuse3-dev",
                         library=os.environ.get(ENV)) from exc
    if mfusepy.fuse_version_major != 3:
        raise MountError(f"found libfuse {mfusepy.fuse_version_major}, FastFile mounts need libfuse 3: "
                         f"apt-get install fuse3 libfuse3-dev (or set {ENV} to a libfuse3)")
    return mfusepy


def loaded() -> Libfuse:
    """The libfuse this process loaded (loading it if not yet)."""
    mfusepy = load_binding()
    path = str(mfusepy._libfuse_path)
    if os.environ.get(ENV) and os.environ[ENV] == path:
        origin = ORIGIN_ENV
    elif path == str(PROJECT_LIBRARY):
        origin = ORIGIN_PROJECT
    else:
        origin = ORIGIN_SYSTEM
    return Libfuse(path, (mfusepy.fuse_version_major, mfusepy.fuse_version_minor), origin)
