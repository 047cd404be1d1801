"""The host-imbalance suite: real `channels download` processes behind real proxies.

What is asserted is exact (each host's bytes on disk equal the planner's
share) or structural; per-host seconds are measured but not judged here.
"""

from __future__ import annotations

from channels.balance import report
from channels.bench.datasets import skewed_dataset
from channels.bench.imbalance import ImbalanceConfig, format_imbalance, run_imbalance
from channels.sharding import SHARDED_BY_S3_KEY, SIZE_BALANCED


def test_hosts_download_their_planned_shares(s3, tmp_path):
    ds = skewed_dataset(40, median=8 * 1024, seed=2, max_size=2 << 20)
    config = ImbalanceConfig(hosts=3, dataset=ds, host_bandwidth=20e6, bucket="imbalance-bucket")
    lines = []
    part = run_imbalance(config, s3.endpoint_url, log=lines.append, workdir=str(tmp_path))
    assert set(part["strategies"]) == {SHARDED_BY_S3_KEY, SIZE_BALANCED}
    for strategy, r in part["strategies"].items():
        planned = report(ds.size_array(), 3, strategy)
        assert r["ok"], [h["stderr"] for h in r["hosts"]]
        assert r["predicted_imbalance"] == planned.imbalance
        assert [h["bytes"] for h in r["hosts"]] == [h.bytes for h in planned.hosts]
        assert [h["objects"] for h in r["hosts"]] == [h.objects for h in planned.hosts]
        assert [h["planned_bytes"] for h in r["hosts"]] == [h.bytes for h in planned.hosts]
        for h in r["hosts"]:
            # Timed at the host's own listener, which saw one GET per object (all below the part size).
            assert h["seconds"] == h["transfer_seconds"]
            assert h["gets"] == h["objects"]
            assert 0 < h["transfer_seconds"] <= h["download_seconds"] <= h["process_seconds"]
        assert r["straggler_ratio"] >= 1.0
    assert sum(h["bytes"] for h in part["strategies"][SIZE_BALANCED]["hosts"]) == ds.total_bytes
    text = format_imbalance(part)
    assert "planned" in text and "measured" in text and "algo-3" in text
    assert any("straggler ratio" in line for line in lines)
