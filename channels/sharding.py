"""Which host gets which objects, in which order, and how even that is.

Everything here works on an array of unit sizes (one unit per object, or per
augmented-manifest line) and plain host identity (index, count), vectorised
with numpy so that ten million objects plan in seconds.

The rules (documented in the README; every host computes them alone, with
no coordination):

* Order. Without a shuffle seed, units keep the listing order (S3 key order
  for a prefix, file order for a manifest). With ``seed``, epoch ``e`` uses
  the units sorted by ``splitmix64(seed, e, index)``: the same seed and epoch
  give the same order on every host and machine; another epoch, another order.
* ``sharded-by-s3-key`` (SageMaker's ShardedByS3Key): the ordered list is cut
  into ``hosts`` contiguous runs whose lengths differ by at most one (the
  first ``count % hosts`` hosts get one more, as ``numpy.array_split``). With
  a seed the shuffle happens before the cut, so it crosses hosts.
* ``size-balanced`` (ours): largest units first, each to the least-loaded
  host (longest-processing-time greedy) for the biggest ``32 * hosts``
  units; the rest fill each host's remaining gap to the mean, by a cumulative
  sum over the hosts' gaps. Each host then reads its units in the epoch's
  order. With a seed, ties and the small units' placement change per epoch.
* ``fully-replicated``: every host gets every unit.
"""

from __future__ import annotations

import heapq
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from channels.errors import ShardingError

if TYPE_CHECKING:
    import numpy as np

# numpy is imported by the functions that plan, not here: the names above
# (strategies, host names, checks) are what `channels download` imports at
# start, and one host needs no plan (channels.balance.report).

SHARDED_BY_S3_KEY = "sharded-by-s3-key"
SIZE_BALANCED = "size-balanced"
FULLY_REPLICATED = "fully-replicated"
STRATEGIES = (SHARDED_BY_S3_KEY, SIZE_BALANCED, FULLY_REPLICATED)

#: The API's S3DataDistributionType values, mapped to strategy names.
DISTRIBUTION_TYPES = {"ShardedByS3Key": SHARDED_BY_S3_KEY, "FullyReplicated": FULLY_REPLICATED}

#: A plan is ``skewed`` when its busiest host has this many times the mean
#: host bytes or more: that host, and so the job, takes at least 10% longer
#: than an even split would.
SKEW_THRESHOLD = 1.10

#: How many of the largest units the size-balanced plan places one by one
#: (per host); the rest are placed in one vectorised pass.
GREEDY_UNITS_PER_HOST = 32


def strategy_name(name: str) -> str:
    """Canonical strategy name from ours or the API's spelling.

    Raises:
        ValueError: the name is unknown; the message lists the valid ones.
    """
    if name in STRATEGIES:
        return name
    if name in DISTRIBUTION_TYPES:
        return DISTRIBUTION_TYPES[name]
    raise ValueError(f"unknown sharding strategy {name!r}: use one of {', '.join(STRATEGIES)} "
                     f"(or the API's {', '.join(DISTRIBUTION_TYPES)})")


# ------------------------------------------------------------------ ordering

_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64(x: np.ndarray) -> np.ndarray:
    import numpy as np

    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_M1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_M2)
    return x ^ (x >> np.uint64(31))


def epoch_order(count: int, seed: int | None, epoch: int = 0) -> np.ndarray:
    """Unit indices in the order epoch ``epoch`` visits them.

    Without a seed, the listing order. With one, a permutation that depends
    only on (seed, epoch, count): no random generator whose stream could
    change between numpy versions, so hosts with different installs agree.
    """
    import numpy as np

    if seed is None:
        return np.arange(count, dtype=np.int64)
    with np.errstate(over="ignore"):
        salt = _splitmix64(np.array([(seed & 0xFFFFFFFFFFFFFFFF)], dtype=np.uint64))[0]
        salt = _splitmix64(np.array([salt ^ np.uint64(epoch & 0xFFFFFFFFFFFFFFFF)], dtype=np.uint64))[0]
        keys = _splitmix64(np.arange(count, dtype=np.uint64) ^ salt)
    return np.argsort(keys, kind="stable").astype(np.int64)


# ------------------------------------------------------------------ plans

@dataclass(frozen=True)
class Plan:
    """Every host's share of one epoch.

    Attributes:
        strategy: one of STRATEGIES.
        hosts: number of hosts.
        sizes: bytes per unit, in listing order.
        order: unit indices in this epoch's order.
        host_of: host of each unit (listing order), or None when fully replicated.
        warnings: plain-language notes (e.g. hosts left empty).
    """

    strategy: str
    hosts: int
    sizes: np.ndarray
    order: np.ndarray
    host_of: np.ndarray | None
    warnings: tuple[str, ...] = ()
    _by_host: list = field(default_factory=list, repr=False, compare=False)

    def units_for(self, host: int) -> np.ndarray:
        """Unit indices host ``host`` reads, in this epoch's order."""
        import numpy as np

        check_host(host, self.hosts)
        if self.host_of is None:
            return self.order
        if not self._by_host:
            ordered_hosts = self.host_of[self.order]
            by = np.argsort(ordered_hosts, kind="stable")
            bounds = np.searchsorted(ordered_hosts[by], np.arange(self.hosts + 1))
            self._by_host.extend(self.order[by[bounds[h]:bounds[h + 1]]] for h in range(self.hosts))
        return self._by_host[host]

    def host_objects(self) -> np.ndarray:
        """Units per host (int64, length ``hosts``)."""
        import numpy as np

        if self.host_of is None:
            return np.full(self.hosts, len(self.sizes), dtype=np.int64)
        return np.bincount(self.host_of, minlength=self.hosts).astype(np.int64)

    def host_bytes(self) -> np.ndarray:
        """Bytes per host (int64, length ``hosts``)."""
        import numpy as np

        if self.host_of is None:
            return np.full(self.hosts, int(self.sizes.sum()), dtype=np.int64)
        return np.bincount(self.host_of, weights=self.sizes, minlength=self.hosts).round().astype(np.int64)


