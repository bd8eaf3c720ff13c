"""Fused spline-jet kernels for KAN layers: Triton (GPU) here, compiled CPU loops in
:mod:`kanpde.kernels.cpu`.

``available(device)`` says whether they can run; ``kan_layer_jet`` is the differentiable entry
point (see :mod:`kanpde.kernels.autograd` for the math and integration notes). Importing this
package never imports triton: the kernels module :mod:`kanpde.kernels.spline_jet` is loaded on
the first kernel call, so ``TRITON_INTERPRET=1`` must be set before that call to run on CPU.
"""

from kanpde.kernels.autograd import KANLayerJetFunction, available, kan_layer_jet

__all__ = ["KANLayerJetFunction", "available", "kan_layer_jet"]
