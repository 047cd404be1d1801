"""The fault proxy of the tests: :class:`channels.testing.proxy.Proxy` with scripted or custom faults.

:class:`FaultProxy` takes the knobs of
:func:`channels.testing.faults.scripted_faults` (``reset_after={k: n}``,
``stall_after={k: (n, seconds)}``, ``status={k: code}``, ``error_rate`` with
``seed``, ``match``), which count matching requests (by default every GET),
1-based. ``faults`` lists every fault the proxy actually injected as
``(k, kind)`` (a reset or stall of a body no longer than ``n`` is none);
``log`` records every request as ``(method, target, range_header)``.

Example:
    >>> with FaultProxy(s3.endpoint_url, reset_after={2: 1000}) as proxy:  # doctest: +SKIP
    ...     transport = Transport(Store(proxy.url))
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping

from channels.testing.faults import Action, FaultPolicy, RequestInfo, scripted_faults
from channels.testing.proxy import Proxy


class FaultProxy(Proxy):
    """See the module docstring; ``upstream`` is the real endpoint, ``http://host:port``."""

    def __init__(self, upstream: str, **knobs) -> None:
        self.script = scripted_faults(**knobs)
        self.log: list[tuple[str, str, str | None]] = []
        super().__init__(upstream, fault_policy=self._policy)

    def _policy(self, req: RequestInfo) -> Action | None:
        self.log.append((req.method, req.target, req.range))
        return self.script(req)

    @property
    def faults(self) -> list[tuple[int, str]]:
        return [(self.script.numbers[index], kind) for index, kind in self.stats.faults]


@contextlib.contextmanager
def fault_proxy(s3, policy: FaultPolicy) -> Iterator[Proxy]:
    """The proxy in front of ``s3`` with ``policy``; stopped on exit."""
    with Proxy(s3.endpoint_url, fault_policy=policy) as proxy:
        yield proxy


def sizes_of(bucket: str, data: Mapping[str, bytes]) -> dict[str, int]:
    """``"bucket/key" -> size``, as :class:`channels.testing.faults.MixedFaults` takes them."""
    return {f"{bucket}/{k}": len(v) for k, v in data.items()}


def sha(data) -> str:
    return hashlib.sha256(data).hexdigest()
