"""Layer 3, profile -> run -> run folder: training runs and the store that keeps them.

Owns: what defines a run (:mod:`.spec`), training it in stages with paired evaluation and
checkpoints (:mod:`.runner`, :mod:`.evaluation`, :mod:`.checkpoint`), writing and checking its
folder (:mod:`.summary`, :mod:`.schema`, :mod:`.fixtures`), the platform record of a run
(:mod:`.numerics`), the run store and its per-run locks (:mod:`.store`, :mod:`.lock`), reproduction profiles (:mod:`.profiles`,
reading ``nnc4rl/profiles/*.yml``) and sweeps over them, local or on Ray (:mod:`.sweep`).

May import: :mod:`nnc4rl.core`, :mod:`nnc4rl.compress`, :mod:`nnc4rl.export` (a run keeps its
compressed network as the deployment artifact ``policy.npz``).
"""
