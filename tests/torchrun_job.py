"""A training script for tests/test_torchrun.py, run by ``python -m torch.distributed.run``.

Each rank reads the channel with ChannelDataset (identity from torchrun's
variables), all-gathers the ids of the records it got (pads tagged) for
every policy and epoch, then trains a tiny DDP model for one epoch; rank 0
writes what every rank saw to ``OUT/result.json``.

Usage: torchrun ... torchrun_job.py DATA OUT --policies pad,drop --epochs 2
       --workers 2 --split bytes --train pad --timeout 60
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from channels.adapters import DirectorySource
from channels.adapters.torch import ChannelDataset


def dataset(data: str, split: str, policy: str, seed: int | None) -> ChannelDataset:
    return ChannelDataset(DirectorySource(data, framing="lines", shuffle_seed=seed), transform=bytes.decode,
                          split=split, policy=policy, tag_pads=True)


def read(ds: ChannelDataset, workers: int) -> list[tuple[str, bool]]:
    loader = DataLoader(ds, batch_size=None, num_workers=workers,
                        multiprocessing_context="fork" if workers else None)
    return [(rec, bool(pad)) for rec, pad in loader]


def train(ds: ChannelDataset, workers: int) -> int:
    """One epoch of a one-weight model under DDP; the steps taken."""
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(1, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    steps = 0
    loader = DataLoader(ds, batch_size=4, num_workers=workers, multiprocessing_context="fork" if workers else None)
    for recs, _ in loader:
        x = torch.tensor([[float(len(r))] for r in recs])
        loss = (model(x) - 1.0).pow(2).mean()
        opt.zero_grad()
        loss.backward()  # the all-reduce every rank must join
        opt.step()
        steps += 1
    return steps


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--policies", default="pad,drop")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--split", default="bytes")
    p.add_argument("--train", default="pad", help="the policy of the DDP epoch")
    p.add_argument("--seed", type=int, default=5, help="shuffle seed (-1: none)")
    p.add_argument("--timeout", type=float, default=60,
                   help="seconds a collective may wait (a rank on a stalled shared machine can lag 20 s)")
    args = p.parse_args()
    dist.init_process_group("gloo", timeout=timedelta(seconds=args.timeout))
    rank, world = dist.get_rank(), dist.get_world_size()
    seed = args.seed if args.seed >= 0 else None
    result: dict = {"world": world, "reads": {}}
    for policy in [p for p in args.policies.split(",") if p]:
        ds = dataset(args.data, args.split, policy, seed)
        for epoch in range(args.epochs):
            ds.set_epoch(epoch)
            got = read(ds, args.workers)
            every: list = [None] * world
            dist.all_gather_object(every, got)
            result["reads"][f"{policy}/{epoch}"] = every
    ds = dataset(args.data, args.split, args.train, seed)
    ds.set_epoch(0)
    steps = train(ds, args.workers)
    every = [None] * world
    dist.all_gather_object(every, steps)
    result["steps"] = every
    if rank == 0:
        Path(args.out, "result.json").write_text(json.dumps(result))
    dist.destroy_process_group()
    print(f"rank {rank}: done ({os.getpid()})", flush=True)


if __name__ == "__main__":
    main()
