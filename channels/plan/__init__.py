"""The job plan: every channel listed once, written to a file, read by every host with one GET.

* :mod:`~channels.plan.model`: :class:`JobPlan`, :func:`make_plan`, the checks against a job;
* :mod:`~channels.plan.parquet`: the plan file (Parquet through pyarrow), written and read;
* :mod:`~channels.plan.use`: a plan (a URL or one already read) as a channel's listing.
"""

from channels.plan.model import (
    PLAN_FORMAT,
    PLAN_VERSION,
    JobPlan,
    PlanError,
    PlannedChannel,
    channel_entry,
    make_plan,
    stale_plan_hint,
)
from channels.plan.parquet import plan_bytes, plan_from_bytes, read_plan, write_plan
from channels.plan.use import listing_from, load_plan

__all__ = [
    "PLAN_FORMAT", "PLAN_VERSION", "JobPlan", "PlanError", "PlannedChannel", "channel_entry", "listing_from",
    "load_plan", "make_plan", "plan_bytes", "plan_from_bytes", "read_plan", "stale_plan_hint", "write_plan",
]
