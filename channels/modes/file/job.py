"""Every File-mode channel of a job, downloaded to ``ROOT/input/data/<channel>/``.

A channel is File mode when its effective input mode (its own InputMode,
else the job's TrainingInputMode) is File; FastFile channels are not. Each
channel is sharded by its own S3DataDistributionType unless a strategy is
forced. Every channel is listed and checked first, and the free space (and
VolumeSizeInGB) is checked against all of them together, before any byte.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from channels.modes.file.disk import check_space
from channels.modes.file.download import DownloadResult, Share, fetch, prepare
from channels.sharding import strategy_name
from channels.store import Store
from channels.transport import TransportConfig

if TYPE_CHECKING:
    from channels.spec import Job

FILE_MODE = "File"


def channel_dir(root: str | os.PathLike, channel: str) -> Path:
    """Where File mode puts a channel: ``ROOT/input/data/<channel>``."""
    return Path(root) / "input" / "data" / channel


def download_job(job: Job | str | os.PathLike, root: str | os.PathLike, *, hosts: int = 1,
                 host_index: int = 0, host: str | None = None, strategy: str | None = None,
                 volume_size_gb: float | None = None, store: Store | None = None,
                 config: TransportConfig | None = None, progress: bool | None = None,
                 log: Callable[[str], None] | None = None, fsync: bool = False,
                 disk_free: Callable[[Path], int] | None = None, plan=None) -> dict[str, DownloadResult]:
    """Download this host's share of every File channel of ``job`` below ``root``.

    Args:
        job: a :class:`Job` or the path of its JSON (either shape).
        root: the container's ``/opt/ml`` equivalent.
        hosts: number of hosts.
        host_index: this host's 0-based index.
        host: this host's name (default ``algo-<index+1>``).
        strategy: force one strategy for every channel (default: each
            channel's S3DataDistributionType).
        volume_size_gb: override the job's ResourceConfig.VolumeSizeInGB.
        store, config, progress, log, fsync, disk_free: as
            :func:`channels.modes.file.download`.
        plan: take every channel's objects from this job plan (its URL or a
            :class:`channels.plan.JobPlan`) instead of listing; it is
            checked against the job first.

    Returns:
        Channel name to its result, in the job's channel order (empty when the
        job has no File channel).
    """
    from channels.spec import Job  # here: `channels download URI DEST` never needs the job's parser

    started = time.monotonic()
    if not isinstance(job, Job):
        job = Job.load(job)
    say = log or (lambda line: None)
    store = store or Store.from_env()
    channels = [c for c in job.channels if job.mode_of(c) == FILE_MODE]
    if not channels:
        modes = ", ".join(f"{c.name}: {job.mode_of(c)}" for c in job.channels)
        say(f"no File-mode channels in this job ({modes}): nothing to download")
        return {}
    count = job.resource_config.instance_count
    if hosts == 1 and count > 1:
        say(f"warning: the job has InstanceCount {count} but this host was given as the only one: it "
            "downloads every host's share; pass --hosts/--host-index or set SM_HOSTS and SM_CURRENT_HOST")
    if plan is not None:
        from channels.plan import load_plan

        plan = load_plan(plan, store=store)
        plan.check(job)
    shares: dict[str, Share] = {}
    for c in channels:
        ds = c.data_source
        source = plan.channel(c.name).listing if plan is not None else ds.s3_uri
        shares[c.name] = prepare(source, channel_dir(root, c.name), hosts=hosts, host_index=host_index,
                                 strategy=strategy_name(strategy or ds.distribution), store=store,
                                 data_type=ds.s3_data_type, host=host)
    for name, share in shares.items():
        for line in share.lines():
            say(f"[{name}] {line}")
    volume = volume_size_gb if volume_size_gb is not None else job.resource_config.volume_size_gb
    check_space(Path(root).absolute(), sum(s.need for s in shares.values()),
                sum(s.share_bytes for s in shares.values()), volume, disk_free)
    results: dict[str, DownloadResult] = {}
    for name, share in shares.items():
        results[name] = fetch(share, store=store, config=config, progress=progress,
                              log=(lambda line, n=name: say(f"[{n}] {line}")), fsync=fsync, label=name,
                              started=started if not results else None)
    return results
