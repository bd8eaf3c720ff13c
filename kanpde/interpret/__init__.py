"""Interpretability of trained KANs: importance, pruning, symbolic edges, formulas (the
sparsity penalty that prepares a KAN for them is :mod:`kanpde.training.regularization`).

* :mod:`~kanpde.interpret.importance`: edge and node importance scores;
* :mod:`~kanpde.interpret.prune`: edge masking, node removal;
* :mod:`~kanpde.interpret.symbolic`: fitting edges to a library of primitives;
* :mod:`~kanpde.interpret.refit`: the problem's loss and short L-BFGS/Adam loops;
* :mod:`~kanpde.interpret.formula`: the composed closed-form expression (SymPy);
* :mod:`~kanpde.interpret.closed_form`: a formula as a model: refit, constant snapping and
  simplification judged by the validation loss, time-limited SymPy calls;
* :mod:`~kanpde.interpret.draw`: the network figure and per-layer edge plots;
* :mod:`~kanpde.interpret.explain`: the ``kanpde explain`` workflow on a run directory.
"""

from kanpde.interpret.importance import Importance, importance
from kanpde.interpret.prune import prune
from kanpde.interpret.symbolic import EdgeFit, auto_symbolic, fit_edge
from kanpde.nn.parts import trainable_parameters as count_parameters  # used parameters

__all__ = ["Importance", "importance", "count_parameters", "prune", "EdgeFit", "auto_symbolic",
           "fit_edge"]
