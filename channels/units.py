"""Sizes and rates, written once: binary units for buffers, decimal MB for throughput.

Buffers, parts and budgets are sized in binary units (``KIB``, ``MIB``,
``GIB``); throughput is reported in decimal megabytes per second (``MB``), as
every peer tool and benchmark of the field reports it.
"""

from __future__ import annotations

import re

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
MB = 1_000_000

__all__ = ["GIB", "KIB", "MB", "MIB", "human_bytes", "human_seconds", "mb_per_s", "parse_size"]

#: A size as people write it: a number, then an optional unit.
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)(b?)", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def human_bytes(n: float) -> str:
    """``1.5 GiB`` style."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def human_seconds(seconds: float) -> str:
    """``42 s``, ``3m05s``, ``1h02m``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def mb_per_s(nbytes: int, seconds: float) -> float:
    """Throughput in MB/s (10**6 bytes per second); 0 for no time."""
    return nbytes / MB / seconds if seconds > 0 else 0.0


def parse_size(text: str | int) -> int:
    """Bytes from a size as people write it: ``20GiB``, ``500MB``, ``1.5T``, ``1048576``.

    ``KiB``/``MiB``/``GiB``/``TiB`` (and ``K``, ``M``, ``G``, ``T`` alone, as
    ``du`` and ``sort`` read them) are binary; ``KB``/``MB``/``GB``/``TB`` are
    decimal; a bare number or ``B`` is bytes. Case is ignored.

    Raises:
        ValueError: not a size, or a negative one; the message gives examples.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"a size must be >= 0 bytes, got {text}")
        return text
    match = _SIZE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or (match.group(3) and not match.group(2)):
        raise ValueError(f"{text!r} is not a size: give bytes or a number with a unit, e.g. 500MiB, 20GiB "
                         f"or 1.5TB (KiB, MiB, GiB, TiB and K, M, G, T are binary; KB, MB, GB, TB decimal)")
    number, prefix, binary, byte = match.groups()
    base = 1000 if prefix and byte and not binary else 1024
    return int(float(number) * base ** _POWERS[prefix.lower()])
