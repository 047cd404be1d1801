"""The two verdicts on a job: would SageMaker accept it, and would ``channels run``.

* :func:`sagemaker_verdict` (``channels validate``): the API model botocore
  ships, walked generically (:mod:`channels.spec.apicheck`), plus our
  documented stricter rules (:mod:`channels.spec.seed_rules`). A URL other than
  ``s3://`` or ``https://``, a member the API does not have, a required member
  left out: each is a finding, naming the field, its value and the limit.
* :func:`local_notes` (``channels validate --local``): for a job that
  :meth:`Job.from_dict <channels.spec.Job.from_dict>` accepts, the local
  extensions it relies on (fsspec URLs, defaults filled in, members ignored),
  one note each. ``Job.from_dict`` itself is the local verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from channels.spec.apicheck import Finding, Findings, check_shape
from channels.spec.job import ResourceConfig, StoppingCondition
from channels.spec.limits import SHAPES
from channels.spec.model import ROOTS, api_model
from channels.spec.problems import natural_key
from channels.spec.seed_rules import seed_findings

ROOT_OF = dict(zip(SHAPES, ROOTS, strict=True))
"""The model shape each JSON shape is checked against: definition -> TrainingJobDefinition, request ->
CreateTrainingJobRequest."""

_DEFAULTS = {"ResourceConfig": ResourceConfig().to_dict(), "StoppingCondition": StoppingCondition().to_dict()}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What SageMaker's API would say of a job.

    Attributes:
        shape: the JSON shape judged ("definition" or "request").
        findings: every reason it would refuse the job (at most MAX_FINDINGS), by path.
        more: findings beyond those kept.
    """

    shape: str
    findings: tuple[Finding, ...]
    more: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings and not self.more

    @property
    def problems(self) -> list[tuple[str, str]]:
        """(path, message) pairs, as SpecError carries them."""
        return [(f.path, f.message) for f in self.findings]


def shape_of(data: Mapping) -> str:
    """The JSON shape of a job: "request" when it has AlgorithmSpecification (as Job.from_dict reads it)."""
    return "request" if "AlgorithmSpecification" in data else "definition"


def sagemaker_verdict(data: object, shape: str | None = None) -> Verdict:
    """Would SageMaker's API accept this parsed job? The model's checks, then the seed rules.

    Args:
        data: the parsed JSON.
        shape: "definition" or "request"; None tells them apart as :func:`shape_of` does.
    """
    if shape is None:
        shape = shape_of(data) if isinstance(data, Mapping) else "definition"
    if shape not in ROOT_OF:
        raise ValueError(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}")
    out = Findings()
    check_shape(api_model(), data, ROOT_OF[shape], out)
    if isinstance(data, Mapping):
        for finding in seed_findings(data, shape):
            out.add(finding)
    findings = sorted(out.items, key=lambda f: natural_key(f.path))
    return Verdict(shape, tuple(findings), out.more)


def local_notes(verdict: Verdict) -> list[tuple[str, str]]:
    """What ``channels run`` does beyond the API, for a job it accepts: one (path, note) per finding.

    Args:
        verdict: the job's :func:`sagemaker_verdict`.
    """
    notes = []
    for f in verdict.findings:
        if f.check == "url":
            text = "an fsspec URL: channels run reads it; SageMaker reads only s3:// and https:// URIs"
        elif f.check == "required" and f.path in _DEFAULTS:
            shown = ", ".join(f"{k} {v}" for k, v in _DEFAULTS[f.path].items())
            text = f"missing: channels run uses {shown}; SageMaker requires it"
        elif f.check == "unknown":
            text = f"not in the API model ({f.shape} has no such member): channels run ignores it; SageMaker " \
                   "would refuse it"
        else:
            text = f"channels run accepts this; SageMaker would not: {f.message}"
        notes.append((f.path, text))
    if verdict.more:
        notes.append(("", f"and {verdict.more:,} more ways SageMaker's API would refuse this job"))
    return notes
