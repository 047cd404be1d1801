"""PyTorch: a channel as an :class:`~torch.utils.data.IterableDataset` (``pip install 'channels[torch]'``).

Each DataLoader worker of each process is one consumer of the epoch
(:mod:`channels.adapters`): it reads a byte-balanced share, so every record
comes out exactly once per epoch across the job, and every consumer yields
as many records as the others (policy ``pad``, the default), so every rank
takes the same number of steps. Call :meth:`ChannelDataset.set_epoch` before
each epoch, in every process: the shuffle and the shares change with it,
and the first call counts the records (one pass, shared among the ranks)::

    from torchdata.stateful_dataloader import StatefulDataLoader
    from channels.adapters import DirectorySource
    from channels.adapters.torch import ChannelDataset

    ds = ChannelDataset(DirectorySource.for_channel("train", framing="lines", shuffle_seed=7))
    loader = StatefulDataLoader(ds, batch_size=32, num_workers=4)
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for batch in loader:
            ...
            checkpoint = {"loader": loader.state_dict(), "epoch": epoch}

Resuming on the same ranks and workers: ``loader.load_state_dict(saved)``
before iterating (each worker continues at its object and record). On
another rank or worker count: gather every rank's ``loader.state_dict()``,
``ds.load_state_dict(merge_states(*states))`` and make a new loader (a
StatefulDataLoader refuses another worker count itself).

Workers must not be persistent (``persistent_workers=False``, the default):
each epoch's workers are made from the dataset as it is when the epoch
starts, which is how they learn the epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch.utils.data

from channels.adapters.consumers import ConsumerRead, Consumers
from channels.adapters.equalize import Gather
from channels.adapters.mix import Mix, MixRead, merge_mix_states
from channels.adapters.plan import BYTES
from channels.adapters.sources import Source
from channels.adapters.split import Split, split_for
from channels.adapters.state import FRESH, check, make_state, merge_states
from channels.hosts import Identity, process_identity

#: ``gather="auto"``: torch.distributed's all_gather_object when a process group of 2 or more is up.
AUTO = "auto"


def torch_gather() -> Gather | None:
    """An all-gather over the default process group, or None when there is none (or one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None

    def gather(value: Any) -> list[Any]:
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, value)
        return out

    return gather


class ChannelDataset(torch.utils.data.IterableDataset):
    """Records of a channel, split by process and by DataLoader worker, epoch by epoch; resumable.

    Args:
        source: where the records come from (:class:`~channels.adapters.DirectorySource`,
            :class:`~channels.adapters.FastFileSource`, :class:`~channels.adapters.PipeReaderSource`).
        identity: this process among the job's (default: read now with
            :func:`channels.hosts.process_identity`: resourceconfig.json,
            ``SM_*``, torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``).
        transform: applied to each record (bytes) before it is yielded.
        epoch: the first epoch (see :meth:`set_epoch`).
        split: "bytes" (size-balanced shares) or "count" (SageMaker's runs by count).
        policy: "pad" (default), "drop" or "none": equal records per consumer
            (:mod:`channels.adapters.equalize`).
        tag_pads: yield ``(record, is_pad)`` (e.g. to mask pads in evaluation).
        gather: the all-gather that shares the counting pass among ranks:
            "auto" (torch.distributed when initialized), a callable, or None
            (each process counts every object).
    """

    def __init__(self, source: Source, *, identity: Identity | None = None,
                 transform: Callable[[Any], Any] | None = None, epoch: int = 0, split: str = BYTES,
                 policy: str = "pad", tag_pads: bool = False, gather: Gather | str | None = AUTO) -> None:
        super().__init__()
        self.consumers = Consumers(source, split=split, policy=policy, tag_pads=tag_pads)
        self.identity = identity if identity is not None else process_identity()
        self.transform = transform
        self.gather = gather
        self.epoch = 0
        self.set_epoch(epoch, count=False)
        # A loaded state, for the iterations of its epoch; the running read of this process.
        self._state: dict | None = None
        self._live: ConsumerRead | None = None

    @property
    def source(self) -> Source:
        return self.consumers.source

    def set_epoch(self, epoch: int, *, count: bool = True) -> None:
        """The epoch the next iteration reads (its shuffle and its shares).

        Call it in every process of the job (it may take part in a collective:
        the first call with policy pad or drop counts the records, once).
        A loaded state of another epoch is dropped.
        """
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"epoch {epoch!r} must be an integer >= 0")
        self.epoch = epoch
        if getattr(self, "_state", None) is not None and self._state["epoch"] != epoch:
            self._state = None
        if count:
            self.count_records()

    def count_records(self) -> None:
        """Count every object's records once (policy pad/drop), sharing the pass among the ranks."""
        gather = torch_gather() if self.gather == AUTO else self.gather
        i = self.identity
        if self.source.scope == "host":
            part, parts, group = i.local_rank, i.local_world_size, i.host_index
        else:
            part, parts, group = i.rank, i.world_size, 0
        self.consumers.count_records(part=part, parts=parts, gather=gather, group=group)

    def consumer(self) -> Split:
        """This process's (or DataLoader worker's) consumer of the epoch."""
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return split_for(self.identity, self.source.scope, worker, workers)

    def _host(self) -> tuple[int, int]:
        return self.identity.host_index, self.identity.hosts

    def __iter__(self) -> Iterator[Any]:
        if torch.utils.data.get_worker_info() is None:
            self.count_records()  # the main process: the collective may run here
        state, self._state = self._state, None  # a second iteration in this process starts afresh
        if state is not None and state["epoch"] != self.epoch:
            state = None
        self._live = read = self.consumers.open(self.consumer(), self.epoch, host=self._host(), state=state)
        if self.transform is None:
            return read
        transform, tag = self.transform, self.consumers.tag_pads
        return ((transform(r[0]), r[1]) if tag else transform(r) for r in read)

    def state_dict(self) -> dict:
        """Where this process's read stands (a DataLoader worker's, in a worker).

        Before any iteration: the loaded state, else the start of the epoch.
        Under StatefulDataLoader each worker's state is saved for it.
        """
        if self._live is not None:
            return self._live.state_dict()
        if self._state is not None:
            return self._state
        c = self.consumer()
        return make_state(self.consumers.settings(self._host()), self.consumers.fingerprint(), self.epoch,
                          [(c.count, None)], {c.index: FRESH})

    def load_state_dict(self, state: Any) -> None:
        """Resume the saved epoch at the next iteration (sets :attr:`epoch` to it).

        ``state`` is a state, or several merged (:func:`~channels.adapters.merge_states`,
        needed to resume on another rank or worker count), or a
        StatefulDataLoader's state dict holding them.

        Raises:
            ResumeStateError: the state does not fit this channel (other
                objects, changed ETags, another seed, split, policy...).
        """
        state = merge_states(state)
        # Settings and objects now (the consumer count is known only when iterating).
        check(state, self.consumers.settings(self._host()), self.source.listing().refs, self.source.label)
        self._state, self._live = state, None
        self.epoch = state["epoch"]

    def __repr__(self) -> str:
        i = self.identity
        return (f"ChannelDataset({type(self.source).__name__}, scope={self.source.scope!r}, rank {i.rank} of "
                f"{i.world_size}, epoch {self.epoch}, split {self.consumers.split!r}, "
                f"policy {self.consumers.policy!r})")


