"""Solver configs: defaults, round trips and one-line errors naming file and key."""

from pathlib import Path

import pytest

from kanpde.training.config import (
    DEFAULT_LR,
    ConfigError,
    SolverConfig,
    config_from_dict,
    diff_configs,
    load_config,
)

SOLVERS = sorted((Path(__file__).parent.parent / "solvers").glob("*.toml"))


def test_defaults():
    c = config_from_dict({})
    assert c == SolverConfig()
    assert (c.engine, c.dtype, c.device, c.seed) == ("jet", "float64", "cpu", 0)
    assert c.model.kind == "kan" and c.model.widths == (10,) and c.model.grid_range == (-1, 1)
    assert c.model.normalize_inputs is True
    assert c.sampling.initial is None and c.sampling.initial_count == c.sampling.boundary
    assert len(c.stages) == 1 and c.stages[0].optimizer == "adam"
    assert c.weighting.kind == "fixed" and c.evaluation.every == 100
    assert c.checkpoint.every == 500


def test_stage_lr_defaults_per_optimizer():
    c = config_from_dict({"stages": [{"optimizer": "adam"}, {"optimizer": "lbfgs"}]})
    assert [s.lr for s in c.stages] == [DEFAULT_LR["adam"], DEFAULT_LR["lbfgs"]]


@pytest.mark.parametrize("path", SOLVERS, ids=[p.stem for p in SOLVERS])
def test_shipped_solvers_load_and_round_trip(path):
    c = load_config(path)
    assert c.name == path.stem
    d = c.to_dict()
    again = config_from_dict(d, source="round-trip")
    assert again == c and again.to_dict() == d
    assert diff_configs(d, again.to_dict()) == []


def test_round_trip_of_every_section():
    d = {
        "name": "full", "engine": "autograd", "dtype": "float32", "device": "cuda:1",
        "seed": 7, "max_time_s": 60.0,
        "model": {"kind": "mlp", "widths": [8, 8], "activation": "sin", "embedding": "fourier",
                  "fourier_features": 4, "fourier_sigma": 2.0, "normalize_inputs": False},
        "sampling": {"interior": 50, "boundary": 10, "initial": 12, "method": "lhs",
                     "resample_every": 3, "adaptive": "rar-d", "adaptive_every": 5,
                     "adaptive_candidates": 100, "rad_k": 2.0, "rad_c": 0.0, "rar_add": 7},
        "stages": [{"optimizer": "adam", "steps": 5, "lr": 0.1, "schedule": "exponential",
                    "gamma": 0.99, "max_time_s": 3.0},
                   {"optimizer": "lbfgs", "steps": 4, "history_size": 7,
                    "tolerance_grad": 1e-9, "tolerance_change": 0.0}],
        "weighting": {"kind": "gradnorm", "weights": {"pde": 2.0, "dirichlet0": 5.0},
                      "update_every": 3, "alpha": 0.5, "causal": True, "causal_eps": 0.1,
                      "causal_bins": 4},
        "evaluation": {"every": 2}, "checkpoint": {"every": 0},
    }
    c = config_from_dict(d)
    out = c.to_dict()
    assert config_from_dict(out) == c
    for key in ("name", "engine", "dtype", "device", "seed"):
        assert out[key] == d[key]
    assert out["weighting"]["weights"] == {"pde": 2.0, "dirichlet0": 5.0}
    assert out["sampling"]["initial"] == 12
    assert c.weighting.weight_map == {"pde": 2.0, "dirichlet0": 5.0}


def _error(d, source="solvers/x.toml") -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(d, source=source)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{source}: ")
    return msg


