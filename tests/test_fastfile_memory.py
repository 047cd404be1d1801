"""FastFile's memory bound, and random reads against the server (hypothesis)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.modes.fastfile.readahead import KIB, MIB, ReadaheadConfig
from channels.modes.fastfile.view import FastFileView
from channels.testing import Dataset, fill_bucket, uniform_sizes
from channels.testing.proxy import PROFILES, Proxy

BUDGET = 64 * MIB
CHILD = """
import sys
from concurrent.futures import ThreadPoolExecutor
from channels.modes.fastfile.view import FastFileView
from channels.modes.fastfile.readahead import ReadaheadConfig, MIB

def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))

view = FastFileView(sys.argv[1], config=ReadaheadConfig(budget_bytes=int(sys.argv[2])))
names = view.listdir("")
view.transport.backend_for(sys.argv[1])  # imports and clients made: the baseline
before = hwm()

def cat(name):
    n = 0
    with view.open(name) as f:
        while chunk := f.read(MIB):
            n += len(chunk)
    return n

with ThreadPoolExecutor(len(names)) as pool:
    total = sum(pool.map(cat, names))
print(len(names), total, before, hwm(), view.budget.peak)
"""


@pytest.mark.parametrize("profile", ["local", "s3-like"])
def test_peak_rss_within_budget_plus_150_mib_with_16_files_at_once(s3_client, bucket, s3, profile):
    # s3-like: 20 ms to the first byte, 90 MB/s per connection; the view reads ahead wider.
    fill_bucket(s3_client, bucket, Dataset("mem", uniform_sizes(16, 8 * MIB), prefix="mem/"), create=False)
    with Proxy(s3.endpoint_url, PROFILES[profile]) as proxy:
        out = subprocess.run([sys.executable, "-c", CHILD, f"s3://{bucket}/mem/", str(BUDGET)],
                             capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, AWS_ENDPOINT_URL=proxy.url))
    assert out.returncode == 0, out.stderr
    files, total, before, peak, budget_peak = map(int, out.stdout.split())
    assert files == 16 and total == 16 * 8 * MIB
    print(f"{profile}: peak RSS {peak / MIB:.0f} MiB, before reading {before / MIB:.0f} MiB, "
          f"budget peak {budget_peak / MIB:.0f} MiB")
    assert budget_peak <= BUDGET
    assert peak <= BUDGET + 150 * MIB, (f"peak RSS {peak / MIB:.0f} MiB exceeds the {BUDGET / MIB:.0f} MiB "
                                        f"budget + 150 MiB ({before / MIB:.0f} MiB before reading)")


OPS = st.lists(st.tuples(st.integers(0, 3 * MIB), st.sampled_from([1, 4 * KIB, 100 * KIB, MIB]),
                         st.booleans()), min_size=1, max_size=12)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
def test_random_seek_reads_against_the_server_match_the_object(s3_client, bucket, ops):
    body = bytes(range(256)) * (3 * MIB // 256) + b"tail"
    s3_client.put_object(Bucket=bucket, Key="h/obj.bin", Body=body)
    ref = io.BytesIO(body)
    cfg = ReadaheadConfig(initial_window=256 * KIB, max_window=2 * MIB, part_size=MIB, budget_bytes=8 * MIB)
    with FastFileView(f"s3://{bucket}/h/", config=cfg) as view, view.open("obj.bin") as f:
        for pos, n, seek in ops:
            if seek:
                assert f.seek(pos) == ref.seek(pos)
            assert f.read(n) == ref.read(n)
            assert f.tell() == ref.tell()
