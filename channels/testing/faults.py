"""Fault hooks of the loopback proxy: what a policy sees, what it may answer.

A fault policy is a callable ``policy(RequestInfo) -> Action | None`` that
:class:`channels.testing.proxy.Proxy` calls for every request; the proxy's
``stats.faults`` lists the faults it actually injected.
:func:`scripted_faults` builds one that breaks the k-th matching request
(``reset_after``, ``stall_after``, ``status``, ``error_rate``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestInfo:
    """What a fault policy sees of a request.

    Attributes:
        index: 1-based arrival order over the proxy's life.
        method: ``GET``, ``PUT``...
        target: the request target (path and query).
        range: the ``Range`` header, or None.
    """

    index: int
    method: str
    target: str
    range: str | None


@dataclass(frozen=True)
class Action:
    """A fault to inject into one response.

    Attributes:
        kind: ``status``, ``reset`` or ``stall``.
        status: the HTTP status answered (kind ``status``).
        after_bytes: body bytes relayed before the fault (``reset``, ``stall``);
            a body no longer than this is relayed whole, and is no fault.
        seconds: how long a stall lasts before the connection is closed
            (0: a body cut short with a clean close).
    """

    kind: str
    status: int = 503
    after_bytes: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("status", "reset", "stall"):
            raise ValueError(f"unknown fault kind {self.kind!r}: use status, reset or stall")


FaultPolicy = Callable[[RequestInfo], "Action | None"]


def scripted_faults(*, reset_after: dict[int, int] | None = None,
                    stall_after: dict[int, tuple[int, float]] | None = None,
                    status: dict[int, int] | None = None, error_rate: float = 0.0,
                    error_status: int = 503, seed: int = 0,
                    match: Callable[[str, str], bool] | None = None) -> FaultPolicy:
    """A fault policy that breaks the k-th matching request.

    Knobs count *matching* requests (by default every GET), 1-based. The
    returned callable has ``matched`` (the count so far), ``faults``
    (``[(k, kind)]`` of every fault it asked for) and ``numbers``
    (``{request index: k}`` of those requests), to name the faults the
    proxy injected by ``k``.

    Args:
        reset_after: ``{k: n}``: the k-th matching response is reset after n body bytes.
        stall_after: ``{k: (n, seconds)}``: the k-th stalls after n body bytes.
        status: ``{k: code}``: the k-th is answered ``code`` without reaching the upstream.
        error_rate: every other matching request is answered ``error_status``
            with this probability (seeded).
        error_status: the status of random errors.
        seed: seed of the random errors.
        match: which requests count, ``(method, target) -> bool``.
    """
    reset_after, stall_after, status = dict(reset_after or {}), dict(stall_after or {}), dict(status or {})
    match = match or (lambda method, target: method == "GET")
    rng = random.Random(seed)
    lock = threading.Lock()

    def policy(req: RequestInfo) -> Action | None:
        if not match(req.method, req.target):
            return None
        with lock:
            policy.matched += 1
            k = policy.matched
            if k in status:
                action = Action("status", status=status[k])
            elif k in reset_after:
                action = Action("reset", after_bytes=reset_after[k])
            elif k in stall_after:
                n, seconds = stall_after[k]
                action = Action("stall", after_bytes=n, seconds=seconds)
            elif error_rate and rng.random() < error_rate:
                action = Action("status", status=error_status)
            else:
                return None
            policy.faults.append((k, action.kind))
            policy.numbers[req.index] = k
            return action

    policy.matched = 0
    policy.faults = []
    policy.numbers = {}
    return policy
