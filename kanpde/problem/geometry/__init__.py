"""Domains for PINN collocation: interval, box, ball, polygon, CSG, space-time, meshes.

Every domain is a :class:`Domain`: a closed set with ``dim``, ``bbox``, named
``boundary_parts``, membership (``inside``, ``on_boundary``), outward ``normal`` and sampling
(``sample_interior``, ``sample_boundary`` returning a :class:`BoundarySample`). Time, when
present (:class:`SpaceTime`), is the last coordinate.
"""

from kanpde.problem.geometry.ball import Ball, Disk
from kanpde.problem.geometry.base import BoundarySample, Domain
from kanpde.problem.geometry.box import Box, Interval
from kanpde.problem.geometry.csg import Difference, Intersection, Union
from kanpde.problem.geometry.mesh import MeshDomain
from kanpde.problem.geometry.meshgen import l_shape_mesh, rectangle_mesh
from kanpde.problem.geometry.polygon import Polygon
from kanpde.problem.geometry.spacetime import SpaceTime

__all__ = [
    "Ball",
    "BoundarySample",
    "Box",
    "Difference",
    "Disk",
    "Domain",
    "Intersection",
    "Interval",
    "MeshDomain",
    "Polygon",
    "SpaceTime",
    "Union",
    "l_shape_mesh",
    "rectangle_mesh",
]
