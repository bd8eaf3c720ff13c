"""Model families: :class:`KAN` and :class:`MLP`, and input embeddings."""

from kanpde.nn.embed import AffineMap, Chain, FourierFeatures, PeriodicEmbedding
from kanpde.nn.kan import KAN
from kanpde.nn.kan_layer import KANLayer
from kanpde.nn.mlp import MLP

__all__ = ["KAN", "KANLayer", "MLP", "AffineMap", "Chain", "FourierFeatures",
           "PeriodicEmbedding"]
