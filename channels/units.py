"""Sizes and rates, written once: binary units for buffers, decimal MB for throughput.

Buffers, parts and budgets are sized in binary units (``KIB``, ``MIB``,
``GIB``); throughput is reported in decimal megabytes per second (``MB``), as
every peer tool and benchmark of the field reports it.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
MB = 1_000_000

__all__ = ["GIB", "KIB", "MB", "MIB", "human_bytes", "human_seconds", "mb_per_s"]


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
