"""Pure math of the ansatz derivatives: local B-spline bases (:mod:`~kanpde.core.spline`), the
second-order :class:`~kanpde.core.jet.Jet` and its push-forward rules
(:mod:`~kanpde.core.jet`), the derivative engines (:mod:`~kanpde.core.engines`: forward jets,
nested autograd as the reference) and memory-bounded chunking
(:mod:`~kanpde.core.chunking`)."""
