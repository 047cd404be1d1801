"""Fault policies of the loopback proxy: what a policy sees, what it may answer.

A fault policy is a callable ``policy(RequestInfo) -> Action | None`` that
:class:`channels.testing.proxy.Proxy` calls for every request; the proxy's
``stats.faults`` lists the faults it actually injected. Two are ready-made:

* :func:`scripted_faults`: the k-th matching request gets a named fault
  (``reset_after``, ``stall_after``, ``status``) or a seeded random error;
* :class:`MixedFaults`: an exact share of object GETs broken, every kind
  (reset, truncate, slowdown, internal, stall) in turn, each costing the
  client exactly one retry.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

#: The kinds of :class:`MixedFaults`.
KINDS = ("reset", "truncate", "slowdown", "internal", "stall")


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


def object_gets(req: RequestInfo) -> bool:
    """GETs of objects (path-style, no query): not listings, not HEADs."""
    return req.method == "GET" and "?" not in req.target


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


@dataclass(frozen=True)
class Injected:
    """One fault :class:`MixedFaults` asked for.

    Attributes:
        index: the matching request's 1-based number.
        kind: one of :data:`KINDS`.
        target: the request target (``/bucket/key``).
        range: the Range header, or None for a whole-object GET.
        after_bytes: body bytes sent before a body fault (0 for status faults).
    """

    index: int
    kind: str
    target: str
    range: str | None
    after_bytes: int


class MixedFaults:
    """A fault policy: a fixed share of requests broken, every kind in turn.

    Matching requests are taken in blocks of ``round(1 / rate)``; one request
    at a seeded random place in each block gets a fault, so the share is
    exact. Kinds go in rotation: ``reset`` (the body cut by a TCP reset),
    ``truncate`` (the body ends early with a clean close), ``slowdown`` (503),
    ``internal`` (500), ``stall`` (the body stops for ``stall_seconds``,
    meant to be past the client's read timeout). Body faults always keep
    back at least one byte of the body, so each costs the client exactly one
    retry and is injected; where a body is empty a ``slowdown`` is injected
    instead.

    Args:
        sizes: ``"bucket/key" -> bytes``, for the body length of whole-object GETs.
        rate: the share of matching requests broken.
        kinds: the kinds to rotate through.
        stall_seconds: how long a stalled body hangs before the proxy closes it.
        seed: placement of the fault in each block, and where bodies break.
        match: which requests count (default: object GETs).

    Attributes:
        injected: every fault asked for, in order.
        matched: matching requests seen.
        active: while False, nothing is counted or broken (e.g. during set-up).
    """

    def __init__(self, sizes: Mapping[str, int], *, rate: float = 0.05, kinds: tuple[str, ...] = KINDS,
                 stall_seconds: float = 2.0, seed: int = 0,
                 match: Callable[[RequestInfo], bool] = object_gets) -> None:
        if not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {rate!r}")
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}: use {', '.join(KINDS)}")
        self.sizes = dict(sizes)
        self.period = max(1, round(1 / rate))
        self.kinds = kinds
        self.stall_seconds = stall_seconds
        self.match = match
        self.active = True
        self.injected: list[Injected] = []
        self.matched = 0
        self._rng = random.Random(seed)
        self._slots: dict[int, int] = {}
        self._lock = threading.Lock()

    def __call__(self, req: RequestInfo) -> Action | None:
        if not self.active or not self.match(req):
            return None
        with self._lock:
            self.matched += 1
            block, place = divmod(self.matched - 1, self.period)
            slot = self._slots.setdefault(block, self._rng.randrange(self.period))
            if place != slot:
                return None
            kind = self.kinds[len(self.injected) % len(self.kinds)]
            length = self.body_length(req)
            after = 0
            if kind in ("reset", "truncate", "stall"):
                if not length:
                    kind = "slowdown"
                else:
                    after = self._rng.randrange(length)  # at least one byte kept back
            self.injected.append(Injected(self.matched, kind, req.target, req.range, after))
        if kind == "reset":
            return Action("reset", after_bytes=after)
        if kind == "truncate":
            return Action("stall", after_bytes=after, seconds=0.0)  # stop, then close cleanly
        if kind == "stall":
            return Action("stall", after_bytes=after, seconds=self.stall_seconds)
        return Action("status", status=503 if kind == "slowdown" else 500)

    def body_length(self, req: RequestInfo) -> int | None:
        """The body bytes the upstream will send for ``req``, or None if unknown."""
        if req.range:
            first, _, last = req.range.removeprefix("bytes=").partition("-")
            return int(last) - int(first) + 1
        return self.sizes.get(unquote(req.target.lstrip("/")))

    def kinds_seen(self) -> set[str]:
        return {f.kind for f in self.injected}
