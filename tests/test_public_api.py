"""The package's public surface: the names the README's workflows use, imported lazily."""

import subprocess
import sys
from pathlib import Path

import kanpde

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {"solve", "load_problem", "Problem", "Dirichlet", "Neumann", "Robin", "Periodic",
          "Initial", "InitialRate", "Observations", "Scope", "KAN", "MLP", "autograd_jet",
          "load_config", "SolverConfig", "Result", "load_result", "load_run", "__version__"}

#: what ``import kanpde; kanpde.KAN`` must not load
HEAVY = ("kanpde.training", "kanpde.io", "kanpde.cli", "kanpde.tune", "kanpde.interpret",
         "optuna", "matplotlib", "h5py")


def test_the_public_names_are_the_readmes():
    assert set(kanpde.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(kanpde, name) is not None


def test_the_networks_load_without_training_results_or_the_command_line():
    code = "import sys, kanpde; kanpde.KAN; print('\\n'.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    loaded = proc.stdout.split()
    assert "kanpde.nn.kan" in loaded
    assert [m for m in loaded if m.startswith(HEAVY)] == []
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")]
    assert "kanpde.nn.kan" in imported and not [m for m in imported if m.startswith(HEAVY)]
