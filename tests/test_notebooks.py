"""Notebooks open on the shipped study, and executed copies change only with their results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nnc4rl.study.notebooks import INJECTED_TAG, strip_volatile

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED = sorted((ROOT / "notebooks" / "executed").glob("*/*.ipynb"))


def _parameters(path: Path, env: dict[str, str]) -> dict:
    (cell,) = [c for c in json.loads(path.read_text())["cells"]
               if "parameters" in c["metadata"].get("tags", [])]  # fmt: skip
    code = "".join(cell["source"])
    script = f"import json\n{code}\nprint(json.dumps({{k: v for k, v in dict(globals()).items() if k in ('profile', 'train_missing')}}))"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return json.loads(out)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebook_opens_on_mini_and_the_tests_run_smoke(path):
    env = {k: v for k, v in os.environ.items() if k != "NNC4RL_NOTEBOOK_PROFILE"}
    opened = _parameters(path, env)
    assert opened["profile"] == "mini" and opened.get("train_missing", False) is False
    tested = _parameters(path, env | {"NNC4RL_NOTEBOOK_PROFILE": "smoke"})
    assert tested["profile"] == "smoke" and tested.get("train_missing", True) is True
    assert "NNC4RL_NOTEBOOK_PROFILE=smoke" in (ROOT / "Makefile").read_text()


TINY = {
    "cells": [
        {"cell_type": "code", "id": "params", "metadata": {"tags": ["parameters"]},
         "execution_count": None, "outputs": [], "source": "x = 1"},
        {"cell_type": "code", "id": "work", "metadata": {}, "execution_count": None,
         "outputs": [], "source": "print(x * 2)"},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}  # fmt: skip


def test_two_executions_of_a_notebook_give_identical_bytes(tmp_path):
    source = tmp_path / "tiny.ipynb"
    source.write_text(json.dumps(TINY))
    texts = []
    for name in ("a.ipynb", "b.ipynb"):
        out = tmp_path / name
        subprocess.run([sys.executable, "-m", "papermill", "--kernel", "python3", "-p", "x", "21",
                        str(source), str(out)], check=True, capture_output=True)  # fmt: skip
        raw = out.read_text()
        subprocess.run([sys.executable, "-m", "nnc4rl.study.notebooks", str(out)], check=True)
        texts.append(out.read_text())
    assert "start_time" in raw  # papermill wrote volatile metadata ...
    assert texts[0] == texts[1]  # ... which is gone
    nb = nbformat.reads(texts[0], as_version=4)
    assert nb.cells[1]["id"] == INJECTED_TAG and "x = 21" in nb.cells[1].source
    assert nb.cells[2].outputs[0]["text"] == "42\n"
    assert nb.metadata["papermill"] == {"parameters": {"x": 21}}


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_executed_notebooks_carry_no_volatile_metadata(path):
    text = path.read_text()
    nb = nbformat.reads(text, as_version=4)
    assert nbformat.writes(strip_volatile(nbformat.reads(text, as_version=4))) + "\n" == text
    assert nb.metadata["papermill"]["parameters"]["profile"] == path.parent.name


def test_stream_chunks_are_merged_as_the_kernel_splits_them_by_timing():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1); print(2)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="2\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="w\n")]  # fmt: skip
    nb.cells.append(cell)
    outs = strip_volatile(nb).cells[0].outputs
    assert [(o.name, o.text) for o in outs] == [("stdout", "1\n2\n"), ("stderr", "w\n")]