class MixedDataset(torch.utils.data.IterableDataset):
    """Several :class:`ChannelDataset` s in one stream, each record's channel drawn by weight.

    Seeded and resumable (:mod:`channels.adapters.mix`); each channel keeps
    its own split, policy and transform. Under StatefulDataLoader as
    :class:`ChannelDataset`.

    Args:
        datasets: the channels (all of one scope, so that they share consumers).
        weights: one weight > 0 per channel.
        seed: seeds the draws.
        stop: "all" (every channel's epoch once) or "first" (end at the first exhausted).
    """

    def __init__(self, datasets: Sequence[ChannelDataset], weights: Sequence[float], *, seed: int = 0,
                 stop: str = "all") -> None:
        super().__init__()
        self.datasets = list(datasets)
        scopes = {d.source.scope for d in self.datasets}
        if len(scopes) > 1:
            raise ValueError(f"mixed channels must share a scope (consumers), got {sorted(scopes)}")
        self.mix = Mix([d.consumers for d in self.datasets], weights, seed=seed, stop=stop)
        self.epoch = self.datasets[0].epoch if self.datasets else 0
        self._state: dict | None = None
        self._live: MixRead | None = None

    def set_epoch(self, epoch: int) -> None:
        """Every channel's epoch (see :meth:`ChannelDataset.set_epoch`)."""
        for d in self.datasets:
            d.set_epoch(epoch)
        self.epoch = epoch
        if self._state is not None and self._state["epoch"] != epoch:
            self._state = None

    def __iter__(self) -> Iterator[Any]:
        first = self.datasets[0]
        if torch.utils.data.get_worker_info() is None:
            for d in self.datasets:
                d.count_records()
        state, self._state = self._state, None
        if state is not None and state["epoch"] != self.epoch:
            state = None
        self._live = read = self.mix.open(first.consumer(), self.epoch, host=first._host(), state=state)
        if all(d.transform is None for d in self.datasets):
            return read
        return (self._transform(read, r) for r in read)

    def _transform(self, read: MixRead, record: Any) -> Any:
        d = self.datasets[read.last]
        if d.transform is None:
            return record
        return (d.transform(record[0]), record[1]) if d.consumers.tag_pads else d.transform(record)

    def state_dict(self) -> dict:
        """Where this process's (or worker's) mixed read stands."""
        if self._live is not None:
            return self._live.state_dict()
        if self._state is not None:
            return self._state
        read = self.mix.open(self.datasets[0].consumer(), self.epoch, host=self.datasets[0]._host())
        state = read.state_dict()
        read.close()
        return state

    def load_state_dict(self, state: Any) -> None:
        """Resume the saved epoch (one state, or every rank's and worker's to merge)."""
        self._state, self._live = merge_mix_states(state), None
        self.epoch = self._state["epoch"]
