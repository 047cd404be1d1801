"""Names that choose a strategy, written once: an unknown name gets a ValueError listing the valid ones.

Every registry of the library (profiles, runners, backends, framings,
policies, splits, scopes...) looks names up through :func:`lookup` (a table
of name -> thing) or :func:`choose` (a fixed set of names), so that every
refusal reads the same: ``unknown <what> 'x': use one of a, b, c``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


def unknown(what: str, name: object, names: Iterable[str], hint: str = "") -> ValueError:
    """The error for ``name``, not among ``names``; ``hint`` says what the choices mean."""
    text = f"unknown {what} {name!r}: use one of {', '.join(names)}"
    return ValueError(f"{text} ({hint})" if hint else text)


def lookup(table: Mapping[str, T], name: str, what: str, hint: str = "") -> T:
    """``table[name]``.

    Raises:
        ValueError: ``name`` is not in ``table``; the message lists its names.
    """
    try:
        return table[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise unknown(what, name, table, hint) from None


def choose(name: str, names: Iterable[str], what: str, hint: str = "") -> str:
    """``name`` if it is one of ``names``.

    Raises:
        ValueError: it is not; the message lists ``names``.
    """
    names = tuple(names)
    if name in names:
        return name
    raise unknown(what, name, names, hint)
