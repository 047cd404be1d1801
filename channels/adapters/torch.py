"""PyTorch: a channel as an :class:`~torch.utils.data.IterableDataset` (``pip install 'channels[torch]'``).

Each DataLoader worker of each process reads its own share of the channel's
objects (:mod:`channels.adapters`), so every record comes out exactly once
per epoch across the job; call :meth:`ChannelDataset.set_epoch` before each
epoch for the channel's shuffle (and the shares) to change with it::

    from torch.utils.data import DataLoader
    from channels.adapters import DirectorySource
    from channels.adapters.torch import ChannelDataset

    ds = ChannelDataset(DirectorySource.for_channel("train", framing="lines", shuffle_seed=7))
    loader = DataLoader(ds, batch_size=None, num_workers=4)
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for record in loader:
            ...

Workers must not be persistent (``persistent_workers=False``, the default):
each epoch's workers are made from the dataset as it is when the epoch
starts, which is how they learn the epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch.utils.data

from channels.adapters.sources import Source
from channels.adapters.split import split_for
from channels.hosts import Identity, process_identity


class ChannelDataset(torch.utils.data.IterableDataset):
    """Records of a channel, split by process and by DataLoader worker, epoch by epoch.

    Args:
        source: where the records come from (:class:`~channels.adapters.DirectorySource`,
            :class:`~channels.adapters.FastFileSource`, :class:`~channels.adapters.PipeReaderSource`).
        identity: this process among the job's (default: read now with
            :func:`channels.hosts.process_identity`: resourceconfig.json,
            ``SM_*``, torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``).
        transform: applied to each record (bytes) before it is yielded.
        epoch: the first epoch (see :meth:`set_epoch`).
    """

    def __init__(self, source: Source, *, identity: Identity | None = None,
                 transform: Callable[[bytes], Any] | None = None, epoch: int = 0) -> None:
        super().__init__()
        self.source = source
        self.identity = identity if identity is not None else process_identity()
        self.transform = transform
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration reads (its shuffle and its shares)."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch {epoch!r} must be an integer >= 0")
        self.epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        split = split_for(self.identity, self.source.scope, worker, workers)
        records = self.source.records(split, self.epoch)
        if self.transform is None:
            return records
        return (self.transform(r) for r in records)

    def __repr__(self) -> str:
        i = self.identity
        return (f"ChannelDataset({type(self.source).__name__}, scope={self.source.scope!r}, rank {i.rank} of "
                f"{i.world_size}, epoch {self.epoch})")
