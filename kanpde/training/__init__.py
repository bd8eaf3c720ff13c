"""The pieces of :func:`kanpde.train.solve`: models, loop, optimisers, weights, points,
checkpoints and metrics (one concept per module)."""

from kanpde.training.checkpoint import load_checkpoint, save_checkpoint
from kanpde.training.metrics import Evaluator
from kanpde.training.model import build_model, build_model_from_spec, model_spec
from kanpde.training.optim import learning_rate, make_optimizer
from kanpde.training.points import TrainingPoints, sample_points
from kanpde.training.weighting import LossWeights, causal_terms

__all__ = ["Evaluator", "LossWeights", "TrainingPoints", "build_model",
           "build_model_from_spec", "causal_terms", "learning_rate", "load_checkpoint",
           "make_optimizer", "model_spec", "sample_points", "save_checkpoint"]
