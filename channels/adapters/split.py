"""Which consumer of an epoch this process (x DataLoader worker) is: share ``index`` of ``count``.

Scope ``"job"``: the consumers are every process of the job (by ``rank`` of
``world_size``) times its workers; scope ``"host"``: this host's processes
(by ``local_rank`` of ``local_world_size``) times their workers. Consumer
``part * workers + worker`` of ``parts * workers``. See :mod:`channels.adapters`.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.hosts import Identity, process_identity
from channels.registry import unknown

SCOPES = ("job", "host")


@dataclass(frozen=True)
class Split:
    """This consumer's place among an epoch's consumers: share ``index`` of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"consumer {self.index} is out of range for {self.count} consumer(s)")


def split_for(identity: Identity, scope: str, worker: int = 0, workers: int = 1) -> Split:
    """The split of DataLoader worker ``worker`` of ``workers`` in the process ``identity`` names.

    Raises:
        ValueError: an unknown scope (the message lists the valid ones).
    """
    if scope == "job":
        part, parts = identity.rank, identity.world_size
    elif scope == "host":
        part, parts = identity.local_rank, identity.local_world_size
    else:
        raise unknown("scope", scope, SCOPES)
    return Split(part * workers + worker, parts * workers)


def default_identity() -> Identity:
    """This process's identity (:func:`channels.hosts.process_identity`)."""
    return process_identity()
