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


def _shell_commands(text: str) -> list[str]:
    return [part.strip() for part in text.split("&&")]


def test_first_lines_install_the_runtime_for_the_main_job_and_the_test_extra_for_tests(
) -> None:
    """The README opens with two commands: one sets up and runs the main job with the runtime
    package only (no triton), one installs what the tests need and runs them; .ci/run
    installs exactly so and runs the same test command."""
    import tomllib

    main_job, tests = _blocks("bash")[0].strip().splitlines()
    main_steps, test_steps = _shell_commands(main_job), _shell_commands(tests)
    assert main_steps[:2] == ["pip install torch==2.13.0", "pip install -e ."]
    assert main_steps[2].startswith("kanpde compare ") and len(main_steps) == 3
    assert test_steps == ["pip install torch==2.13.0", 'pip install -e ".[test]"',
                          "python -m pytest"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert not any("triton" in req for req in extras["test"])
    assert any(req.startswith("pytest") for req in extras["test"])
    assert "kanpde[test,gpu]" in extras["dev"] and extras["gpu"] == ["triton>=3.0"]
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip().startswith("python -m")]
    installs = [ln.replace("python -m pip install --quiet", "pip install") for ln in ci
                if " pip " in ln]
    assert installs == test_steps[:2]
    assert [ln for ln in ci if " pytest" in ln] == ["python -m pytest -q --durations=20"]
