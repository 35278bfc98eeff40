"""``python -m nnc4rl.report [PROFILE]``: the README's results block (:mod:`nnc4rl.study.report`)."""

import sys

from nnc4rl.study.report import main

if __name__ == "__main__":
    sys.exit(main())