ERRORS = [
    ({"stages": [{"lr": -1}]}, "stages[0].lr", "must be > 0, got -1"),
    ({"stages": [{}, {"steps": 0}]}, "stages[1].steps", "must be >= 1"),
    ({"stages": [{}, {"stepz": 3}]}, "stages[1].stepz", "unknown key"),
    ({"stages": [{"optimizer": "sgd"}]}, "stages[0].optimizer", "must be one of"),
    ({"stages": [{"schedule": "cosine", "lr": 0.1, "lr_min": 1.0}]}, "stages[0].lr_min",
     "must be <= lr"),
    ({"stages": [{"gamma": 1.5}]}, "stages[0].gamma", "must be <= 1"),
    ({"stages": [{"max_time_s": 0}]}, "stages[0].max_time_s", "must be > 0"),
    ({"stages": [{"grid_update_max_ratio": 0.5}]}, "stages[0].grid_update_max_ratio",
     "must be >= 1, got 0.5"),
    ({"stages": [{"grid_update_tol": -1e-3}]}, "stages[0].grid_update_tol", "must be >= 0"),
    ({"stages": []}, "stages", "non-empty list"),
    ({"stages": {"steps": 3}}, "stages", "non-empty list"),
    ({"stages": [3]}, "stages[0]", "must be a table"),
    ({"engine": "jax"}, "engine", "must be one of"),
    ({"dtype": "float16"}, "dtype", "must be one of"),
    ({"device": "tpu"}, "device", "'cpu', 'cuda' or 'cuda:N'"),
    ({"seed": 1.5}, "seed", "must be an integer"),
    ({"seed": True}, "seed", "must be an integer"),
    ({"name": 3}, "name", "must be a string"),
    ({"solver": "x"}, "solver", "unknown key"),
    ({"model": {"kind": "cnn"}}, "model.kind", "must be one of"),
    ({"model": {"widths": []}}, "model.widths", "at least 1"),
    ({"model": {"widths": [4, 0]}}, "model.widths", "entry 1: must be >= 1"),
    ({"model": {"widths": 4}}, "model.widths", "must be a list"),
    ({"model": {"grid_range": [1, -1]}}, "model.grid_range", "a < b"),
    ({"model": {"grid_range": [0, 1, 2]}}, "model.grid_range", "a < b"),
    ({"model": {"spline_order": 7}}, "model.spline_order", "1..5"),
    ({"model": {"activation": "relu"}}, "model.activation", "must be one of"),
    ({"model": {"normalize_inputs": "yes"}}, "model.normalize_inputs", "true or false"),
    ({"model": {"embedding": "periodic"}}, "model.periodic", "at least one coordinate"),
    ({"model": {"periodic": ["x"]}}, "model.periodic", "only used with"),
    ({"model": {"embedding": "periodic", "periodic": ["x", "x"]}}, "model.periodic", "twice"),
    ({"model": {"depth": 3}}, "model.depth", "unknown key"),
    ({"model": 3}, "model", "must be a table"),
    ({"sampling": {"interior": 0}}, "sampling.interior", "must be >= 1"),
    ({"sampling": {"boundary": -2}}, "sampling.boundary", "must be >= 1"),
    ({"sampling": {"method": "random"}}, "sampling.method", "must be one of"),
    ({"sampling": {"adaptive": "rad"}}, "sampling.adaptive_every", "must be >= 1"),
    ({"sampling": {"adaptive": "rad", "adaptive_every": 5, "interior": 100,
                   "adaptive_candidates": 50}}, "sampling.adaptive_candidates", ">= sampling"),
    ({"sampling": {"adaptive": "rar-d", "adaptive_every": 5, "adaptive_candidates": 50,
                   "rar_add": 60}}, "sampling.rar_add", "<= sampling.adaptive_candidates"),
    ({"sampling": {"rad_k": -1}}, "sampling.rad_k", "must be >= 0"),
    ({"weighting": {"kind": "softadapt"}}, "weighting.kind", "must be one of"),
    ({"weighting": {"weights": {"pde": -1}}}, "weighting.weights", "pde: must be >= 0"),
    ({"weighting": {"weights": [1, 2]}}, "weighting.weights", "table"),
    ({"weighting": {"alpha": 2}}, "weighting.alpha", "must be <= 1"),
    ({"evaluation": {"every": -1}}, "evaluation.every", "must be >= 0"),
    ({"checkpoint": {"each": 3}}, "checkpoint.each", "unknown key"),
    ({"model": {"kind": "mlp"}, "stages": [{}, {"grid_extend": 10}]}, "stages[1].grid_extend",
     "MLP"),
    ({"model": {"kind": "mlp"}, "stages": [{"grid_update": True}]}, "stages[0].grid_update",
     "MLP"),
    ({"model": {"grid_size": 10}, "stages": [{"grid_extend": 5}]}, "stages[0].grid_extend",
     ">= the current grid size 10"),
    ({"stages": [{"grid_extend": 10}, {"grid_extend": 8}]}, "stages[1].grid_extend",
     ">= the current grid size 10"),
]


