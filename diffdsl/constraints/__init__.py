"""Constraint types."""
from .constraint import (PSD, SOC, Constraint, Equality, ExpCone, Inequality,
                         PowCone3D)

__all__ = ["Constraint", "Equality", "Inequality", "PSD", "SOC", "ExpCone", "PowCone3D"]
