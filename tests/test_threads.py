"""The CPU thread chooser, its config key and command-line flag."""

import argparse

import pytest
import torch

from kanpde.training.config import ConfigError, config_from_dict, diff_configs
from kanpde.training.threads import apply_threads, available_cores, choose_threads


@pytest.mark.parametrize(
    "cores, load, expect",
    [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.2, 1), (2, 17.0, 1), (8, 3.2, 5),
     (8, 0.0, 8), (1, 0.0, 1), (16, 15.6, 1), (4, -1.0, 4)],
)
def test_auto_threads_follow_free_cores(cores, load, expect):
    assert choose_threads(None, cores=cores, load=load) == expect


@pytest.mark.parametrize("requested, cores, expect", [(1, 8, 1), (3, 8, 3), (12, 4, 4)])
def test_requested_threads_never_exceed_cores(requested, cores, expect):
    assert choose_threads(requested, cores=cores, load=100.0) == expect


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_thread_counts(bad):
    with pytest.raises(ValueError, match="threads"):
        choose_threads(bad, cores=4, load=0.0)


def test_defaults_come_from_this_machine():
    assert 1 <= choose_threads() <= available_cores()


def test_apply_threads_sets_torch_and_tolerates_a_fixed_interop_pool():
    before = torch.get_num_threads()
    try:
        assert apply_threads(1, cores=4, load=0.0) == 1
        assert torch.get_num_threads() == 1
        assert apply_threads(None, cores=2, load=1.0) == 1  # interop already fixed: no error
    finally:
        torch.set_num_threads(before)


def test_threads_config_key_and_override():
    config = config_from_dict({"threads": 3})
    assert config.threads == 3
    assert config_from_dict({}).threads is None
    assert config_from_dict(config.to_dict()) == config
    assert config.with_overrides({"threads": 1}).threads == 1
    assert config.with_overrides({"threads": None}).threads == 3
    with pytest.raises(ConfigError, match="threads"):
        config_from_dict({"threads": 0})
    with pytest.raises(ConfigError, match="threads"):
        config.with_overrides({"threads": -1})
    # a run may resume with another thread count
    assert diff_configs(config.to_dict(), config_from_dict({"threads": 1}).to_dict()) == []


def test_threads_flag_on_solve_and_compare():
    from kanpde.cli.commands import OVERRIDE_KEYS, _overrides, _positive_int

    assert "threads" in OVERRIDE_KEYS
    assert _overrides(argparse.Namespace(threads=2, seed=None)) == {"threads": 2}
    with pytest.raises(argparse.ArgumentTypeError):
        _positive_int("0")


@pytest.mark.parametrize("command", ["solve", "compare"])
def test_threads_flag_parses(command):
    from kanpde.cli.main import build_parser

    extra = ["--solvers", "a.toml", "--out", "o"] if command == "compare" else []
    args = build_parser().parse_args([command, "p.py", *extra, "--threads", "2"])
    assert args.threads == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "p.py", *extra, "--threads", "0"])
