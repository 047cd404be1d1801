"""Framework adapters: which records each reader of a channel reads, whatever the framework.

A *consumer* is one reader of an epoch: a DataLoader worker of one process
of the job. Each epoch every consumer takes a disjoint share of the
channel's objects, so that each record is read exactly once per epoch across
the job, and the shares change with the epoch when the channel is shuffled.

The parts, each a module:

* :mod:`~channels.adapters.split`: which consumer this is. Scope ``"job"``
  (the whole dataset is readable here: a Pipe reader, a FullyReplicated File
  channel, a FastFile mount): every process of the job, by ``rank`` of
  ``world_size``; scope ``"host"`` (this host's directory holds only its own
  share: a ShardedByS3Key File channel): this host's processes, by
  ``local_rank`` of ``local_world_size``. Then by worker: consumer
  ``part * workers + worker`` of ``parts * workers``. Host identity comes from
  :func:`channels.hosts.process_identity` (resourceconfig.json, ``SM_*`` or
  torchrun's variables).
* :mod:`~channels.adapters.plan`: each consumer's share, balanced by bytes
  (the size-balanced plan of :mod:`channels.sharding`) or by count, and the
  re-plan of the unread remainder after a resume on another consumer count.
* :mod:`~channels.adapters.equalize`: equal records per consumer (pad, drop
  or none), from record counts taken once.
* :mod:`~channels.adapters.state`: the saved state, merged across ranks and
  workers, checked on load.
* :mod:`~channels.adapters.consumers`: all of it for one consumer's epoch,
  framework-neutral; :mod:`~channels.adapters.mix` mixes channels by weight.
* :mod:`~channels.adapters.sources`: :class:`DirectorySource` (files under a
  directory), :class:`FastFileSource` (a FastFile view, in process),
  :class:`PipeReaderSource` (the Pipe reader, from the store: a FIFO has one
  reader, so it cannot be split among workers). Picklable; each process
  opens its own connections, lazily.

The framework-specific part is small: :mod:`channels.adapters.torch`.
"""

from channels.adapters.consumers import ConsumerRead, Consumers
from channels.adapters.equalize import POLICIES
from channels.adapters.plan import SPLITS
from channels.adapters.sources import (
    OBJECT,
    DirectorySource,
    FastFileSource,
    PipeReaderSource,
    Source,
)
from channels.adapters.split import SCOPES, Split, default_identity, split_for
from channels.adapters.state import merge_states

__all__ = [
    "OBJECT", "POLICIES", "SCOPES", "SPLITS", "ConsumerRead", "Consumers", "DirectorySource", "FastFileSource",
    "PipeReaderSource", "Source", "Split", "default_identity", "merge_states", "split_for",
]
