"""Faults a hostile user provokes: each kind ends with the right exit status, one line that
names the file (or flag) and the fault, and nothing lost or overwritten.

1. a run directory belongs to one run; 2. failure is never reported as success; 3. every
fault in user code or a file is one line; 4. resume continues the same run or refuses;
5. signals and paths. Tiny MLP runs on an 11 x 11 evaluation grid keep this module fast.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from kanpde.cli.main import main
from kanpde.io.rundir import LOCK_FILE, PROTECTED, RunDirError, check_output_name, claim

SOLVER = """
name = "micro"
[model]
kind = "mlp"
widths = [8]
activation = "tanh"
[sampling]
interior = 32
boundary = 12
[[stages]]
optimizer = "{optimizer}"
steps = {steps}
lr = {lr}
[evaluation]
every = 2
[checkpoint]
every = 2
"""

PROBLEM = '''
import os
from math import pi
from pathlib import Path

import torch
from kanpde import Dirichlet, Problem
from kanpde.problem.geometry import Box

HERE = Path(__file__).parent
{prelude}

def exact(x):
    {exact_body}
    return torch.sin(pi * x[:, 0]) * torch.sin(pi * x[:, 1])


def pde(s):
    {pde_body}
    return s.u.laplacian() + 2 * pi**2 * torch.sin(pi * s.x) * torch.sin(pi * s.y)


problem = Problem(name={name!r}, coords=("x", "y"),
                  domain=Box([-1.0, -1.0], [1.0, 1.0], coord_names=("x", "y")),
                  residuals={{"pde": pde}},
                  conditions=[Dirichlet(on={on!r}, value={value})],
                  exact=exact, eval_resolution=11)
'''


def write_problem(tmp_path: Path, file: str = "p.py", *, name: str = "p", prelude: str = "",
                  exact_body: str = "pass", pde_body: str = "pass", on: str = "boundary",
                  value: str = "0.0") -> str:
    path = tmp_path / file
    path.write_text(PROBLEM.format(name=name, prelude=prelude, exact_body=exact_body,
                                   pde_body=pde_body, on=on, value=value))
    return str(path)


def write_solver(tmp_path: Path, optimizer: str = "adam", steps: int = 4, lr: float = 0.01,
                 file: str = "s.toml", kind: str = "mlp") -> str:
    text = SOLVER.format(optimizer=optimizer, steps=steps, lr=lr)
    if kind == "kan":
        text = text.replace('kind = "mlp"\nwidths = [8]\nactivation = "tanh"',
                            'kind = "kan"\nwidths = [3]\ngrid_size = 3')
    path = tmp_path / file
    path.write_text(text)
    return str(path)


def solve(problem: str, solver: str | None, out: Path | None, *extra: str) -> int:
    argv = ["solve", problem, "--quiet", *extra]
    if solver:
        argv += ["--solver", solver]
    if out is not None:
        argv += ["--out", str(out)]
    return main(argv)


def error_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("kanpde: ")]


def one_error(capsys) -> str:
    lines = error_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("kanpde: error: "), lines
    return lines[0]


def digest(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run: (problem file, solver file, run directory)."""
    tmp = tmp_path_factory.mktemp("finished")
    problem, solver = write_problem(tmp), write_solver(tmp)
    assert solve(problem, solver, tmp / "run") == 0
    return problem, solver, tmp / "run"


@pytest.fixture
def stopped(tmp_path):
    """A run stopped (SIGTERM from inside its residual) after a few steps."""
    marker = tmp_path / "stopped.marker"
    problem = write_problem(tmp_path, pde_body=(
        "if s.points.shape[0] == 32 and not MARK.exists():\n"
        "        CALLS[0] += 1\n"
        "        if CALLS[0] == 4:\n"
        "            MARK.write_text('x')\n"
        "            os.kill(os.getpid(), SIGTERM)"),
        prelude=f"from signal import SIGTERM\nCALLS = [0]\nMARK = Path({str(marker)!r})")
    solver = write_solver(tmp_path, steps=6)
    return problem, solver, tmp_path / "run"


