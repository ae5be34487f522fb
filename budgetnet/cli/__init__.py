"""The ``budgetnet`` command. Each subcommand lives in its own module of this package and
registers itself through :data:`COMMANDS`; shared helpers are in :mod:`budgetnet.cli.common`.

Example:
    >>> from budgetnet.cli import main
    >>> main(["show", "A", "--json"]) == 0  # doctest: +ELLIPSIS
    {...
    True
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import warnings
from typing import Sequence

from budgetnet import __version__
from budgetnet.cli import confirm, export, latency, proxy, recover, results, search, show, train, variants
from budgetnet.errors import BudgetNetError

#: Subcommand modules; each has ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = [show, search, confirm, results, export, recover, train, latency, variants, proxy]


def make_parser() -> argparse.ArgumentParser:
    """The ``budgetnet`` argument parser, one sub-parser per module of :data:`COMMANDS`.

    Example:
        >>> make_parser().parse_args(["show", "A"]).spec
        'A'
    """
    parser = argparse.ArgumentParser(
        prog="budgetnet",
        description=(
            "CNN architecture search under a time budget, after He & Sun, 'Convolutional Neural "
            "Networks at Constrained Time Cost' (CVPR 2015). Costs are Eqn. (1): conv multiply-adds "
            "(MACs) per image."
        ),
    )
    parser.add_argument("--version", action="version", version=f"budgetnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(
            command.NAME,
            help=command.HELP.replace("%", "%%"),  # argparse formats help with %: "95% CIs" must stay text
            description=command.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``budgetnet`` command line; returns the exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a resume hint repeats
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, args.command)
            return args.run(args)
    except BudgetNetError as error:
        print(f"budgetnet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `budgetnet variants A --json | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print(f"budgetnet {args.command}: interrupted", file=sys.stderr)
        return 130


def _show_warning(command, message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line on stderr, like the errors (no source line)."""
    print(f"budgetnet {command}: warning: {message}", file=sys.stderr)
