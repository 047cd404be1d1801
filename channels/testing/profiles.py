"""Latency profiles: how far away the benchmark's endpoint pretends to be.

A profile is a set of proxy knobs (:mod:`channels.testing.proxy`). The
registry, keyed by name:

* ``direct``: no proxy at all; the client talks to the endpoint. The only
  profile for an endpoint given with ``--endpoint-url`` over https (its
  network is the profile).
* ``local``: the proxy in pass-through: no delay, no cap. Comparing ``local``
  with ``s3-like`` isolates the effect of latency and bandwidth, the proxy's
  own cost being in both; comparing ``direct`` with ``local`` measures that
  cost.
* ``s3-like``: 20 ms added before each response's first byte, 90 MB/s per
  connection. Sources, both from AWS's whitepaper "Best Practices Design
  Patterns: Optimizing Amazon S3 Performance":

  - "Horizontal Scaling and Request Parallelization for High Throughput":
    "Make one concurrent request for each 85–90 MB/s of desired network
    throughput" (and ranged GETs "at the granularity of 8–16 MB"), i.e. one
    connection carries about 85-90 MB/s from S3 to EC2 in the same Region:
    https://docs.aws.amazon.com/whitepapers/latest/s3-optimizing-performance-best-practices/horizontal-scaling-and-request-parallelization-for-high-throughput.html
  - "Timeouts and Retries for Latency-Sensitive Applications": for small
    requests (under 512 KB) "median latencies are often in the tens of
    milliseconds range":
    https://docs.aws.amazon.com/whitepapers/latest/s3-optimizing-performance-best-practices/timeouts-and-retries-for-latency-sensitive-applications.html

  We take 20 ms, the low end of "tens of milliseconds", as the time to first
  byte a well-placed client sees. Older S3 guidance quotes 100-200 ms first-byte
  latencies; the ``s3-far`` profile uses 100 ms for that case.
* ``s3-40ms``: 40 ms first byte, 90 MB/s per connection: twice ``s3-like``'s
  latency, the middle of "tens of milliseconds"; a readahead that sizes its
  bytes in flight by the latency it measures should hold its throughput here
  too.
* ``s3-far``: 100 ms first byte, 90 MB/s per connection.

Host network interfaces (``listener_bandwidth``) are set per simulated host
by :mod:`channels.bench.imbalance`, not by these profiles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from channels.registry import lookup
from channels.units import MB


@dataclass(frozen=True)
class Profile:
    """Knobs of the proxy.

    Attributes:
        name: registry key.
        first_byte_delay: seconds added before each request is forwarded.
        connection_bandwidth: bytes/s per client connection (None: no cap).
        listener_bandwidth: bytes/s shared by every connection of one
            listener, a host's network interface (None: no cap).
        proxied: False for ``direct``: the client talks to the endpoint.
        source: where the figures come from.
    """

    name: str
    first_byte_delay: float = 0.0
    connection_bandwidth: float | None = None
    listener_bandwidth: float | None = None
    proxied: bool = True
    source: str = ""

    def __post_init__(self) -> None:
        if self.first_byte_delay < 0:
            raise ValueError(f"profile {self.name}: first_byte_delay must be >= 0 s, got {self.first_byte_delay}")
        for knob in ("connection_bandwidth", "listener_bandwidth"):
            value = getattr(self, knob)
            if value is not None and not value > 0:
                raise ValueError(f"profile {self.name}: {knob} must be > 0 bytes/s or None, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if not self.proxied:
            return "no proxy"
        parts = [f"{self.first_byte_delay * 1000:g} ms first byte"]
        if self.connection_bandwidth:
            parts.append(f"{self.connection_bandwidth / MB:g} MB/s per connection")
        if self.listener_bandwidth:
            parts.append(f"{self.listener_bandwidth / MB:g} MB/s per host")
        return ", ".join(parts) if self.first_byte_delay or len(parts) > 1 else "pass-through proxy"


_WHITEPAPER = ("AWS whitepaper 'Best Practices Design Patterns: Optimizing Amazon S3 Performance': "
               "85-90 MB/s per connection; tens of ms median latency for small requests")

PROFILES: dict[str, Profile] = {
    "direct": Profile("direct", proxied=False),
    "local": Profile("local"),
    "s3-like": Profile("s3-like", 0.020, 90 * MB, source=_WHITEPAPER),
    "s3-40ms": Profile("s3-40ms", 0.040, 90 * MB, source=_WHITEPAPER),
    "s3-far": Profile("s3-far", 0.100, 90 * MB, source=_WHITEPAPER + "; 100-200 ms in older S3 guidance"),
}


def register_profile(profile: Profile) -> None:
    """Add (or replace) a profile in the registry."""
    PROFILES[profile.name] = profile


def get_profile(name: str) -> Profile:
    """The profile named ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    return lookup(PROFILES, name, "latency profile")
