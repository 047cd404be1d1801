"""A plan, given as a URL or already read, as the listing of one channel."""

from __future__ import annotations

from typing import Any

from channels.listing import Listing
from channels.plan.model import JobPlan
from channels.plan.parquet import read_plan
from channels.store import Store


def load_plan(plan: JobPlan | str | Any, *, store: Store | None = None) -> JobPlan:
    """``plan`` itself when already read, else the plan at that URL or path (one GET)."""
    if isinstance(plan, JobPlan):
        return plan
    return read_plan(str(plan), store=store)


def listing_from(plan: JobPlan | Listing | str | Any, source: Any, *, store: Store | None = None) -> Listing:
    """The listing of ``source`` from ``plan``.

    ``source`` is an S3Prefix's URI, or anything with ``uri``, ``data_type``,
    ``attribute_names`` and ``name`` (:class:`channels.modes.pipe.PipeSource`).

    A :class:`Listing` is taken as it is; a plan is looked up by the
    channel's name when it has one, else by its source, and checked against it.

    Raises:
        PlanError: the plan has no such channel, or pins another source for it.
    """
    if isinstance(plan, Listing):
        return plan
    plan = load_plan(plan, store=store)
    if isinstance(source, str):  # an S3Prefix's URI
        return plan.for_source(source)
    return plan.for_source(source.uri, source.data_type, source.attribute_names, name=getattr(source, "name", ""))
