"""The default verdict against botocore's SageMaker model, judged by an oracle that shares no code with it.

The oracle (tests/apimodel_oracle.py) is botocore's own ParamValidator plus
the maximums, enums and patterns it leaves out, walked over botocore's Shape
objects. The corpus is built from the model: boundary values at each minimum
and maximum and one step past, every enum value and an unknown one, each
required member left out, wrong JSON types, an unknown member, and seeded
random valid jobs.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from apimodel_oracle import SEED_CASES, SERVICE, corpus, model_errors
from botocore.validate import ParamValidator

from channels.spec.problems import SHOW_MAX_CHARS
from channels.spec.seed_rules import SEED_RULES
from channels.spec.verdict import sagemaker_verdict

DOCS = Path(__file__).parent.parent / "docs" / "errors.md"


@pytest.fixture(scope="module")
def judged():
    """Every case of the corpus with both verdicts: (shape, label, job, oracle errors, our verdict)."""
    return [(shape, label, job, model_errors(job, shape), sagemaker_verdict(job, shape))
            for shape, label, job in corpus()]


def test_the_corpus_is_large_and_varied(judged):
    assert len(judged) >= 2000
    rejected = sum(1 for *_, errors, _ in judged if errors)
    assert 0.3 * len(judged) < rejected < 0.9 * len(judged), rejected
    kinds = Counter(label.rsplit(": ", 1)[-1].split(" ")[0] for _, label, *_ in judged)
    for kind in ("length", "enum", "value", "type", "without", "random"):
        assert any(k.startswith(kind) for k in kinds), kinds


def test_the_default_verdict_agrees_with_the_model(judged):
    differ = [(label, errors, verdict) for _, label, _, errors, verdict in judged if bool(errors) != (not verdict.ok)]
    agreement = 1 - len(differ) / len(judged)
    print(f"\ncorpus: {len(judged)} jobs, agreement {agreement:.2%} ({len(differ)} differ)")
    assert agreement >= 0.99
    for label, errors, verdict in differ:
        # The only differences: jobs the model accepts and our seed-backed rules refuse.
        assert not errors, (label, errors)
        assert verdict.findings and all(f.rule == "seed" for f in verdict.findings), (label, verdict.findings)
    refused_by_seed = {label.rsplit(": ", 1)[1] for label, _, _ in differ}
    assert refused_by_seed == {label for label, _, refused in SEED_CASES if refused}


def test_field_paths_agree_where_both_refuse(judged):
    both = [(errors, verdict) for *_, errors, verdict in judged if errors and not verdict.ok]
    same = sum(1 for errors, verdict in both
               if {_normal(p) for p, _ in errors} == {_normal(f.path) for f in verdict.findings if f.rule == "model"})
    print(f"\nfield paths identical in {same} of {len(both)} shared refusals")
    assert same == len(both)


def _normal(path: str) -> str:
    """One spelling of a path: ours (``HyperParameters["k"]``, long keys cut: ``["kkk…" (257 chars)]``)
    and botocore's (``.HyperParameters.k``, ``.HyperParameters (key: k)``)."""
    path = re.sub(r" \(key: (.*)\)$", r".\1", path.lstrip("."))
    path = re.sub(r'\["(.*?)…" \((\d+) chars\)\]', lambda m: f".{m[1]}<{m[2]}>", path)
    path = re.sub(r'\["(.*?)"\]', r".\1", path)
    return re.sub(r"\.([^.\[<]{61,})", lambda m: f".{m[1][:SHOW_MAX_CHARS]}<{len(m[1])}>", path)


def test_the_seed_rules_are_each_in_the_corpus_and_in_the_docs(judged):
    docs = DOCS.read_text()
    fired = Counter(f.check for *_, verdict in judged for f in verdict.findings if f.rule == "seed")
    for rule in SEED_RULES:
        assert f"`{rule.name}`" in docs, rule.name
        assert fired[rule.name] >= 1, (rule.name, fired)


def test_the_oracle_adds_what_paramvalidator_leaves_out():
    """botocore's ParamValidator checks no maximum, enum or pattern, and takes true for an integer."""
    job = {"TrainingInputMode": "Stream", "HyperParameters": {"k": "v" * 2501},
           "InputDataConfig": [{"ChannelName": "my data", "DataSource": {}} for _ in range(21)],
           "OutputDataConfig": {"S3OutputPath": "gs://b/"}, "ResourceConfig": {"InstanceCount": True},
           "StoppingCondition": {"MaxRuntimeInSeconds": 2**31}}
    root = SERVICE.shape_for("TrainingJobDefinition")
    assert not ParamValidator().validate(job, root).has_errors()
    paths = {p for p, _ in model_errors(job, "definition")}
    assert {".TrainingInputMode", ".HyperParameters.k", ".InputDataConfig", ".InputDataConfig[20].ChannelName",
            ".OutputDataConfig.S3OutputPath", ".ResourceConfig.InstanceCount",
            ".StoppingCondition.MaxRuntimeInSeconds"} <= paths
