"""`make reproduce` (mini by default) or at paper never starts a long sweep unless asked
(TRAIN=True)."""

import json
import re
import subprocess
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
