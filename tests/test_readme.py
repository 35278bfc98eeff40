"""The README says what is true: its Python example runs as written, its results block is the
shipped runs' and its paper-scale estimate is what the sweep prints."""

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


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


def test_readme_results_are_the_shipped_runs():
    """The block ``python -m nnc4rl.report`` writes equals what the shipped data give now."""
    from nnc4rl.study.report import BEGIN, END, results_section

    text = README.read_text()
    block = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert block == results_section("mini"), "README results are stale: python -m nnc4rl.report"
    figure = re.search(r"!\[[^]]*\]\(([^)]+)\)", block).group(1)
    assert (README.parent / figure).is_file(), f"{figure} is not shipped"


def test_other_figures_count_their_stored_runs_not_their_rows():
    import pandas as pd

    from nnc4rl.runs.profiles import load_profile
    from nnc4rl.study.report import other_figures

    prof = load_profile("mini")
    planned = {f: sum(g.n_runs for g in prof.groups if g.figure == f) for f in ("fig5", "fig6")}
    # one row per evaluated point: run "a" has two
    runs = pd.DataFrame({"figure": ["fig5", "fig5", "fig5", "fig4"], "run_id": list("aabc")})
    text = other_figures(prof, runs, "fig4")
    assert f"2 of its {planned['fig5']} runs are stored; fig6 (" in text
    assert text.endswith(f"0 of its {planned['fig6']} runs are stored. Their figures and readings "
                         "are in `figures/mini/` and `notebooks/executed/mini/`.")  # fmt: skip
    assert "fig4 (" not in text
    assert other_figures(load_profile("paper"), runs, "fig4").startswith("**Other figures.** fig5")


def test_readme_paper_estimate_is_what_the_sweep_prints():
    import io

    from nnc4rl.runs.sweep import sweep

    out = io.StringIO()
    sweep("paper", workers=1, dry_run=True, out=out)
    text = README.read_text()
    quoted = text[text.index("$ nnc4rl sweep --profile paper --dry-run --workers 1") :]
    assert "\n" + out.getvalue() + "```" in quoted


def test_no_shipped_file_names_the_machine_that_made_it():
    """Shipped text (runs, tables, executed notebooks, docs) holds no absolute path of the
    machine that wrote it: such paths leak into notebook outputs through warnings."""
    import subprocess

    root = README.parent
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True,
                            check=True).stdout.split("\0")  # fmt: skip
    machine_path = re.compile(r"/[\w.-]+/[\w./-]*(site-packages|\.venv|\.pyenv)/")
    binary = (".png", ".npz", ".zip", ".pkl")
    leaks = [f for f in listed if f and not f.endswith(binary) and (root / f).is_file()
             and machine_path.search((root / f).read_text(errors="replace"))]  # fmt: skip
    assert not leaks, leaks


def test_the_integer_closed_loop_sentence_is_the_shipped_table():
    """The README's integer-policy sentence names every shipped run beyond 5 % and its numbers."""
    table = pd.read_csv(ROOT / "data" / "tables" / "mini" / "integer_closed_loop.csv")
    rel = table["integer_minus_trained"] / table["trained_return"].abs()
    beyond = table[rel.abs() > 0.05].sort_values("bits", ascending=False)
    text = " ".join(README.read_text().split())
    assert (
        f"within 5 % of the trained network's for {len(table) - len(beyond)} of the {len(table)}"
        in text
    )
    assert f"The other {len(beyond)} are" in text
    for (_, r), x in zip(beyond.iterrows(), rel[beyond.index], strict=True):
        assert f"{100 * x:+.1f} %" in text, (r["run_id"], x)
        assert f"{r['artifact_max_episode_diff']:,.0f}".replace(",", " ") in text, r["run_id"]


def test_readme_main_c_builds_against_an_integer_export_and_runs(tmp_path):
    """The README's ``main.c`` compiles against ``nnc4rl export --format c --integer --prefix
    hopper`` output with the strict flags and runs."""
    import shutil
    import subprocess

    from nnc4rl.export import artifact_from_sb3, calibrate_held_out
    from nnc4rl.export.bench import hopper_sized_sac
    from nnc4rl.export.c_export import save_c

    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    section = README.read_text()[README.read_text().index("## Deploying a compressed policy") :]
    main_c = re.search(r"```c\n(.*?)```", section, re.S).group(1)
    _, model = hopper_sized_sac(0.98)
    art = calibrate_held_out(artifact_from_sb3(model, bits=8, info={"env": "Hopper-v4"}), 1)
    save_c(art, tmp_path / "hopper.c", integer=True, prefix="hopper")
    (tmp_path / "main.c").write_text(main_c)
    exe = tmp_path / "main"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2",
                    "main.c", "hopper.c", "-lm", "-o", str(exe)], cwd=tmp_path, check=True)  # fmt: skip
    assert subprocess.run([str(exe)]).returncode == 0


def test_the_cli_options_are_documented():
    """Every option of ``nnc4rl train`` / ``export`` / ``sweep`` appears in the README."""
    from nnc4rl.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    text = README.read_text()
    missing = [f"{name} {o}" for name, sub in commands.items() for a in sub._actions
               for o in a.option_strings if o.startswith("--") and o != "--help" and o not in text]  # fmt: skip
    assert not missing
    assert "nnc4rl --version" in text


def test_the_smoke_run_count_is_the_profiles():
    from nnc4rl.runs.profiles import load_profile

    n = sum(g.n_runs for g in load_profile("smoke").groups)
    assert f"({n} runs, a few minutes on 2 CPU cores)" in README.read_text()
