"""Which share of an epoch each consumer (process x DataLoader worker) reads.

A *consumer* is one reader of an epoch: a DataLoader worker of one process
of the job. Each epoch every consumer takes a disjoint share of the
channel's objects, so that each record is read exactly once per epoch across
the job, and the shares change with the epoch when the channel is shuffled.

Rule (the same :func:`channels.sharding.plan` as everywhere else): the
objects, in key order, are shuffled for the epoch with the seed (none: key
order), then cut by count into ``count`` contiguous runs; consumer ``index``
reads run ``index``, object by object. Objects are never split, so with more
consumers than objects some consumers get none.

Which processes share the split depends on what the channel holds on this
host (its *scope*):

* ``"job"``: the whole dataset is readable here (a Pipe reader, which reads
  the store itself; a FullyReplicated File channel; a FastFile mount): the
  split is among every process of the job, by ``rank`` of ``world_size``.
* ``"host"``: this host's channel directory holds only its own share (a
  ShardedByS3Key File channel): the split is among the processes of this
  host, by ``local_rank`` of ``local_world_size``.

Then by worker: consumer ``part * workers + worker`` of ``parts * workers``.
Host identity comes from :func:`channels.hosts.process_identity`
(resourceconfig.json, ``SM_*`` or torchrun's variables).

Sources (picklable; each process opens its own connections, lazily):

* :class:`DirectorySource`: files under a directory (a File channel's
  directory, a FastFile mount, any local tree);
* :class:`FastFileSource`: a FastFile view of an S3Prefix, read in process
  without a mount;
* :class:`PipeReaderSource`: the Pipe reader, from the store directly (a FIFO
  has one reader, so it cannot be split among workers).

The framework-specific part is small: :mod:`channels.adapters.torch`.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.hosts import Identity, process_identity

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
        raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    return Split(part * workers + worker, parts * workers)


def default_identity() -> Identity:
    """This process's identity (:func:`channels.hosts.process_identity`)."""
    return process_identity()
