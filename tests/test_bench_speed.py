"""``kanpde bench speed``: times to MSE levels and library/kanpde ratios from run histories
(synthetic histories whose crossing times are known exactly)."""

import pytest

from kanpde.cli.bench import speed


def record(recipe: str, library: str, times: list[float], mses: list[float]) -> dict:
    """A finished run whose evaluations at ``times`` (wall = 2 x CPU) had errors ``mses``."""
    return {"recipe": recipe, "library": library, "seed": 0, "status": "ok",
            "mse": mses[-1], "n_params": 10,
            "history": {"eval_step": list(range(len(times))), "eval_mse": mses,
                        "eval_time_s": times, "eval_cpu_s": [t / 2 for t in times]}}


@pytest.fixture
def rows():
    return speed.timings([
        record("pykan", "pykan", [0, 100, 400, 900], [1e-2, 5e-5, 5e-6, 3e-7]),
        record("pykan", "kanpde", [0, 2, 10, 40, 90], [1e-2, 5e-5, 5e-6, 5e-7, 2e-7]),
        record("deepxde", "deepxde", [0, 50], [1e-3, 9e-5]),
        record("deepxde", "kanpde", [0, 10, 30], [1e-3, 2e-4, 8e-5])])


def test_times_to_each_level_and_to_the_library_final(rows):
    kan = rows[1]
    assert kan["wall"] == {"0.0001": 2, "1e-05": 10, "1e-06": 40, "1e-07": None,
                           "library_final": 90}  # pykan's final 3e-7 is first met at 90 s
    assert kan["cpu"]["1e-06"] == 20
    assert rows[0]["wall"]["1e-07"] is None and rows[0]["wall"]["library_final"] == 900


def test_ratios_per_level_and_at_the_library_final(rows):
    wall = {q["library"]: q for q in speed.ratios(rows, "wall")}
    assert wall["pykan"]["ratio"] == pytest.approx(900 / 90)
    assert wall["pykan"]["levels"] == pytest.approx(
        {"0.0001": 50.0, "1e-05": 40.0, "1e-06": 22.5, "1e-07": None})
    assert wall["deepxde"]["ratio"] == pytest.approx(50 / 30)  # 9e-5 first met by 8e-5 at 30 s
    assert wall["deepxde"]["levels"]["0.0001"] == pytest.approx(50 / 30)
    assert wall["deepxde"]["levels"]["1e-05"] is None


def test_markdown_names_the_ratios_and_never(rows):
    text = speed.markdown(rows, "kanpde bench speed")
    assert "| pykan | 0 | 50x | 40x | 22.5x | — |" in text
    assert "| pykan | kanpde | 0 | 2.00e-07 | 2 | 10 | 40 | never | 90 |" in text
    assert "pykan seed 0: 10x" in text
