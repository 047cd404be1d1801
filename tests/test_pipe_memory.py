"""Peak memory of the Pipe reader: 1 GiB of 256 MiB objects through a 64 MiB
budget, measured in a subprocess (VmHWM, the peak resident set), so that the
test process (which holds moto's copy of the objects) does not count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from channels.units import MIB

BUDGET = 64 * MIB
#: Ranged GETs of 32 MiB: moto reads a whole object for every ranged GET, so
#: 8 MiB parts of 256 MiB objects cost it 4x the time for the same memory.
PART = 32 * MIB

READ = """
import json, sys
from channels.modes.pipe.reader import PipeReader
from channels.store import Store
from channels.transport import TransportConfig
from channels.units import MIB

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

before = hwm()
config = TransportConfig(budget_bytes=int(sys.argv[3]), part_size=int(sys.argv[4]))
with PipeReader(sys.argv[1], store=Store(sys.argv[2]), config=config) as reader:
    total = sum(len(chunk) for chunk in reader)
    stats = reader.stats()
print(json.dumps({"bytes": total, "hwm": hwm(), "hwm_at_start": before, **stats}))
"""


def test_peak_rss_stays_below_budget_plus_150_mib(s3, s3_client, bucket):
    body = os.urandom(256 * MIB)
    for i in range(4):
        s3_client.put_object(Bucket=bucket, Key=f"big/{i}", Body=body)
    del body
    out = subprocess.run([sys.executable, "-c", READ, f"s3://{bucket}/big/", s3.endpoint_url, str(BUDGET),
                          str(PART)], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    print(f"peak RSS {result['hwm'] / MIB:.0f} MiB (imports alone {result['hwm_at_start'] / MIB:.0f} MiB), "
          f"buffer peak {result['transport_buffer_peak'] / MIB:.0f} MiB")
    assert result["bytes"] == 1024 * MIB and result["objects"] == 4
    assert result["transport_buffer_peak"] <= BUDGET
    assert result["hwm"] < BUDGET + 150 * MIB
