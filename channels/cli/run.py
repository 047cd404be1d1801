"""``channels run JOB.json -- COMMAND ...``: run a training script as a training job would.

``channels run JOB.json --entry-point train.py`` runs a framework script as a
SageMaker framework container does: in its folder, the job's hyperparameters
as ``--name value`` arguments. ``--mount-namespace`` gives each host's script
a mount namespace of its own, where its root is ``/opt/ml`` and
``algo-1..N`` resolve (root, or unprivileged user namespaces; without them it
says what it cannot do and runs with the roots' own paths).

The command sees SageMaker's container layout under ``--root`` (default
``./.channels-run/<job name>``; SageMaker's is ``/opt/ml``), with the
``SM_*`` environment, every channel served in its input mode (Pipe FIFOs,
File downloads, FastFile mounts) and the StoppingCondition enforced. With
``--hosts N`` (default: the job's InstanceCount) N hosts run at once, each
with its own root ``DIR/algo-k``, identity and share. At the end every
host's ``model/`` is uploaded as ``<S3OutputPath>/<job name>/output/model.tar.gz``.
With several hosts every channel is listed once and the hosts read that job
plan (``DIR/.channels/plan.parquet``) instead of listing; ``--plan URL`` hands
them one made before (``channels plan``), ``--no-plan`` lets each list itself.

Exit status: 0 completed; the script's own status when it failed (128+N
when a signal ended it); 124 stopped at MaxRuntimeInSeconds (the script got
SIGTERM and ended within the grace period); 137 the script ignored SIGTERM
and got SIGKILL after the grace period; 130 interrupted (Ctrl-C, or SIGTERM to
``channels run``); 2 the job could not run (bad job, a channel that could
not be served, a failed upload).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from channels.cli.args import add_cache_arguments, add_endpoint_argument, cache_config
from channels.cli.plan import add_plan_argument
from channels.run.runner import DEFAULT_GRACE_SECONDS, Run, RunOptions, install_signal_handlers
from channels.spec import Job

NAME = "run"
HELP = ("Run a training command as a training job would: the /opt/ml layout and SM_* environment, "
        "channels served in their input modes, MaxRuntimeInSeconds enforced, model.tar.gz uploaded.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    _add_options(p)
    p.add_argument("job_and_command", nargs=argparse.REMAINDER, metavar="JOB.json [OPTIONS] [-- COMMAND ...]",
                   help="the job definition (either JSON shape), then the training command after -- "
                        "(or --entry-point SCRIPT)")


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", metavar="DIR", type=Path,
                   help="what /opt/ml is for the script; with several hosts each gets DIR/algo-k "
                        "(default: ./.channels-run/<job name>)")
    p.add_argument("--hosts", type=int, metavar="N",
                   help="hosts to run at once (default: the job's ResourceConfig.InstanceCount)")
    p.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS, metavar="S",
                   help="seconds between SIGTERM and SIGKILL when the job is stopped (default: %(default)g, "
                        "as SageMaker)")
    p.add_argument("--max-runtime-seconds", type=float, metavar="S",
                   help="override the job's StoppingCondition.MaxRuntimeInSeconds")
    p.add_argument("--job-name", help="TrainingJobName (default: the job's, else channels-YYYYmmdd-HHMMSS-xxxx)")
    p.add_argument("--pipe-epochs", type=int, metavar="K",
                   help="epochs each Pipe channel serves (default: until the script ends, as SageMaker)")
    p.add_argument("--no-upload", action="store_true",
                   help="keep model.tar.gz and output.tar.gz in DIR/.channels instead of uploading them")
    add_plan_argument(p)
    p.add_argument("--no-plan", action="store_true",
                   help="with several hosts, let each host list the store itself (default: list every channel "
                        "once and hand that plan to the hosts)")
    p.add_argument("--entry-point", type=Path, metavar="SCRIPT",
                   help="run SCRIPT as a framework container does: in its folder, with the hyperparameters "
                        "as --name value arguments (.py with this Python, .sh with /bin/sh)")
    p.add_argument("--mount-namespace", action="store_true",
                   help="each host's script in a mount namespace of its own: its root bound on /opt/ml, "
                        "algo-1..N in a private /etc/hosts, host name algo-K (needs root or user namespaces)")
    add_cache_arguments(p)  # Pipe and FastFile channels; each host gets DIR/algo-k with the whole SIZE
    add_endpoint_argument(p)


def _split(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """JOB.json and the command from what follows the options; options between them parsed into ``args``.

    argparse cannot tell options after a positional from the command's own,
    so the words are split at the first ``--`` (without one: JOB.json, then
    the command, unless an option follows JOB.json: then no command) and the
    part before it parsed again.
    """
    words = list(args.job_and_command)
    if "--" in words:
        cut = words.index("--")
        head, command = words[:cut], words[cut + 1:]
    elif len(words) > 1 and words[1].startswith("-"):
        head, command = words, []
    else:
        head, command = words[:1], words[1:]
    inner = argparse.ArgumentParser(prog="channels run", add_help=False)
    _add_options(inner)
    inner.add_argument("job", metavar="JOB.json", nargs="?")
    inner.parse_args(head, namespace=args)
    return args.job, command


def run(args: argparse.Namespace) -> int:
    job_path, command = _split(args)
    if job_path is None:
        print("channels run: error: give a job definition: channels run JOB.json [OPTIONS] -- COMMAND ...",
              file=sys.stderr)
        return 2
    if not command and args.entry_point is None:
        print("channels run: error: no command: give --entry-point train.py, or the command after --, e.g. "
              "channels run job.json -- python train.py", file=sys.stderr)
        return 2
    try:
        cache = cache_config(args, NAME)
    except ValueError as exc:
        print(f"channels run: error: {exc}", file=sys.stderr)
        return 2
    job = Job.load(job_path)
    options = RunOptions(job, tuple(command), root=args.root, hosts=args.hosts, job_name=args.job_name,
                         grace_seconds=args.grace_seconds, max_runtime_seconds=args.max_runtime_seconds,
                         endpoint_url=args.endpoint_url, pipe_epochs=args.pipe_epochs,
                         upload=not args.no_upload, plan=args.plan, shared_plan=not args.no_plan,
                         entry_point=args.entry_point, mount_namespace=args.mount_namespace, cache=cache)
    runner = Run(options)
    previous = install_signal_handlers(runner)
    try:
        hosts = len(runner.layouts)
        where = ", each in its own mount namespace on /opt/ml" if runner.namespaced else ""
        print(f"channels run: {runner.job_name}: {hosts} host(s) under {runner.root}{where}, "
              f"MaxRuntimeInSeconds {options.max_runtime:g}", file=sys.stderr, flush=True)
        if runner.entry is not None:
            print(f"channels run: {' '.join(runner.command)} (in {runner.cwd})", file=sys.stderr, flush=True)
        for line in runner.warnings:
            print(f"channels run: warning: {line}", file=sys.stderr)
        result = runner.execute()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if result.model_url:
        print(f"channels run: model: {result.model_url} ({len(result.model.members)} file(s))", file=sys.stderr)
    elif result.model is not None:
        print(f"channels run: model: {result.model.path} (not uploaded)", file=sys.stderr)
    if result.model is not None and result.model.clashes:
        print(f"channels run: warning: several hosts wrote {', '.join(result.model.clashes[:10])} in model/; "
              "the lowest-numbered host's copy was kept", file=sys.stderr)
    print(f"channels run: {result.job_name}: {result.message} (exit {result.exit_code})", file=sys.stderr)
    return result.exit_code
