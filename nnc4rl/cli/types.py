"""argparse pieces every subcommand shares: one error line and exit status 2 on bad input."""

from __future__ import annotations

import argparse

from nnc4rl.core.config import ConfigError, Parser, check_bits, check_sparsity

__all__ = ["Parser", "bits", "bounded_int", "fraction", "positive_float", "positive_int"]


def fraction(text: str) -> float:
    try:
        return check_sparsity(float(text))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in [0, 1)") from None


def bits(text: str) -> int:
    try:
        return check_bits(int(text))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer in 2..8") from None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0")
    return value


def bounded_int(minimum: int, maximum: int):
    """argparse type: an integer in ``minimum..maximum`` (a bound keeps a typo from asking for
    ``10**11`` threads or processes)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer in {minimum}..{maximum}")
        return value

    return parse
