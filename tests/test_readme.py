"""The README's examples are tested commands: its problem files pass `kanpde check`, and its
Quick start runs as written (with the tiny solvers substituted for speed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from kanpde.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TINY = {family: str(ROOT / "solvers" / f"{family}_tiny.toml") for family in ("kan", "mlp")}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


PROBLEMS = [b for b in _blocks("python") if "problem = Problem(" in b]


def test_the_readme_has_a_problem_example() -> None:
    assert PROBLEMS, "the README lost its worked problem file"


@pytest.mark.parametrize("index", range(len(PROBLEMS)))
def test_problem_examples_pass_check(tmp_path: Path, capsys: pytest.CaptureFixture,
                                     index: int) -> None:
    path = tmp_path / f"readme_problem_{index}.py"
    path.write_text(PROBLEMS[index])
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "exact solution" in out and "problem " in out
    # every reported residual/condition of the exact solution is round-off
    values = [float(v) for v in re.findall(r"= ([0-9.e+-]+)", out.split("evaluation")[1])]
    assert values and max(values) < 1e-10


def _substitute(line: str, tmp: Path) -> list[str]:
    """A README command with the tiny solvers, the run directories under ``tmp`` and the
    repository's paths."""
    args = shlex.split(line.split("#")[0])
    out = []
    for a in args[1:]:
        if a.startswith("solvers/"):
            a = TINY["mlp" if "mlp" in a else "kan"]
        elif a.startswith("problems/"):
            a = str(ROOT / a)
        elif a.startswith("runs/"):
            a = str(tmp / a)
        elif a.endswith(".npy") or a.endswith(".csv"):
            a = str(tmp / a)
        out.append(a)
    return out


def _commands(section: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", _section(section), re.S)
    return [ln.strip() for b in blocks for ln in b.splitlines()
            if ln.strip().startswith("kanpde ")]


def _run(lines: list[str], tmp: Path, capsys: pytest.CaptureFixture) -> None:
    for line in lines:
        args = _substitute(line, tmp)
        if "--seeds" in args:  # one seed for speed
            i = args.index("--seeds") + 1
            while i < len(args) and args[i].isdigit():
                args.pop(i)
            args.insert(args.index("--seeds") + 1, "0")
        if args[0] == "tune":  # one short trial in the small search space
            args[args.index("--trials") + 1] = "1"
            args[args.index("--time-per-trial") + 1] = "2"
            args += ["--space", "tiny"]
        code = main(args)
        assert code == 0, f"README command failed ({code}): {line}\n{capsys.readouterr().err}"


def test_quick_start_runs_as_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lines = _commands("Quick start")
    assert len(lines) >= 5
    np.save(tmp_path / "points.npy", np.random.default_rng(0).uniform(-1, 1, (20, 2)))
    _run(lines, tmp_path, capsys)


def test_fair_comparison_commands_run_as_written(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    lines = _commands("A fair comparison")
    assert [ln.split()[1] for ln in lines] == ["tune", "tune", "compare"]
    _run(lines, tmp_path, capsys)


def test_a_model_of_ones_own_trains_as_the_readme_shows(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    block = next(b for b in _blocks("python") if "model=SineNet()" in b)
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102
    result = scope["result"]
    assert str(result.status) == "ok" and result.summary["engine"] == "jet"
    assert result.summary["l2_rel"] < 0.1 and scope["values"].shape == (5, 1)
    assert capsys.readouterr().out.startswith("ok jet ")
