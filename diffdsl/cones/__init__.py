"""Typed cones of the standard form s ∈ K = Z × R₊ × Q × S₊ × K_exp × K_pow."""
from .cones import (Cone, ConeDims, ExponentialCone, NonnegativeCone, PowerCone, PSDCone,
                    SecondOrderCone, ZeroCone, svec_indices)

__all__ = ["Cone", "ConeDims", "ZeroCone", "NonnegativeCone", "SecondOrderCone", "PSDCone",
           "ExponentialCone", "PowerCone", "svec_indices"]
