"""Planning 10 million objects for 64 hosts, each strategy (pytest-benchmark).

Run: .venv/bin/python -m pytest benchmarks/test_bench_planning.py --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest

from channels.balance import figures
from channels.sharding import STRATEGIES, plan
from channels.testing import lognormal_sizes
from medians import median_seconds

N_OBJECTS = 10_000_000
HOSTS = 64


@pytest.fixture(scope="module")
def sizes() -> np.ndarray:
    return lognormal_sizes(N_OBJECTS, median=256 * 1024, sigma=1.5, seed=11)


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_plan_10m_objects(benchmark, sizes, strategy, shuffle):
    seed = 1234 if shuffle else None

    def run():
        p = plan(sizes, HOSTS, strategy, seed=seed, epoch=3)
        return p, figures(p), p.units_for(HOSTS - 1)

    p, (imbalance, bound, _), share = benchmark.pedantic(run, rounds=3, iterations=1)
    assert len(share) > 0
    median = median_seconds(benchmark)
    if median is None:  # --benchmark-disable: the run above was a smoke test, no figures
        return
    benchmark.extra_info.update(objects=N_OBJECTS, hosts=HOSTS, imbalance=imbalance, lower_bound=bound,
                                objects_per_s=N_OBJECTS / median)
    print(f"\n{strategy:>18} shuffle={shuffle}: median {median:.2f} s, "
          f"imbalance {imbalance:.4f} (bound {bound:.4f})")
