"""The ``channels`` command: the parser and the one place errors become exit statuses.

Each subcommand is a module in this package with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; ``COMMANDS`` lists them in
the order ``--help`` shows. Errors this library raises on purpose
(:class:`channels.errors.ChannelsError`) print as one line, no traceback.

Start-up: when the first argument names a subcommand, only that
subcommand's module is imported (``channels download`` never loads the
bench, the mount or Pipe mode: a tenth of a second of CPU at every start);
``channels --help`` and anything else build the whole parser.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys

from channels import __version__
from channels.errors import ChannelsError

COMMANDS = [
    "validate",
    "shard_report",
    "demo",
    "download",
    "mount",
    "run",
    "pipe",
    "bench",
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``channels`` parser: every subcommand, or only the module ``only`` (one of :data:`COMMANDS`)."""
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
        p.set_defaults(_run=module.run)
    return parser


def command_module(argv: list[str]) -> str | None:
    """The module of the subcommand ``argv`` starts with (``shard-report`` -> ``shard_report``), or None.

    A subcommand's ``NAME`` is its module's name with ``-`` for ``_``.
    """
    word = argv[0] if argv else ""
    return next((m for m in COMMANDS if m.replace("_", "-") == word), None)


def main(argv: list[str] | None = None) -> int:
    """Run a command; its exit status. ``argv`` None: this process is the command (``sys.argv``)."""
    program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=command_module(argv))
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ChannelsError as exc:
        print(f"channels {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"channels {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `channels shard-report ... | head`
        return 0
    finally:
        if program:
            # The process ends next. Its last garbage collection would walk every object made so
            # far (30 ms of a download's exit here) to find cycles about to be freed anyway:
            # freezing them skips that walk. Teardown, atexit and flushing run as usual.
            gc.freeze()
