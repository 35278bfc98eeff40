"""``python -m nnc4rl.cli``: the ``nnc4rl`` command."""

import sys

from nnc4rl.cli import main

sys.exit(main())
