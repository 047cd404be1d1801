"""Framework adapters: which records each reader of a channel reads, whatever the framework.

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

from channels.adapters.sources import (
    OBJECT,
    DirectorySource,
    FastFileSource,
    PipeReaderSource,
    Source,
)
from channels.adapters.split import SCOPES, Split, default_identity, split_for

__all__ = [
    "OBJECT", "SCOPES", "DirectorySource", "FastFileSource", "PipeReaderSource", "Source", "Split",
    "default_identity", "split_for",
]
