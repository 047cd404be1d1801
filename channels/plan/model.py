"""A job plan: every channel of a job listed once, pinned, and checked against the job that uses it.

Each host of a job used to list the whole source by itself: N hosts, N
listings, and hosts that list at different moments may see different
objects. A plan is made once (:func:`make_plan`), written to a file
(:mod:`channels.plan.parquet`) and read by every host with one GET; each
host then plans every epoch from it exactly as from its own listing. The
ETags it pins are sent with every read (``If-Match``), so an object changed
after the plan fails the read, naming the object, instead of mixing versions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from channels.errors import ChannelsError, ObjectChangedError
from channels.listing import ListConfig, Listing, list_prefix, list_source
from channels.listing.refs import S3_PREFIX
from channels.store import Store

#: The plan file's format version; a reader refuses newer ones.
PLAN_VERSION = 1
#: What every plan says it is (in the Parquet file's metadata).
PLAN_FORMAT = "channels-plan"
REMAKE = "make it again: channels plan JOB.json --out URL"


class PlanError(ChannelsError, ValueError):
    """A plan that cannot be used: not a plan, a newer version, or made for another job or source."""


@dataclass(frozen=True)
class PlannedChannel:
    """One channel as the plan pinned it.

    Attributes:
        name: ChannelName ("" for a bare source).
        uri: S3Uri listed.
        data_type: S3Prefix | ManifestFile | AugmentedManifestFile.
        attribute_names: the augmented manifest's attributes.
        distribution: S3DataDistributionType as the job gave it.
        shuffle_seed: ShuffleConfig's seed, or None.
        listing: the objects, in listing order.
    """

    name: str
    uri: str
    data_type: str = S3_PREFIX
    attribute_names: tuple[str, ...] = ()
    distribution: str = "FullyReplicated"
    shuffle_seed: int | None = None
    listing: Listing = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def describe(self) -> dict[str, Any]:
        """What the plan promises about the channel (everything but the objects)."""
        return {"name": self.name, "uri": self.uri, "data_type": self.data_type,
                "attribute_names": list(self.attribute_names), "distribution": self.distribution,
                "shuffle_seed": self.shuffle_seed}


@dataclass(frozen=True)
class JobPlan:
    """Every channel of a job, listed once.

    Attributes:
        channels: the planned channels, in the job's order.
        job_name: the job's TrainingJobName, if it had one.
        created: when the listing was made (UTC, ISO 8601).
        url: where the plan was read from (None when made in this process).
        version: the file format's version.
    """

    channels: tuple[PlannedChannel, ...]
    job_name: str | None = None
    created: str = ""
    url: str | None = None
    version: int = PLAN_VERSION

    @property
    def label(self) -> str:
        return f"plan {self.url}" if self.url else "the plan"

    def channel(self, name: str) -> PlannedChannel:
        """The planned channel called ``name``.

        Raises:
            PlanError: no such channel; the message lists those planned.
        """
        for c in self.channels:
            if c.name == name:
                return c
        raise PlanError(f"{self.label} has no channel {name!r} (it has: "
                        f"{', '.join(repr(c.name) for c in self.channels) or 'none'}); {REMAKE}",
                        channel=name, plan=self.url)

    def for_source(self, uri: str, data_type: str = S3_PREFIX, attribute_names: Sequence[str] = (),
                   name: str = "") -> Listing:
        """The listing of a channel, found by name (when given) or by its source, checked against it.

        Raises:
            PlanError: nothing planned for it, or the planned source differs.
        """
        if name:
            c = self.channel(name)
        else:
            matches = [c for c in self.channels if c.uri == uri]
            if not matches:
                raise PlanError(f"{self.label} lists no channel of source {uri} (it lists: "
                                f"{', '.join(c.uri for c in self.channels)}); {REMAKE}", url=uri, plan=self.url)
            c = matches[0]
        wanted = {"S3Uri": uri, "S3DataType": data_type, "AttributeNames": list(attribute_names)}
        planned = {"S3Uri": c.uri, "S3DataType": c.data_type, "AttributeNames": list(c.attribute_names)}
        diffs = [f"{k} is {wanted[k]!r} here, {planned[k]!r} in the plan" for k in wanted if wanted[k] != planned[k]]
        if diffs:
            raise PlanError(f"{self.label} does not match channel {c.name or uri!r}: {'; '.join(diffs)}; {REMAKE}",
                            channel=c.name, plan=self.url)
        return c.listing

    def check(self, job: Any) -> None:
        """Refuse a plan made for another job: another channel set, source, distribution or seed.

        Every difference is named at once.

        Raises:
            PlanError: the plan does not match ``job``.
        """
        diffs = []
        planned = {c.name: c for c in self.channels}
        names = [ch.name for ch in job.channels]
        for name in names:
            if name not in planned:
                diffs.append(f"channel {name!r} is in the job but not in the plan")
        for name in planned:
            if name not in names:
                diffs.append(f"channel {name!r} is in the plan but not in the job")
        for ch in job.channels:
            if ch.name not in planned:
                continue
            mine, theirs = channel_entry(ch).describe(), planned[ch.name].describe()
            for field_name, api in _FIELDS.items():
                if mine[field_name] != theirs[field_name]:
                    diffs.append(f"channel {ch.name!r}: {api} is {mine[field_name]!r} in the job, "
                                 f"{theirs[field_name]!r} in the plan")
        if diffs:
            raise PlanError(f"{self.label} was made for another job: {'; '.join(diffs)}; {REMAKE}",
                            plan=self.url, differences=diffs)


_FIELDS = {"uri": "S3Uri", "data_type": "S3DataType", "attribute_names": "AttributeNames",
           "distribution": "S3DataDistributionType", "shuffle_seed": "ShuffleConfig.Seed"}


def channel_entry(channel: Any, listing: Listing | None = None) -> PlannedChannel:
    """A job's :class:`channels.spec.Channel` as the plan describes it."""
    ds = channel.data_source
    return PlannedChannel(channel.name, ds.s3_uri, ds.s3_data_type, tuple(ds.attribute_names),
                          ds.distribution or "FullyReplicated", channel.shuffle_seed, listing)


def make_plan(job: Any, *, store: Store | None = None, config: ListConfig | None = None,
              progress: bool | None = None) -> JobPlan:
    """List every channel of ``job`` once (a source shared by two channels once in all).

    Raises:
        SourceNotFoundError, EmptyChannelError, ManifestError, AccessDeniedError:
            as listing a channel raises them.
    """
    store = store or Store.from_env()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    listed: dict[tuple, Listing] = {}
    channels = []
    for ch in job.channels:
        ds = ch.data_source
        source = (ds.s3_uri, ds.s3_data_type, tuple(ds.attribute_names))
        if source not in listed:
            if ds.s3_data_type == S3_PREFIX:
                listed[source] = list_prefix(ds.s3_uri, store=store, config=config, progress=progress)
            else:
                listed[source] = list_source(ds.s3_uri, ds.s3_data_type, attribute_names=ds.attribute_names,
                                             store=store)
        channels.append(channel_entry(ch, listed[source]))
    return JobPlan(tuple(channels), job.training_job_name, created)


@contextlib.contextmanager
def stale_plan_hint(plan: JobPlan | str | None) -> Iterator[None]:
    """Add to an :class:`ObjectChangedError` that the plan predates the change (and how to remake it)."""
    try:
        yield
    except ObjectChangedError as exc:
        if plan is None:
            raise
        where = plan.url if isinstance(plan, JobPlan) else plan
        raise ObjectChangedError(f"{exc}: it changed after plan {where} was made; {REMAKE}",
                                 **exc.details, plan=where) from exc
