"""The README's Python example runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.xdist_group("e2e")
def test_readme_api_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Compressing your own SB3 agent") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    # what the example saved is the compressed network: its zeros and its int8 grid
    from nnc4rl import measure_model_zip

    measured = measure_model_zip(tmp_path / "pendulum_90_int8.zip", bits=8)
    assert measured["measured_sparsity"] >= 0.9 - 1e-3
    assert measured["quantization"]["max_offgrid"] < 1e-3
    assert namespace["restored"].num_timesteps == namespace["plan"].total_steps
