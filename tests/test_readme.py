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
    assert (tmp_path / "pendulum_90_int8.zip").exists()
    assert namespace["plan"].final_sparsity == 0.9
