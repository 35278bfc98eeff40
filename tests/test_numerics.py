"""The floating-point fingerprint a run records tells a machine that computes the same bits
from one that does not."""

import json
import os
import subprocess
import sys

from nnc4rl.runs.numerics import float_fingerprint

PRINT = "import json; from nnc4rl.runs.numerics import float_fingerprint as f; print(json.dumps(f({env!r})))"


def _in_subprocess(env_id: str, **env: str) -> dict:
    code = PRINT.format(env=env_id)
    out = subprocess.run([sys.executable, "-c", code], env=os.environ | env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def test_the_fingerprint_is_the_same_in_every_process_of_a_machine():
    here = float_fingerprint("HalfCheetah-v4")
    assert set(here) == {"torch_mlp", "torch_conv", "mujoco"}
    assert float_fingerprint("HalfCheetah-v4") == here
    assert _in_subprocess("HalfCheetah-v4") == here
    assert set(float_fingerprint("PongNoFrameskip-v4")) == {"torch_mlp", "torch_conv"}


def test_another_blas_kernel_changes_the_fingerprint():
    # MKL's "compatible" code path sums in another order, as another CPU's kernel would;
    # a policy replayed under it scores other HalfCheetah returns than the run reported
    here = float_fingerprint("HalfCheetah-v4")
    other = _in_subprocess("HalfCheetah-v4", MKL_CBWR="COMPATIBLE")
    assert other["torch_mlp"] != here["torch_mlp"]
    assert other["mujoco"] == here["mujoco"]  # the simulator does not use torch's BLAS
