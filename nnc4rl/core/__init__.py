"""Layer 0, what every step of the data flow shares.

Owns: errors and input checks, hyperparameter defaults and overrides (:mod:`.config`, reading
``nnc4rl/hyperparams/``), atomic file writing (:mod:`.atomic`), the signatures of the pickle-based files this machine
wrote (:mod:`.trust`), and the environments with their
paired evaluation episodes (:mod:`.envs`).

May import: nothing of nnc4rl. Importing it costs nothing (gymnasium and SB3 load inside the
functions that need them).
"""

__version__ = "0.1.0"
