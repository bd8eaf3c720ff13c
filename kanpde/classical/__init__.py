"""Classical (non-neural) solvers that produce reference solutions for benchmark PDEs.

* :mod:`kanpde.classical.burgers`: viscous Burgers, exact by Cole–Hopf + Gauss–Hermite.
* :mod:`kanpde.classical.allen_cahn`: periodic Allen–Cahn, Fourier spectral ETDRK4.

``python -m kanpde.classical --out problems/data`` regenerates the stored reference files
(``burgers1d.h5``, ``allen_cahn1d.h5``; layout in :mod:`kanpde.io.reference_files`).
"""

from kanpde.classical.allen_cahn import (
    allen_cahn_etdrk4,
    allen_cahn_time_grid,
    make_allen_cahn_reference,
)
from kanpde.classical.burgers import (
    BURGERS_NU,
    burgers_cole_hopf,
    burgers_cole_hopf_ux,
    burgers_grid,
    make_burgers_reference,
)

__all__ = [
    "BURGERS_NU",
    "allen_cahn_etdrk4",
    "allen_cahn_time_grid",
    "burgers_cole_hopf",
    "burgers_cole_hopf_ux",
    "burgers_grid",
    "make_allen_cahn_reference",
    "make_burgers_reference",
]
