"""``python -m nnc4rl.profiles NAME [NAME ...]``: validate profiles, one line each.

Prints ``profile NAME: R runs, S env steps`` for a valid profile; for a bad one the single
:class:`~nnc4rl.core.config.ConfigError` line on stderr and exit status 2 (``make reproduce`` runs this
before anything else, so a typo costs nothing). A profile is checked as the sweep checks it
(:func:`nnc4rl.runs.sweep.tasks_of`: every run resolved, its overrides checked against SB3), so
what passes here is what a sweep accepts.
"""

from __future__ import annotations

import sys

from nnc4rl.core.config import ConfigError
from nnc4rl.runs.profiles import load_profile, profile_names
from nnc4rl.runs.sweep import tasks_of


def main(argv: list[str]) -> int:
    """Validate the profiles named in ``argv`` (all of them when empty); returns the exit status."""
    try:
        for name in argv or profile_names():
            prof = load_profile(name)
            tasks_of(name)  # the sweep's own validation of every run
            print(f"profile {prof.name}: {prof.n_runs} runs, {prof.train_steps:,} env steps")
    except ConfigError as err:
        print(f"nnc4rl profiles: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
