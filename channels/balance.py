"""The shard-balance report: figures from object sizes alone, no download.

For a plan over ``n`` hosts with ``total`` bytes:

* ``imbalance`` = max host bytes / mean host bytes (mean = total / n). A job's
  File-mode download (and its epoch, when hosts wait for each other) lasts as
  long as its busiest host's share: 1.0 is perfect, 2.0 takes twice as long.
* ``lower_bound`` = max(largest object, total / n) / (total / n): no plan that
  keeps objects whole can do better.
* ``cv`` = coefficient of variation (std / mean) of the object sizes.
* ``skewed`` = imbalance >= SKEW_THRESHOLD (1.10), with a recommendation
  in plain words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from channels.errors import ShardingError
from channels.sharding import (
    FULLY_REPLICATED,
    SIZE_BALANCED,
    SKEW_THRESHOLD,
    STRATEGIES,
    Plan,
    check_host,
    host_name,
    plan,
    strategy_name,
)
from channels.units import human_bytes

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class HostShare:
    host: str
    index: int
    objects: int
    bytes: int


@dataclass(frozen=True)
class BalanceReport:
    """One strategy's figures; ``to_dict`` is the ``--json`` shape."""

    strategy: str
    hosts: tuple[HostShare, ...]
    objects: int
    total_bytes: int
    imbalance: float
    lower_bound: float
    cv: float
    skewed: bool
    threshold: float
    recommendation: str
    warnings: tuple[str, ...] = ()
    source: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hosts"] = [asdict(h) for h in self.hosts]
        d["warnings"] = list(self.warnings)
        return d


def figures(plan_: Plan) -> tuple[float, float, float]:
    """``(imbalance, lower_bound, cv)`` of a plan."""
    sizes = plan_.sizes
    n = plan_.hosts
    total = float(sizes.sum())
    if total <= 0:
        return 1.0, 1.0, 0.0
    mean_host = total / n
    imbalance = float(plan_.host_bytes().max()) / mean_host
    if plan_.host_of is None:
        imbalance = 1.0  # every host reads the same bytes
    lower_bound = max(float(sizes.max()), mean_host) / mean_host
    mean = float(sizes.mean())
    cv = float(sizes.std()) / mean if mean else 0.0
    return imbalance, lower_bound, cv


def report(sizes: np.ndarray | Sequence[int], hosts: int, strategy: str, *, seed: int | None = None,
           epoch: int = 0, source: str | None = None) -> BalanceReport:
    """Plan ``strategy`` and report its balance, with a recommendation.

    One host with at least one unit needs no plan (it reads everything):
    its figures are worked out directly, without numpy, the same as a
    plan's (what ``channels download`` on one host prints at start).
    """
    check_host(0, hosts)
    if hosts == 1 and len(sizes) and getattr(sizes, "ndim", 1) == 1:
        return _one_host(sizes, strategy, source)
    return _planned(sizes, hosts, strategy, seed, epoch, source)


def _planned(sizes, hosts: int, strategy: str, seed: int | None, epoch: int, source: str | None) -> BalanceReport:
    """:func:`report` from a plan."""
    p = plan(sizes, hosts, strategy, seed=seed, epoch=epoch)
    imbalance, lower_bound, cv = figures(p)
    skewed = bool(imbalance >= SKEW_THRESHOLD)
    shares = tuple(HostShare(host_name(h), h, int(o), int(b))
                   for h, (o, b) in enumerate(zip(p.host_objects(), p.host_bytes())))
    rec = _recommend(p, imbalance, lower_bound, cv, skewed, seed, epoch)
    return BalanceReport(p.strategy, shares, len(p.sizes), int(p.sizes.sum()), round(imbalance, 4),
                         round(lower_bound, 4), round(cv, 4), skewed, SKEW_THRESHOLD, rec, p.warnings, source)


def _one_host(sizes: Sequence[int], strategy: str, source: str | None) -> BalanceReport:
    """:func:`report` for one host and a non-empty list: every unit on it, imbalance 1.0."""
    strategy = strategy_name(strategy)
    sizes = [int(s) for s in sizes]
    if min(sizes) < 0:
        i = sizes.index(min(sizes))
        raise ShardingError(f"object sizes must be >= 0; got {sizes[i]} at index {i}")
    total, n = sum(sizes), len(sizes)
    mean = total / n
    cv = math.sqrt(sum((s - mean) ** 2 for s in sizes) / n) / mean if total > 0 else 0.0
    rec = _replicated_text(n, total) if strategy == FULLY_REPLICATED else _balanced_text(0, 1.0)
    return BalanceReport(strategy, (HostShare(host_name(0), 0, n, total),), n, total, 1.0, 1.0, round(cv, 4),
                         False, SKEW_THRESHOLD, rec, (), source)


