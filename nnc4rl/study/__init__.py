"""Layer 4, run folders -> tidy tables -> figures and readings.

Owns: the file-only reader of a run store (:mod:`.results`: no gymnasium, SB3 or MuJoCo import),
statistics at few seeds (:mod:`.stats`), verdicts and the sentences notebooks print
(:mod:`.readings`), the paper's claims put to the test (:mod:`.claims`), figures
(:mod:`.plots`), the README's results block (:mod:`.report`) and the closed-loop table of every
stored integer policy (:mod:`.closed_loop`).

May import: :mod:`nnc4rl.core`, :mod:`nnc4rl.compress`, :mod:`nnc4rl.export`, :mod:`nnc4rl.runs`.
"""
