"""``channels validate JOB.json``: check a job definition against the documented limits.

Exit status: 0 valid; 1 the definition breaks limits (every problem is printed
to stderr, one per line, with its field path); 2 the file is missing,
unreadable or not JSON (one line, with line and column for JSON).
"""

from __future__ import annotations

import argparse
import json
import sys

from channels.errors import ChannelsError, SpecError
from channels.spec import Job

NAME = "validate"
HELP = "Check a training-job definition (TrainingJobDefinition or CreateTrainingJob JSON) against the documented limits."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", metavar="JOB.json", help="the job definition, in either JSON shape")
    parser.add_argument("--json", action="store_true",
                        help="on success, print the normalised job (TrainingJobDefinition shape) instead of a summary")


def run(args: argparse.Namespace) -> int:
    try:
        job = Job.load(args.job)
    except SpecError as exc:
        if not exc.problems:  # unreadable or malformed: cli.main prints one line, exit 2
            raise
        print(exc, file=sys.stderr)
        return 1
    except ChannelsError:  # no such file: cli.main prints one line, exit 2
        raise
    except OSError as exc:  # e.g. a directory, no permission
        print(f"channels {NAME}: error: {args.job}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(job.to_dict("definition"), indent=2))
    else:
        modes = ", ".join(f"{c.name}: {job.mode_of(c)}" for c in job.channels)
        print(f"OK: {len(job.channels)} channel(s) ({modes})")
    return 0
