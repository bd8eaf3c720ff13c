"""How to solve: :func:`kanpde.training.solve.solve` and its pieces, one concept per module
(configuration, trainer, loss, optimisers, weighting, points, metrics, checkpoints, sharding
over processes)."""
