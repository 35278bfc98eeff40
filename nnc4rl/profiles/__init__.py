"""Data: the reproduction profiles ``smoke.yml``, ``mini.yml``, ``paper.yml`` and the measured
speeds ``machine.yml``. Their loader and validator is :mod:`nnc4rl.runs.profiles`;
``python -m nnc4rl.profiles NAME`` checks one."""
