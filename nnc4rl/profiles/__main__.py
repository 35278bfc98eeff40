"""``python -m nnc4rl.profiles NAME [NAME ...]``: validate profiles, one line each.

Prints ``profile NAME: R runs, S env steps`` for a valid profile; for a bad one the single
:class:`~nnc4rl.core.config.ConfigError` line on stderr and exit status 2 (``make reproduce`` runs this
before anything else, so a typo costs nothing).
"""

from __future__ import annotations

import sys

from nnc4rl.core.config import ConfigError
from nnc4rl.runs.profiles import load_profile, profile_names


def main(argv: list[str]) -> int:
    """Validate the profiles named in ``argv`` (all of them when empty); returns the exit status."""
    try:
        for name in argv or profile_names():
            prof = load_profile(name)
            print(f"profile {prof.name}: {prof.n_runs} runs, {prof.train_steps:,} env steps")
    except ConfigError as err:
        print(f"nnc4rl profiles: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
