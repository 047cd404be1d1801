"""The test rig, used by the test suite, the demo and the benchmark harness.

* :mod:`~channels.testing.s3`: a real S3 endpoint on loopback (moto's server);
* :mod:`~channels.testing.data`: generated datasets and a bucket filler;
* :mod:`~channels.testing.wait`: polling with a deadline;
* :mod:`~channels.testing.profiles`: latency profiles (``local``, ``s3-like``...);
* :mod:`~channels.testing.proxy`, :mod:`~channels.testing.wire`,
  :mod:`~channels.testing.faults`: the loopback proxy that shapes the network
  and injects faults;
* :mod:`~channels.testing.services`: endpoint and proxies in their own processes.
"""

from channels.testing.data import (
    Dataset,
    fill_bucket,
    hash_key,
    lognormal_sizes,
    object_bytes,
    one_giant_sizes,
    tiny_sizes,
    uniform_sizes,
)
from channels.testing.s3 import DUMMY_CREDENTIALS, LocalS3, dummy_credentials, free_port
from channels.testing.wait import wait_for
from channels.units import KIB, MIB

__all__ = [
    "DUMMY_CREDENTIALS", "KIB", "MIB", "Dataset", "LocalS3", "dummy_credentials", "fill_bucket", "free_port",
    "hash_key", "lognormal_sizes", "object_bytes", "one_giant_sizes", "tiny_sizes", "uniform_sizes", "wait_for",
]
