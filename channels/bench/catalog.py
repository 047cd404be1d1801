"""The runners ``channels bench`` knows, by name: our modes first, then the peers.

The catalog imports :mod:`channels.bench.ours` and :mod:`channels.bench.peers`
and registers their runners here, in that order; neither imports the catalog
back. An unknown name gets a ValueError listing the valid ones.
"""

from __future__ import annotations

from channels.bench import ours, peers
from channels.bench.base import Runner
from channels.registry import lookup

RUNNERS: dict[str, Runner] = {}


def register_runner(runner: Runner) -> Runner:
    """Add (or replace) a runner in the catalog; returns it."""
    RUNNERS[runner.name] = runner
    return runner


def get_runner(name: str) -> Runner:
    """The runner named ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    return lookup(RUNNERS, name, "runner")


def names(kind: str) -> list[str]:
    """Runner names of one kind (``mode`` or ``peer``), in registration order."""
    return [n for n, r in RUNNERS.items() if r.kind == kind]


for _runner in (*ours.RUNNERS, *peers.RUNNERS):
    register_runner(_runner)
