"""The Makefile's promises: `make reproduce` (mini by default) or at paper never starts a long sweep
unless asked (TRAIN=True); `make test` keeps each xdist group on one worker."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _papermill_lines(*args: str) -> list[str]:
    out = subprocess.run(["make", "-n", "reproduce", *args], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    out = out.replace("\\\n", " ")  # join the recipe's continued lines
    return [line for line in out.splitlines() if "papermill" in line]


@pytest.mark.parametrize(
    "args, train",
    [((), "False"), (("PROFILE=smoke",), "True"), (("PROFILE=mini",), "False"),
     (("PROFILE=paper",), "False"), (("PROFILE=mini", "TRAIN=True"), "True")],
)  # fmt: skip
def test_reproduce_trains_only_smoke_unless_asked(args, train):
    lines = _papermill_lines(*args)
    assert lines and all(f"-p train_missing {train}" in line for line in lines)


def test_every_notebook_that_can_train_asks_train_missing_first():
    """A notebook may call the sweep only under ``if train_missing:``."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for cell in cells:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and re.search(r"\bsweep\(", source):
                guarded = re.search(r"^if train_missing:\n(?:[ \t]+.*\n|\n)*?[ \t]+.*\bsweep\(",
                                    source + "\n", re.M)  # fmt: skip
                assert guarded, f"{path.name} calls sweep() outside `if train_missing:`"


GROUPED = """\
import os, time
from pathlib import Path
import pytest

@pytest.fixture(scope="module", params=["a", "b"])
def case(request):
    return request.param

def _record(name):
    Path(os.environ["WHERE"], name).write_text(os.environ["PYTEST_XDIST_WORKER"])
    time.sleep(0.2)

@pytest.mark.xdist_group("heavy")
def test_grouped_one(case):
    _record("one-" + case)

@pytest.mark.xdist_group("heavy")
def test_grouped_two(case):
    _record("two-" + case)

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    _record(f"free-{i}")
"""


def test_make_test_keeps_each_xdist_group_on_one_worker(tmp_path):
    """`make test` runs `pytest -n 2 --dist loadgroup`: the tests of one group share one worker, so a
    group's expensive module fixture is built once and never beside its twin (some pytest releases
    silently drop the grouping: see requirements.txt)."""
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    where = tmp_path / "where"
    where.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
         "-p", "no:cacheprovider", "test_grouped.py"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "WHERE": str(where)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    workers = {p.name: p.read_text() for p in where.iterdir()}
    assert len(workers) == 8
    grouped = {w for name, w in workers.items() if not name.startswith("free")}
    assert len(grouped) == 1, f"the group ran on {sorted(grouped)}"
