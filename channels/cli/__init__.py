"""The ``channels`` command line: a module per subcommand, ``main`` in :mod:`channels.cli.main`.

Each subcommand is a module of this package with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; shared arguments are in
:mod:`channels.cli.args`.
"""

from channels.cli.main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
