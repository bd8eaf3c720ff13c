"""Domains for PINN collocation: interval, box, ball, polygon, CSG, space-time, meshes.

Every domain is a :class:`Domain`: a closed set with ``dim``, ``bbox``, named
``boundary_parts``, membership (``inside``, ``on_boundary``), outward ``normal`` and sampling
(``sample_interior``, ``sample_boundary`` returning a :class:`BoundarySample`). Time, when
present (:class:`SpaceTime`), is the last coordinate.
"""

from kanpde.geometry.ball import Ball, Disk
from kanpde.geometry.base import BoundarySample, Domain
from kanpde.geometry.box import Box, Interval
from kanpde.geometry.csg import Difference, Intersection, Union
from kanpde.geometry.mesh import MeshDomain
from kanpde.geometry.meshgen import l_shape_mesh, rectangle_mesh
from kanpde.geometry.polygon import Polygon
from kanpde.geometry.spacetime import SpaceTime

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
