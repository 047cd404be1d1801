"""What the pytest-benchmark tests report from their timed rounds.

Under ``--benchmark-disable`` pytest-benchmark runs each function once,
untimed, and keeps no statistics: the tests then still check their results
(a smoke test) but have no figures to report.
"""

from __future__ import annotations


def round_seconds(benchmark) -> list[float] | None:
    """The seconds of each timed round; None when benchmarking is disabled."""
    return None if benchmark.stats is None else list(benchmark.stats.stats.data)


def median_seconds(benchmark) -> float | None:
    """The median of the timed rounds; None when benchmarking is disabled."""
    return None if benchmark.stats is None else benchmark.stats.stats.median
