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


def client_medians(runs: list[dict], set_name: str, clients: list[str], keys: tuple[str, ...]) -> dict[str, dict]:
    """``{client: {key: median}}`` over the runs of one set (a client with no run is left out;
    None values are left out of a median, and a key with none is None)."""
    import statistics

    out = {}
    for who in clients:
        mine = [r for r in runs if r["set"] == set_name and r["client"] == who]
        if mine:
            out[who] = {}
            for k in keys:
                vals = [r[k] for r in mine if r[k] is not None]
                out[who][k] = statistics.median(vals) if vals else None
    return out
