"""``channels validate JOB.json``: would SageMaker accept this job? With ``--local``: would ``channels run``?

The default verdict checks the job against the SageMaker API model that
botocore ships, plus our documented stricter rules (docs/errors.md); the
local verdict is what ``channels run`` accepts, with the local extensions it
would use listed as notes. Exit status, as for every command (README, "Exit
status"): 0 valid; 1 invalid, every problem on stderr, one line each, with its
field path; 2 the file is missing, unreadable or not a JSON object (one line).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping

from channels.errors import SpecError
from channels.spec import Job
from channels.spec.jsonfile import read_job_file
from channels.spec.problems import summary
from channels.spec.verdict import ROOT_OF, local_notes, sagemaker_verdict

NAME = "validate"
HELP = ("Check a training-job definition (TrainingJobDefinition or CreateTrainingJob JSON) against SageMaker's "
        "API model, or with --local against what channels run accepts.")
MAX_NOTES = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", metavar="JOB.json", help="the job definition, in either JSON shape")
    parser.add_argument("--local", action="store_true",
                        help="judge what `channels run` accepts instead of SageMaker, and list the local "
                             "extensions the job uses (fsspec URLs, defaults filled in, keys ignored) as notes")
    parser.add_argument("--json", action="store_true",
                        help="on success, print the normalised job (TrainingJobDefinition shape) instead of a summary")


def run(args: argparse.Namespace) -> int:
    data = read_job_file(args.job)
    verdict = sagemaker_verdict(data)
    job, refusal = _local(data, args.job)
    if args.local and refusal is not None:
        raise refusal
    if not args.local and not verdict.ok:
        raise SpecError(summary(verdict.problems, f"job definition {args.job}"), problems=verdict.problems,
                        path=str(args.job), more=verdict.more)
    if args.json:
        if job is None:
            raise refusal  # type: ignore[misc]  # the normalised form is channels run's
        print(json.dumps(job.to_dict("definition"), indent=2))
        return 0
    who = ("channels run accepts this job:" if args.local
           else f"SageMaker's API model accepts this {ROOT_OF[verdict.shape]}:")
    print(f"OK: {who} {_channels(data, verdict.shape)}")
    if args.local:
        notes = local_notes(verdict)
        for path, note in notes[:MAX_NOTES]:
            print(f"note: {path or '(top level)'}: {note}")
        if len(notes) > MAX_NOTES:
            print(f"note: and {len(notes) - MAX_NOTES} more note(s)")
    elif refusal is not None:
        print(f"note: channels run would refuse it ({len(refusal.problems)} problem(s)): "
              f"{refusal.problems[0][0] or '(top level)'}: {refusal.problems[0][1]}; see channels validate --local")
    return 0


def _local(data: dict, path: str) -> tuple[Job | None, SpecError | None]:
    """The job as channels run reads it, or why it would refuse it."""
    try:
        return Job.from_dict(data), None
    except SpecError as exc:
        return None, SpecError(summary(exc.problems, f"job definition {path}"), problems=exc.problems, path=str(path))


def _channels(data: Mapping, shape: str) -> str:
    """"2 channel(s) (train: File, eval: Pipe)" from the JSON, each with its effective input mode."""
    holder = data.get("AlgorithmSpecification") if shape == "request" else data
    job_mode = holder.get("TrainingInputMode") if isinstance(holder, Mapping) else None
    channels = [c for c in data.get("InputDataConfig") or () if isinstance(c, Mapping)]
    modes = ", ".join(f"{c.get('ChannelName')}: {c.get('InputMode') or job_mode}" for c in channels)
    return f"{len(channels)} channel(s) ({modes})"