@pytest.mark.parametrize("d, key, fault", ERRORS, ids=[e[1] + ":" + e[2][:12] for e in ERRORS])
def test_errors_name_source_key_and_fault(d, key, fault):
    msg = _error(d)
    assert msg.startswith(f"solvers/x.toml: {key}: "), msg
    assert fault in msg, msg


def test_example_message_from_the_issue():
    assert _error({"stages": [{"lr": -1}]}) == "solvers/x.toml: stages[0].lr: must be > 0, got -1"


def test_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nkind = "kan"\n[[stages]]\nsteps = 10\n[[stages]]\nlr = -1\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: stages\[1\]\.lr: must be > 0"):
        load_config(bad)
    syntax = tmp_path / "syntax.toml"
    syntax.write_text("[model\nkind = 1\n")
    with pytest.raises(ConfigError, match=r"syntax\.toml: TOML syntax error"):
        load_config(syntax)
    with pytest.raises(ConfigError, match=r"missing\.toml: not found"):
        load_config(tmp_path / "missing.toml")
    ok = tmp_path / "my_solver.toml"
    ok.write_text("seed = 3\n")
    c = load_config(ok)
    assert c.name == "my_solver" and c.seed == 3 and c.source == str(ok)


def test_overrides():
    c = config_from_dict({"name": "a"}, source="a.toml")
    o = c.with_overrides({"engine": "autograd", "seed": 4, "device": None})
    assert (o.engine, o.seed, o.device, o.name) == ("autograd", 4, "cpu", "a")
    assert o.source == "a.toml"
    with pytest.raises(ConfigError, match=r"^overrides: engine: must be one of"):
        c.with_overrides({"engine": "fast"})
    with pytest.raises(ConfigError, match=r"^overrides: steps: unknown override"):
        c.with_overrides({"steps": 3})
    assert c.with_overrides(None) is c


def test_diff_configs_names_dotted_keys():
    a = config_from_dict({"stages": [{"steps": 3}, {"optimizer": "lbfgs"}]}).to_dict()
    b = config_from_dict({"seed": 1, "stages": [{"steps": 4}, {"optimizer": "lbfgs"}]}).to_dict()
    assert diff_configs(a, b) == ["seed", "stages[0].steps"]


def test_engine_names_the_method_and_kernel_the_kan_layers():
    """The former engines "jet-torch"/"jet-triton" read as engine "jet" with that kernel, in
    files, dicts and overrides; a contradicting kernel is refused in one line."""
    c = config_from_dict({"engine": "jet-triton"}, source="s.toml")
    assert (c.engine, c.kernel) == ("jet", "triton")
    assert config_from_dict(c.to_dict()) == c
    assert (c.derivative_engine.name, c.derivative_engine.kernel) == ("jet", "triton")
    assert config_from_dict({}).kernel == "auto"
    with pytest.raises(ConfigError, match=r"^s\.toml: engine: engine 'jet-torch' means kernel "
                                          r"'torch', but kernel is 'triton'$"):
        config_from_dict({"engine": "jet-torch", "kernel": "triton"}, source="s.toml")
    with pytest.raises(ConfigError, match=r"^s\.toml: kernel: must be one of"):
        config_from_dict({"kernel": "cuda"}, source="s.toml")
    o = config_from_dict({"kernel": "triton"}).with_overrides({"engine": "jet-torch"})
    assert (o.engine, o.kernel) == ("jet", "torch")
    assert config_from_dict({"engine": "autograd"}).with_overrides(
        {"engine": "jet"}).kernel == "auto"


def test_a_checkpoint_written_with_a_former_engine_name_resumes():
    from kanpde.training.checkpoint import check_compatible

    old = config_from_dict({"name": "s"}).to_dict()
    old.pop("kernel")
    old["engine"] = "jet-torch"  # as a checkpoint of an earlier version stored it
    now = config_from_dict({"name": "s", "engine": "jet", "kernel": "torch"}).to_dict()
    check_compatible({"problem": "p", "config": old, "path": "c.pt"}, "p", now)
    with pytest.raises(ConfigError, match=r"differs in kernel"):
        check_compatible({"problem": "p", "config": old, "path": "c.pt"}, "p",
                         config_from_dict({"name": "s"}).to_dict())