# ---------------------------------------------------------------- 1. one run per directory


def test_a_directory_holding_any_run_file_is_never_overwritten(finished, tmp_path, capsys):
    problem, solver, run = finished
    only = tmp_path / "only_result"
    only.mkdir()
    shutil.copy(run / "result.h5", only / "result.h5")
    before = digest(only / "result.h5")
    assert solve(problem, solver, only) == 2
    line = one_error(capsys)
    assert str(only) in line and "already holds a run (result.h5)" in line
    assert digest(only / "result.h5") == before and not (only / LOCK_FILE).exists()
    # compare and bench refuse it the same way
    cmp_dir = tmp_path / "cmp"
    (cmp_dir / "micro-seed0").mkdir(parents=True)
    shutil.copy(run / "result.h5", cmp_dir / "micro-seed0" / "result.h5")
    assert main(["compare", problem, "--solvers", solver, "--out", str(cmp_dir),
                 "--quiet"]) == 2
    assert "micro-seed0: already holds a run (result.h5)" in one_error(capsys)
    assert digest(cmp_dir / "micro-seed0" / "result.h5") == before

    from kanpde.cli.bench.runner import Job, run_jobs

    bench = tmp_path / "bench"
    job = Job("p", "micro", {"model": {"kind": "mlp", "widths": [4]},
                             "stages": [{"steps": 1}]}, 0)
    job.run_dir(bench).mkdir(parents=True)
    shutil.copy(run / "result.h5", job.run_dir(bench) / "result.h5")
    with pytest.raises(RunDirError, match="already holds a run"):
        run_jobs([job], {"p": Path(problem)}, bench)


def test_a_second_process_gets_one_line_naming_the_holder(finished, tmp_path, capsys):
    problem, solver, _ = finished
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out.mkdir()
        (out / LOCK_FILE).write_text(json.dumps({"pid": holder.pid,
                                                 "host": socket.gethostname(),
                                                 "started": "now", "command": "kanpde"}))
        (out / "checkpoint.pt").write_bytes(b"the holder's first checkpoint")
        for argv in (["solve", problem, "--solver", solver, "--out", str(out)],
                     ["solve", problem, "--resume", str(out)]):
            assert main(argv) == 2
            line = one_error(capsys)
            assert f"{out}: in use by process {holder.pid} on host" in line
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "checkpoint.pt"]
        assert (out / "checkpoint.pt").read_bytes() == b"the holder's first checkpoint"
        assert main(["unlock", str(out)]) == 2  # a live holder is not unlocked
        assert "still running" in one_error(capsys)
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: the lock is stale, reported with the command that clears it
    assert solve(problem, solver, out) == 2
    line = one_error(capsys)
    assert "stale" in line and f"kanpde unlock {out}" in line
    assert main(["unlock", str(out)]) == 0 and not (out / LOCK_FILE).exists()
    assert solve(problem, solver, out) == 2  # and what it left is still a run
    assert "already holds a run (checkpoint.pt)" in one_error(capsys)


