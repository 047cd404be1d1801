"""The ``channels`` command: the parser and the one place errors become exit statuses.

Each subcommand is a module in this package with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; ``COMMANDS`` lists them in
the order ``--help`` shows. Only the module of the command given is imported
(``channels validate`` never loads numpy or fsspec); ``--help`` imports all.

Exit status, for every command (README, "Exit status"):

* 0 (EXIT_OK): done; the job is valid.
* 1 (EXIT_INVALID): the job definition is invalid; every problem is printed
  to stderr, one line each (at most MAX_PROBLEM_LINES), with its field path.
* 2 (EXIT_ERROR): a usage error (argparse's), or input that could not be
  read (a missing file, malformed JSON), or any other error this library
  raises on purpose (:class:`channels.errors.ChannelsError`): one line, no
  traceback.
* 130 (EXIT_INTERRUPTED): interrupted (Ctrl-C).

``channels run`` adds its own: the script's status, 124 and 137.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

from channels import __version__
from channels.errors import ChannelsError, SpecError

COMMANDS = [
    "validate",
    "shard_report",
    "plan",
    "demo",
    "download",
    "mount",
    "run",
    "pipe",
    "bench",
]
EXIT_OK, EXIT_INVALID, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_PROBLEM_LINES = 50
"""Problems printed for one invalid job; a last line counts the rest, so output stays bounded."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only`` (a module name from COMMANDS), with that subcommand alone."""
    parser = argparse.ArgumentParser(
        prog="channels",
        description="Training-job input channels from object storage: validate, plan, stream, download, mount.",
    )
    parser.add_argument("--version", action="version", version=f"channels {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if only is None else [only]:
        module = importlib.import_module(f"channels.cli.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _exit_at_once=getattr(module, "EXIT_AT_ONCE", False))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; its exit status. ``argv`` None: this process is the command (``sys.argv``).

    As the program, a command whose module sets ``EXIT_AT_ONCE`` (``download``)
    ends the process as soon as it returns: see :func:`exit_at_once`.
    """
    program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    status = _run(args, program)
    if program and args._exit_at_once:
        exit_at_once(status)
    return status


def exit_at_once(status: int) -> None:
    """End this process with ``status`` now: flush the logs and the output, skip the teardown.

    For a command that has finished all its work (files renamed, journal
    written, temporary files removed, its threads idle): the interpreter's
    teardown would only join idle threads and free what the kernel frees at
    exit anyway, about a hundredth of a second of a ``channels download``
    timed against s5cmd from exec to exit. atexit handlers are skipped: the
    commands that opt in register none that matter, and logging is shut
    down here as its own handler would.
    """
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(status)


def _run(args: argparse.Namespace, program: bool) -> int:
    try:
        return int(args._run(args) or 0)
    except SpecError as exc:
        if not exc.problems:  # unreadable or malformed: one line
            print(f"channels {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        _print_problems(args.command, exc)
        return EXIT_INVALID
    except ChannelsError as exc:
        print(f"channels {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"channels {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `channels shard-report ... | head`
        return EXIT_OK
    finally:
        if program:
            # The process ends next. Its last garbage collection would walk every object made so
            # far (30 ms of a download's exit here) to find cycles about to be freed anyway:
            # freezing them skips that walk. Teardown, atexit and flushing run as usual.
            gc.freeze()


def _command_in(argv: list[str]) -> str | None:
    """The module of the subcommand named in argv, if it names one (the top level takes no valued options)."""
    for arg in argv:
        if not arg.startswith("-"):
            name = arg.replace("-", "_")
            return name if name in COMMANDS else None
    return None


def _print_problems(command: str, exc: SpecError) -> None:
    """One line per problem: ``channels validate: error: job.json: InputDataConfig[2].ChannelName: ...``."""
    where = f"{exc.details['path']}: " if exc.details.get("path") else ""
    prefix = f"channels {command}: error: {where}"
    problems = exc.problems
    for path, message in problems[:MAX_PROBLEM_LINES]:
        print(f"{prefix}{path or '(top level)'}: {message}", file=sys.stderr)
    rest = len(problems) - MAX_PROBLEM_LINES + int(exc.details.get("more") or 0)
    if rest > 0:
        print(f"{prefix}and {rest:,} more problem(s)", file=sys.stderr)