def check_host(host: int, hosts: int) -> None:
    # numbers.Integral: int and numpy's integers (numpy registers them), without importing numpy.
    if not isinstance(hosts, numbers.Integral) or hosts < 1:
        raise ShardingError(f"host count {hosts!r} must be a positive integer", hosts=hosts)
    if not isinstance(host, numbers.Integral) or not 0 <= host < hosts:
        raise ShardingError(f"host index {host!r} is out of range for {hosts} host(s): use 0..{hosts - 1}",
                            host=host, hosts=hosts)


def plan(sizes: np.ndarray, hosts: int, strategy: str = SHARDED_BY_S3_KEY, *,
         seed: int | None = None, epoch: int = 0) -> Plan:
    """Plan one epoch for ``hosts`` hosts.

    Args:
        sizes: bytes per unit in listing order (any integer array-like).
        hosts: number of hosts (>= 1).
        strategy: a name from STRATEGIES, or an API S3DataDistributionType.
        seed: ShuffleConfig seed; None keeps the listing order.
        epoch: epoch number (0-based); only matters with a seed.
    """
    import numpy as np

    strategy = strategy_name(strategy)
    check_host(0, hosts)
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.ndim != 1:
        raise ShardingError("sizes must be a one-dimensional array of object sizes")
    if len(sizes) and sizes.min() < 0:
        raise ShardingError(f"object sizes must be >= 0; got {int(sizes.min())} at index {int(sizes.argmin())}")
    order = epoch_order(len(sizes), seed, epoch)
    if strategy == FULLY_REPLICATED:
        return Plan(strategy, hosts, sizes, order, None)
    if strategy == SHARDED_BY_S3_KEY:
        host_of = _by_count(order, hosts)
    else:
        host_of = _by_size(sizes, order, hosts)
    warnings: tuple[str, ...] = ()
    if len(sizes) < hosts:
        empty = np.flatnonzero(np.bincount(host_of, minlength=hosts) == 0)
        names = ", ".join(host_name(int(h)) for h in empty)
        warnings = (f"{hosts} hosts but only {len(sizes)} object(s): {len(empty)} host(s) get nothing "
                    f"({names}); use at most {len(sizes)} hosts or split the objects",)
    return Plan(strategy, hosts, sizes, order, host_of, warnings)


def _by_count(order: np.ndarray, hosts: int) -> np.ndarray:
    import numpy as np

    n = len(order)
    # Position p in the epoch's order goes to host h with
    # bounds[h] <= p < bounds[h+1], bounds = array_split's cut points.
    base, extra = divmod(n, hosts)
    lengths = np.full(hosts, base, dtype=np.int64)
    lengths[:extra] += 1
    host_at_position = np.repeat(np.arange(hosts, dtype=np.int64), lengths)
    host_of = np.empty(n, dtype=np.int64)
    host_of[order] = host_at_position
    return host_of


def _by_size(sizes: np.ndarray, order: np.ndarray, hosts: int) -> np.ndarray:
    import numpy as np

    n = len(sizes)
    host_of = np.empty(n, dtype=np.int64)
    if n == 0:
        return host_of
    # Largest first; ties broken by the epoch's order (so a seed varies them).
    by_size = order[np.argsort(-sizes[order], kind="stable")]
    k = min(n, GREEDY_UNITS_PER_HOST * hosts)
    loads = np.zeros(hosts, dtype=np.float64)
    heap = [(0, h) for h in range(hosts)]
    big = by_size[:k]
    for unit, size in zip(big.tolist(), sizes[big].tolist()):
        load, h = heapq.heappop(heap)
        host_of[unit] = h
        heapq.heappush(heap, (load + size, h))
        loads[h] += size
    rest = by_size[k:]
    if len(rest):
        rest_sizes = sizes[rest].astype(np.float64)
        remaining = rest_sizes.sum()
        target = (loads.sum() + remaining) / hosts
        gaps = np.clip(target - loads, 0, None)
        if gaps.sum() <= 0:  # pragma: no cover - all hosts at target with bytes left: only zero sizes
            gaps = np.ones(hosts)
        # Hosts' gaps laid end to end on [0, remaining]; a unit goes to the
        # host whose interval holds its midpoint along the cumulative sum.
        bounds = np.cumsum(gaps / gaps.sum() * remaining)
        mid = np.cumsum(rest_sizes) - rest_sizes / 2
        host_of[rest] = np.minimum(np.searchsorted(bounds, mid, side="right"), hosts - 1)
    return host_of


def host_name(index: int) -> str:
    """SageMaker's name for host ``index`` (0-based): algo-1, algo-2, ..."""
    return f"algo-{index + 1}"