def test_claims_are_atomic_and_released(tmp_path):
    out = tmp_path / "race"
    start, won, lost = threading.Barrier(8), [], []

    def contender():
        start.wait()
        try:
            with claim(out, resume=False):
                won.append(1)
                start.wait()  # everyone has tried while the winner holds it
        except RunDirError:
            lost.append(1)
            start.wait()

    threads = [threading.Thread(target=contender) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 7
    assert not (out / LOCK_FILE).exists()  # released at the end


def test_predict_export_plot_never_write_a_runs_own_files(finished, tmp_path, capsys):
    problem, solver, run = finished
    before = {name: digest(run / name) for name in ("result.h5", "summary.json",
                                                    "checkpoint.pt")}
    pts = tmp_path / "pts.npy"
    np.save(pts, np.array([[0.1, 0.2]]))
    for name in before:
        assert main(["predict", str(run), str(pts), "--out", str(run / name)]) == 2
        line = one_error(capsys)
        assert f"--out {run / name}" in line and "run's own file" in line
    assert {name: digest(run / name) for name in before} == before
    for name in PROTECTED:  # the writers of export and plot check the same names
        with pytest.raises(RunDirError, match=name.replace(".", r"\.")):
            check_output_name(run / name, "export")
    assert main(["plot", str(run)]) == 0 and main(["export", str(run)]) == 0
    assert main(["plot", str(run)]) == 0  # and the run still reads back
    assert {name: digest(run / name) for name in before} == before


# ---------------------------------------------------------------- 2. failure is failure


def test_an_exploding_loss_is_divergence(tmp_path, capsys):
    problem, out = write_problem(tmp_path), tmp_path / "run"
    assert solve(problem, write_solver(tmp_path, steps=8, lr=1e6), out) == 3
    line = one_error(capsys)
    assert "p.py: diverged: the loss grew to" in line and "1e+08 times its best" in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["nan_rollbacks"] == 3
    assert summary["final_loss"] < 1e3  # rolled back to the last good parameters
    assert (out / "result.h5").is_file() and (out / "checkpoint.pt").is_file()


def test_an_lbfgs_stage_without_a_step_says_so(tmp_path, capsys):
    problem, out = write_problem(tmp_path), tmp_path / "run"
    solver = write_solver(tmp_path, optimizer="lbfgs", steps=5, lr=1e30, kind="kan")
    assert solve(problem, solver, out) == 0
    lines = error_lines(capsys)
    assert lines == ["kanpde: warning: stage 0 (lbfgs) made no progress: the line search "
                     "found no step that lowers the loss (initial step lr = 1e+30); a smaller "
                     "lr usually helps"]
    stage = json.loads((out / "summary.json").read_text())["stages"][0]
    assert stage["stopped"] == "no_progress" and stage["converged_at"] is None


def test_metrics_that_cannot_be_computed_are_not_ok(tmp_path, capsys):
    problem = write_problem(tmp_path, exact_body="return x[:, 0] * float('nan')")
    out = tmp_path / "run"
    assert solve(problem, write_solver(tmp_path), out) == 4
    lines = error_lines(capsys)
    assert lines[0].startswith("kanpde: warning: ") and "not finite at 121 of 121" in lines[0]
    assert lines[1].startswith(f"kanpde: error: {problem}: no_metrics: l2_rel, max_abs_err, "
                               "mse could not be computed: the exact solution is not finite")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "no_metrics" and (out / "result.h5").is_file()


def test_a_residual_nan_from_the_start_says_which_term_and_where(tmp_path, capsys):
    problem = write_problem(tmp_path, pde_body="return s.u.laplacian() + torch.sqrt(s.x)")
    out = tmp_path / "run"
    assert solve(problem, write_solver(tmp_path), out) == 3
    line = one_error(capsys)
    assert "diverged: residual 'pde' is NaN at" in line and "of 32 points (e.g. x=-" in line
    assert line.endswith("before the first step")


@pytest.mark.parametrize("body, value, fault", [
    ("return x[:, 0] * float('nan')", "0.0", "makes it NaN at 256 of 256 points"),
    ("return 1.5 * torch.sin(pi * x[:, 0]) * torch.sin(pi * x[:, 1])", "0.0",
     "residual 'pde': the exact solution leaves max |r| = 9.8"),
    ("pass", "lambda s: s.x + 5", "condition 0 'dirichlet0' (Dirichlet on boundary): the "
     "exact solution leaves max |r| = 6"),
])
def test_check_fails_when_the_exact_solution_does_not_solve_the_problem(
        tmp_path, capsys, body, value, fault):
    problem = write_problem(tmp_path, exact_body=body, value=value)
    assert main(["check", problem]) == 1
    lines = error_lines(capsys)
    assert any(fault in ln and ln.startswith(f"kanpde: error: {problem}: ") for ln in lines)
    assert all("tolerance" in ln for ln in lines if "leaves" in ln)


def test_check_fails_on_an_empty_evaluation_set(tmp_path, capsys):
    problem = tmp_path / "empty.py"
    problem.write_text(
        "from kanpde import Dirichlet, Problem\nfrom kanpde.problem.geometry import Box\n"
        "problem = Problem(name='e', coords=('x', 'y', 'z'),\n"
        "    domain=Box([0.0] * 3, [1.0] * 3, coord_names=('x', 'y', 'z')),\n"
        "    residuals={'pde': lambda s: s.u.laplacian()},\n"
        "    conditions=[Dirichlet(value=lambda s: s.x)], exact=lambda x: x[:, 0],\n"
        "    eval_points=0)\n")
    problem = str(problem)
    assert main(["check", problem]) == 1
    assert "the evaluation set is empty" in one_error(capsys)
    assert solve(problem, write_solver(tmp_path), tmp_path / "run") == 2
    assert "the evaluation set is empty" in one_error(capsys)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- 3. one line per fault


def line_of(path: str, token: str) -> int:
    """The 1-based number of the first line of ``path`` that contains ``token``."""
    return next(i for i, ln in enumerate(Path(path).read_text().splitlines(), 1) if token in ln)


@pytest.mark.parametrize("where, body, what", [
    ("exact_body", "if x.shape[0] > 100:\n        raise IndexError('index 7 is out of bounds')",
     "exact solution raised IndexError: index 7 is out of bounds ({p}, line {n})"),
    ("pde_body", "if s.points.shape[0] == 32:\n        raise KeyError('nu')",
     "residual 'pde' raised KeyError: 'nu' ({p}, line {n})"),
    ("value", "lambda s: s.x[:8] if s.points.shape[0] == 12 else s.x",
     "condition 0 'dirichlet0' (Dirichlet on boundary): value returned shape (8,), "
     "expected (12,)"),
])
def test_a_failure_in_user_code_at_evaluation_is_one_line(tmp_path, capsys, where, body, what):
    problem = write_problem(tmp_path, **{where: body})
    if "{n}" in what:
        what = what.format(p=problem, n=line_of(problem, "raise "))
    out = tmp_path / "run"
    assert solve(problem, write_solver(tmp_path), out) == 2
    line = one_error(capsys)
    assert line.startswith(f"kanpde: error: problem file '{problem}': ") and what in line
    assert not (out / LOCK_FILE).exists()
    # --debug: the traceback (the cause chained) instead of the line, the same exit status
    assert main(["--debug", "solve", problem, "--solver", write_solver(tmp_path), "--quiet",
                 "--out", str(tmp_path / "debug")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "kanpde: error:" not in err
    assert what.split(" (")[0] in err and "direct cause of the following exception" in err


def test_every_user_function_is_wrapped():
    """Hard-constraint functions and boundary predicates fail in one line too."""
    from kanpde.nn import MLP
    from kanpde.problem.conditions import Dirichlet
    from kanpde.problem.geometry import Box
    from kanpde.problem.problem import apply_hard_constraint
    from kanpde.problem.usercode import UserCodeError

    def distance(x):
        return x[:, 5]

    with pytest.raises(UserCodeError, match=r"hard-constraint function 'distance' raised "
                                            r"IndexError: .*test_faults.py, line \d+\)$"):
        apply_hard_constraint(MLP([2, 1]), {"distance": distance}).distance(torch.zeros(3, 2))
    cond = Dirichlet(on=lambda x: x[:, 7] > 0)
    with pytest.raises(UserCodeError, match="boundary predicate 'on' raised IndexError"):
        cond.sample(Box([0.0, 0.0], [1.0, 1.0]), 4, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind, argv_tail, match", [
    ("index at load", None, "problem file '{p}': residual 'pde' raised IndexError"),
    ("sys.exit", None, "problem file '{p}': import called sys.exit(0) ({p}, line {n})"),
    ("wrong length", None, "problem file '{p}': condition 0 'dirichlet0' (Dirichlet on "
                           "boundary): value returned shape (3,), expected (8,)"),
    ("unknown part", None, "problem file '{p}': condition 0 'dirichlet0' (Dirichlet on "
                           "x_mn): unknown boundary part 'x_mn'"),
])
def test_a_faulty_problem_file_is_one_line(tmp_path, capsys, kind, argv_tail, match):
    args = {"index at load": {"pde_body": "s.x[100000]"},
            "sys.exit": {"prelude": "import sys\nsys.exit(0)"},
            "wrong length": {"value": "lambda s: s.x[:3]"},
            "unknown part": {"on": "x_mn"}}[kind]
    problem = write_problem(tmp_path, **args)
    for command in (["check", problem], ["solve", problem, "--out", str(tmp_path / "r")]):
        assert main(command) == 2
        line = one_error(capsys)
        assert match.format(p=problem, n=line_of(problem, "exit(") if "{n}" in match
                            else 0) in line
    assert not (tmp_path / "r").exists()


def test_bad_files_and_flags_are_one_line(finished, tmp_path, capsys):
    problem, solver, run = finished
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    assert main(["predict", str(run), str(empty)]) == 2
    assert f"points file '{empty}': the file is empty" in one_error(capsys)
    latin = tmp_path / "latin.toml"
    latin.write_bytes('name = "café"\n'.encode("latin-1"))
    assert solve(problem, str(latin), tmp_path / "r") == 2
    assert f"{latin}: not UTF-8 text (byte 0xe9" in one_error(capsys)
    assert main(["check", problem, "--points", "0"]) == 2
    assert "--points: must be >= 1, got 0" in one_error(capsys)
    # an incomplete checkpoint (verified, but keys missing), and a foreign one
    from kanpde.training.checkpoint_file import write_checkpoint

    for d, write in (("partial", lambda p: write_checkpoint(p, {"format": 1, "problem": "p"})),
                     ("foreign", lambda p: torch.save({"format": 1}, p))):
        (tmp_path / d).mkdir()
        write(tmp_path / d / "checkpoint.pt")
        assert main(["solve", problem, "--resume", str(tmp_path / d)]) == 2
        line = one_error(capsys)
        assert str(tmp_path / d / "checkpoint.pt") in line
        assert ("incomplete checkpoint (missing config" in line if d == "partial"
                else "not a verifiable kanpde checkpoint" in line)


# ---------------------------------------------------------------- 4. resume


def test_resume_refuses_an_edited_problem_unless_forced(stopped, capsys):
    problem, solver, out = stopped
    assert solve(problem, solver, out) == 143
    capsys.readouterr()
    kept = digest(out / "checkpoint.pt")
    Path(problem).write_text(Path(problem).read_text().replace("2 * pi**2", "2.5 * pi**2"))
    assert main(["solve", problem, "--resume", str(out), "--quiet"]) == 2
    line = one_error(capsys)
    assert f"resume: {out / 'checkpoint.pt'}: the problem file '{problem}' changed" in line
    assert "--force" in line and digest(out / "checkpoint.pt") == kept
    assert main(["solve", problem, "--resume", str(out), "--quiet", "--force"]) == 0
    assert "continued (--force) on a problem file edited" in error_lines(capsys)[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["resumed_on_edited_problem"] is True


def test_resume_refuses_a_damaged_checkpoint_and_keeps_the_previous_one(stopped, capsys):
    problem, solver, out = stopped
    assert solve(problem, solver, out) == 143
    capsys.readouterr()
    path, prev = out / "checkpoint.pt", out / "checkpoint.prev.pt"
    assert prev.is_file()
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert main(["solve", problem, "--resume", str(out), "--quiet"]) == 2
    line = one_error(capsys)
    assert f"resume: {path}: damaged" in line and f"mv {prev} {path}" in line
    os.replace(prev, path)  # go back one checkpoint, as the message says
    assert main(["solve", problem, "--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "ok"


# ---------------------------------------------------------------- 5. signals and paths


def test_sigterm_checkpoints_exits_143_and_prints_the_resume_command(stopped, capsys):
    problem, solver, out = stopped
    handler = signal.getsignal(signal.SIGTERM)
    assert solve(problem, solver, out) == 143
    err = capsys.readouterr().err
    assert f"continue with  kanpde solve {problem} --resume {out}" in err
    assert signal.getsignal(signal.SIGTERM) is handler  # restored
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["steps"] < 6
    assert not (out / LOCK_FILE).exists()
    assert main(["solve", problem, "--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 6


def test_an_interrupt_while_writing_the_result_still_says_how_to_resume(
        tmp_path, capsys, monkeypatch):
    import kanpde.io.results

    problem, solver, out = write_problem(tmp_path), write_solver(tmp_path), tmp_path / "run"

    def interrupted(result, out_dir):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(kanpde.io.results, "save_result", interrupted)
        assert solve(problem, solver, out) == 130
    assert f"continue with  kanpde solve {problem} --resume {out}" in capsys.readouterr().err
    assert not (out / "result.h5").exists() and (out / "checkpoint.pt").is_file()
    assert main(["solve", problem, "--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


def test_run_names_from_user_strings_stay_inside_runs(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    problem = write_problem(tmp_path, name="../../escaped/x")
    assert solve(problem, write_solver(tmp_path), None) == 0
    assert sorted(p.name for p in work.iterdir()) == ["runs"]
    (run,) = (work / "runs").iterdir()
    assert run.name == "_.._escaped_x-micro-seed0" and (run / "result.h5").is_file()
    assert not (tmp_path / "escaped").exists()


def test_a_typo_in_the_first_csv_row_is_reported_not_taken_for_a_header(
        finished, tmp_path, capsys):
    _, _, run = finished
    typo, header = tmp_path / "typo.csv", tmp_path / "header.csv"
    typo.write_text("O.5,0.5\n0.1,0.2\n")
    header.write_text("x,y\n0.5,0.5\n0.1,0.2\n")
    assert main(["predict", str(run), str(typo), "--out", str(tmp_path / "a.npy")]) == 2
    assert f"points file '{typo}': line 1: 'O.5' is not a number" in one_error(capsys)
    assert main(["predict", str(run), str(header), "--out", str(tmp_path / "b.npy")]) == 0
    table = np.load(tmp_path / "b.npy")  # the points' coordinates, then the field
    assert table.shape == (2, 3) and table[:, :2].tolist() == [[0.5, 0.5], [0.1, 0.2]]


def test_a_misshaped_output_names_the_functions_definition(tmp_path, capsys):
    """A residual or exact solution of the wrong shape fails after it returned, so the
    traceback shows only its caller: the line names where the function is defined."""
    body = '''import torch
from kanpde import Dirichlet, Problem
from kanpde.problem.geometry import Box


def pde(s):
    return {residual}


def exact(x):
    return {exact}


problem = Problem(
    name="shapes", coords=("x", "y"), fields=("u",), domain=Box([0, 0], [1, 1]),
    residuals={{"pde": pde}}, conditions=[Dirichlet("u", 0.0, on="boundary")], exact=exact,
)
'''
    cases = [("torch.stack([s.u.laplacian(), s.u.value], 1)", "x[:, :1] * 0",
              "residual 'pde' returned shape", "line 6"),
             ("s.u.laplacian()", "torch.zeros(x.shape[0], x.shape[0], dtype=x.dtype)",
              "exact solution returned shape", "line 10")]
    for residual, exact, what, line in cases:
        path = tmp_path / "shapes.py"
        path.write_text(body.format(residual=residual, exact=exact))
        assert main(["check", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and what in err[0] and f"shapes.py, {line})" in err[0], err


def test_flag_errors_are_one_line_and_debug_follows_the_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["solve", "p.py", "--seed", "abc"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kanpde: error: solve: argument --seed: invalid int value: 'abc' "
                   "(see kanpde solve --help)"]
    # --debug is accepted after the command's name too (and shows the traceback)
    assert main(["check", str(tmp_path / "missing.py"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err
    # --out beside --resume would be ignored: refused in one line instead
    assert main(["solve", "p.py", "--resume", str(tmp_path / "a"),
                 "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kanpde: error: --out ")
    assert "continues in its own directory" in err[0]
