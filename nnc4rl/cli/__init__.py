"""The ``nnc4rl`` command: ``train``, ``compress``, ``export`` and ``sweep`` (``nnc4rl CMD --help``).

Layer 5, the top. Owns: argument parsing, one module per subcommand (:mod:`.train`,
:mod:`.compress`, :mod:`.export`, :mod:`.sweep`; shared argument types in :mod:`.types`); each calls the layer
that does the work. Bad input, and a file that cannot be written (read-only folder, full disk),
is one error line and exit status 2; Ctrl-C is one line and exit status 130.

May import: every layer; nothing below imports this package.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import sys
from collections.abc import Sequence

from nnc4rl.cli import compress, export, sweep, train
from nnc4rl.cli.types import Parser
from nnc4rl.core import __version__
from nnc4rl.core.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nnc4rl", description="Compress SB3 RL agents: pruning + QAT.")
    parser.add_argument("--version", action="version", version=f"nnc4rl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (train, compress, export, sweep):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nnc4rl`` command; returns the exit status (2 on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"nnc4rl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the machine, not the code: a read-only folder, a full disk, ...
        what = f" {err.filename!r}" if err.filename else ""
        reason = err.strerror or str(err) or type(err).__name__
        print(f"nnc4rl {args.command}: error: cannot write or read{what}: {reason}",
              file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:  # what was half-written is removed by the atomic writers
        print(f"nnc4rl {args.command}: interrupted", file=sys.stderr)
        _forget_unhandled_interrupt()
        return 130


def _forget_unhandled_interrupt() -> None:
    """Tell CPython the Ctrl-C was handled, so ``python -m nnc4rl.cli`` exits with 130.

    An interrupt that lands inside ``exec`` of a source string (``dataclasses`` does that while
    torch imports its lazy modules mid-run) sets CPython's "unhandled KeyboardInterrupt" flag even
    when the exception is caught; ``python -m`` then ends the process by SIGINT instead of with
    the status ``main`` returned. The flag is private, so where it is absent nothing is done.
    """
    with contextlib.suppress(AttributeError, ValueError):  # not CPython, or no such flag
        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0


if __name__ == "__main__":
    sys.exit(main())
