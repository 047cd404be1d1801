"""Backends by name: ``s3`` (fast path), ``fsspec`` (anything else), ``local``.

Example:
    >>> backend_class("local").__name__
    'LocalBackend'
"""

from __future__ import annotations

from channels.registry import lookup
from channels.transport.backends.base import Backend
from channels.transport.backends.fsspec import FsspecBackend
from channels.transport.backends.local import LocalBackend
from channels.transport.backends.s3 import S3Backend

_REGISTRY: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend], name: str | None = None, *, clobber: bool = False) -> None:
    """Make a backend class available under ``name`` (default ``cls.name``)."""
    name = name or cls.name
    if not name:
        raise ValueError(f"{cls.__name__} has no name; pass one")
    if name in _REGISTRY and not clobber:
        raise ValueError(f"a backend named {name!r} is already registered "
                         f"({_REGISTRY[name].__name__}); pass clobber=True to replace it")
    _REGISTRY[name] = cls


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    return lookup(_REGISTRY, name, "transport backend")


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


for _cls in (S3Backend, FsspecBackend, LocalBackend):
    register_backend(_cls)

__all__ = ["Backend", "FsspecBackend", "LocalBackend", "S3Backend", "backend_class",
           "backend_names", "register_backend"]
