"""``kanpde bench anchors``: which problems the anchor libraries can express, and one real
DeepXDE run through the worker (skipped, with its reason, without the ``anchors`` extra)."""

import dataclasses
import importlib.util
import math
from pathlib import Path

import pytest

from kanpde.cli.bench import anchors
from kanpde.cli.bench.anchor_worker import unsupported
from kanpde.problem import load_problem

ROOT = Path(__file__).resolve().parents[1]


def test_unsupported_names_what_the_libraries_cannot_express() -> None:
    plain = load_problem(ROOT / "problems" / "poisson2d_sinsin.py")
    assert unsupported(plain) is None
    inverse = load_problem(ROOT / "problems" / "poisson_inverse.py")
    assert unsupported(inverse) == "unknown parameters (inverse problem)"
    constrained = dataclasses.replace(plain, hard_constraint=lambda net: net)
    assert unsupported(constrained) == "hard constraint around the network"


@pytest.mark.skipif(importlib.util.find_spec("deepxde") is None,
                    reason="DeepXDE is not installed (the optional 'anchors' extra)")
def test_a_deepxde_run_through_the_worker(tmp_path: Path) -> None:
    """A short DeepXDE run of its recipe on poisson2d_sinsin: it finishes, records its
    evaluation history, and its error is that of a trained network, not of the start."""
    recipe = {**anchors.LIBRARIES["deepxde"]["recipes"]["quick"], "adam_steps": 200,
              "lbfgs_steps": 50}
    rec = anchors.anchor_record("poisson2d_sinsin", ROOT / "problems" / "poisson2d_sinsin.py",
                                "deepxde", recipe, 0, tmp_path)
    assert rec["status"] == "ok", rec["status"]
    assert math.isfinite(rec["mse"]) and rec["l2_rel"] < 0.5
    assert rec["history"]["eval_mse"][-1] < rec["history"]["eval_mse"][0]
    assert (tmp_path / "poisson2d_sinsin" / "deepxde-seed0.json").is_file()  # reused later


@pytest.mark.skipif(importlib.util.find_spec("kan") is None,
                    reason="pykan is not installed (the optional 'anchors' extra)")
def test_a_pykan_run_through_the_worker(tmp_path: Path) -> None:
    """A few L-BFGS steps of pykan's recipe on poisson2d_sinsin through its worker."""
    recipe = {**anchors.LIBRARIES["pykan"]["recipes"]["quick"], "steps": 3}
    rec = anchors.anchor_record("poisson2d_sinsin", ROOT / "problems" / "poisson2d_sinsin.py",
                                "pykan", recipe, 0, tmp_path)
    assert rec["status"] == "ok", rec["status"]
    assert rec["n_params"] > 0 and math.isfinite(rec["mse"])
    assert rec["history"]["eval_mse"][-1] < rec["history"]["eval_mse"][0]
