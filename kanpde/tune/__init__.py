"""Equal-effort hyperparameter search per model family: ``kanpde tune``.

* :mod:`kanpde.tune.space`: search spaces -> solver configurations;
* :mod:`kanpde.tune.validation`: the selection score, the PINN loss on fresh points;
* :mod:`kanpde.tune.study`: the optuna study, its files and resume.
"""

from kanpde.tune.study import TuneError, TuneResult, tune

__all__ = ["tune", "TuneResult", "TuneError"]