def compare(sizes: np.ndarray, hosts: int, *, seed: int | None = None, epoch: int = 0,
            source: str | None = None) -> list[BalanceReport]:
    """Every strategy's report, in STRATEGIES order."""
    return [report(sizes, hosts, s, seed=seed, epoch=epoch, source=source) for s in STRATEGIES]


def _replicated_text(objects: int, total: int) -> str:
    return (f"every host reads all {objects} objects ({human_bytes(total)}): balanced by "
            "construction, but nothing is split; use ShardedByS3Key (or size-balanced) to divide the work")


def _balanced_text(busiest: int, imbalance: float) -> str:
    return (f"balanced: the busiest host ({host_name(busiest)}) reads {imbalance:.2f}x the mean "
            f"(skewed at {SKEW_THRESHOLD:.2f}x)")


def _recommend(p: Plan, imbalance: float, lower_bound: float, cv: float, skewed: bool,
               seed: int | None, epoch: int) -> str:
    import numpy as np

    n, total = p.hosts, int(p.sizes.sum())
    if p.strategy == FULLY_REPLICATED:
        return _replicated_text(len(p.sizes), total)
    busiest = int(np.argmax(p.host_bytes()))
    if lower_bound >= SKEW_THRESHOLD:
        fair = total / n
        return (f"the largest object ({human_bytes(int(p.sizes.max()))}) alone exceeds a host's fair share "
                f"({human_bytes(int(fair))}): no plan that keeps objects whole can balance {n} hosts; split objects "
                f"larger than {human_bytes(int(fair / 4))} into smaller ones, or use fewer hosts")
    if not skewed:
        return _balanced_text(busiest, imbalance)
    alternative = plan(p.sizes, n, SIZE_BALANCED, seed=seed, epoch=epoch)
    alt_imbalance = figures(alternative)[0]
    return (f"skewed: {host_name(busiest)} reads {imbalance:.2f}x the mean host bytes, so the job waits on it "
            f"(object sizes vary with CV {cv:.2f}); the size-balanced plan gets {alt_imbalance:.2f}x "
            f"(best possible {lower_bound:.2f}x): use --strategy size-balanced, or make objects more even in size")


def format_table(reports: list[BalanceReport], *, max_rows: int = 64) -> str:
    """A readable table: one column per strategy, one row per host."""
    if not reports:
        return ""
    first = reports[0]
    lines = []
    if first.source:
        lines.append(f"source: {first.source}")
    lines.append(f"{first.objects} objects, {human_bytes(first.total_bytes)}, {len(first.hosts)} hosts, "
                 f"object size CV {first.cv:.2f}")
    lines.append("")
    width = 26
    header = f"{'host':<8}" + "".join(f"{r.strategy:>{width}}" for r in reports)
    lines.append(header)
    lines.append("-" * len(header))
    hosts = first.hosts
    shown = hosts if len(hosts) <= max_rows else hosts[: max_rows - 1]
    for i, h in enumerate(shown):
        cells = "".join(f"{r.hosts[i].objects:>8} obj {human_bytes(r.hosts[i].bytes):>12} " for r in reports)
        lines.append(f"{h.host:<8}{cells}")
    if len(shown) < len(hosts):
        lines.append(f"... {len(hosts) - len(shown)} more hosts (use --json for all)")
    lines.append("-" * len(header))
    lines.append(f"{'imbal.':<8}" + "".join(f"{r.imbalance:>{width - 2}.3f}x " for r in reports))
    lines.append(f"{'bound':<8}" + "".join(f"{r.lower_bound:>{width - 2}.3f}x " for r in reports))
    lines.append(f"{'skewed':<8}" + "".join(f"{'yes' if r.skewed else 'no':>{width}}" for r in reports))
    lines.append("")
    for r in reports:
        lines.append(f"{r.strategy}: {r.recommendation}")
        lines.extend(f"  warning: {w}" for w in r.warnings)
    return "\n".join(lines)
