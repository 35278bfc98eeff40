"""Executed notebooks as files that only change when their results do.

papermill writes timestamps, durations, paths and a random id for the cell it injects into every
executed notebook; :func:`strip_volatile` removes them, so a second ``make reproduce`` of the same
data leaves the committed ``notebooks/executed/<profile>/*.ipynb`` byte-identical.

``python -m nnc4rl.study.notebooks FILE [FILE ...]`` rewrites the files in place.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from nnc4rl.core.atomic import write_atomic

INJECTED_TAG = "injected-parameters"  # papermill's tag on the cell it adds


def strip_volatile(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without execution timestamps, durations, papermill's run record (its
    ``parameters`` are kept), with a fixed id for papermill's injected cell and each run of
    consecutive stream outputs of one name merged into one."""
    run = nb.metadata.get("papermill")
    if run is not None:
        nb.metadata["papermill"] = {"parameters": run.get("parameters", {})}
    for cell in nb.cells:
        if cell.cell_type == "code":  # the kernel splits a stream into chunks as timing falls
            merged: list = []
            for out in cell.outputs:
                last = merged[-1] if merged else None
                if (out.output_type == "stream" and last is not None
                        and last.output_type == "stream" and last.name == out.name):  # fmt: skip
                    last.text += out.text
                else:
                    merged.append(out)
            cell.outputs = merged
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if INJECTED_TAG in cell.metadata.get("tags", []):
            cell["id"] = INJECTED_TAG
    return nb


def strip_file(path: str | Path) -> bool:
    """Rewrite the notebook at ``path`` with :func:`strip_volatile`; True if it changed."""
    path = Path(path)
    text = path.read_text()
    new = nbformat.writes(strip_volatile(nbformat.reads(text, as_version=4))) + "\n"
    if new == text:
        return False
    write_atomic(path, new)
    return True


def main(argv: list[str] | None = None) -> int:
    """Strip each notebook named in ``argv``; one error line and exit 2 for a file that is
    missing or not a notebook (the ones before it are already rewritten)."""
    for name in sys.argv[1:] if argv is None else argv:
        try:
            strip_file(name)
        except (OSError, ValueError, nbformat.ValidationError) as err:  # JSON errors: ValueError
            reason = getattr(err, "strerror", None) or type(err).__name__
            print(f"python -m nnc4rl.study.notebooks: error: {name!r}: {reason}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
