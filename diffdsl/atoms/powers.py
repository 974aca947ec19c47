"""Power-family atoms: power(x, p) (with square, sqrt, inv_pos) and geo_mean.

Canonicalized with second-order / 3-d power cones (rational p), or kept in P for square.
Curvature follows CVXPY for every real p:

    p = 0          constant 1
    p = 1          x (affine)
    0 < p < 1      concave, increasing,        domain x ≥ 0
    p < 0          convex, decreasing,          domain x > 0
    p = 2, 4, 8…   convex, |x|^p: increasing for x ≥ 0, decreasing for x ≤ 0
    other p > 1    convex, increasing,          domain x ≥ 0
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..errors import ShapeError
from ..expressions.dcp import Curvature, Monotonicity, Sign
from ..expressions.expression import Expression, as_expression
from ..expressions.shapes import Shape, is_vector_shape
from .atom import Atom, Elementwise, require_number, signed_monotonicity


def is_power_of_two(p: Fraction) -> bool:
    """p ∈ {1, 2, 4, 8, ...}."""
    return p.denominator == 1 and p.numerator > 0 and (p.numerator & (p.numerator - 1)) == 0


class Power(Elementwise):
    """x^p elementwise for a real constant p (see the module docstring for the cases)."""

    name = "power"

    def __init__(self, x, p) -> None:
        self.p = require_number(p, "power exponent p")
        #: rational approximation used by the cone representation (as in CVXPY)
        self.p_rational = Fraction(self.p).limit_denominator(1024)
        super().__init__(x)

    def _constant(self, dpp: bool) -> bool:
        return self.p == 0 or super()._constant(dpp)

    def sign_from_args(self) -> Sign:
        return self.args[0].sign if self.p == 1 else Sign.NONNEG

    def atom_curvature(self, dpp: bool) -> Curvature:
        return Curvature.of(self.p <= 0 or self.p >= 1, 0 <= self.p <= 1)

    def monotonicity(self, i: int) -> Monotonicity:
        p = self.p_rational
        if 0 <= p <= 1:
            return Monotonicity.of(True, p == 0)
        if p < 0:
            return Monotonicity.DECREASING
        if is_power_of_two(p):
            return signed_monotonicity(self.args[0])
        return Monotonicity.INCREASING

    def domain(self) -> list:
        if self.p in (0, 1) or (self.p > 1 and is_power_of_two(self.p_rational)):
            return []
        return [self.args[0] >= 0]

    def numeric(self, values):
        return np.power(values[0], self.p)

    @property
    def label(self) -> str:
        return {2.0: "square", 0.5: "sqrt", -1.0: "inv_pos"}.get(self.p, "power")

    def format(self) -> str:
        if self.label != "power":
            return f"{self.label}({self.args[0]})"
        return f"power({self.args[0]}, {self.p:g})"


class GeoMean(Atom):
    """Weighted geometric mean ∏ x_i^{w_i}, w = p / Σp, of a vector. Concave, increasing;
    affine when a single weight is nonzero. Domain x ≥ 0."""

    name = "geo_mean"
    monotonicity_of_atom = Monotonicity.INCREASING

    def __init__(self, x, p=None) -> None:
        x = as_expression(x)
        if not (x.ndim == 0 or is_vector_shape(x.shape)):
            raise ShapeError(f"geo_mean needs a vector argument, got shape {x.shape}")
        if p is None:
            p = np.ones(x.size)
        p = np.asarray(p, dtype=float).reshape(-1)
        if p.size != x.size:
            raise ShapeError(f"geo_mean: {p.size} weights for {x.size} entries")
        if np.any(p < 0) or not np.any(p > 0) or not np.all(np.isfinite(p)):
            raise ValueError("geo_mean weights must be finite, nonnegative, and not all zero")
        self.weights = p / p.sum()
        super().__init__(x)

    def shape_from_args(self) -> Shape:
        return ()

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def atom_curvature(self, dpp: bool) -> Curvature:
        return Curvature.of(np.count_nonzero(self.weights) == 1, True)

    def domain(self) -> list:
        return [self.args[0] >= 0]

    def numeric(self, values):
        return np.prod(np.power(values[0].reshape(-1, order="F"), self.weights))

    def format_data(self) -> list[str]:
        w = self.weights
        return [] if np.allclose(w, w[0]) else [np.array2string(w, precision=3, separator=", ")]


def power(x, p) -> Expression:
    """x^p elementwise for a real number p."""
    return Power(x, p)


def square(x) -> Expression:
    return Power(x, 2)


def sqrt(x) -> Expression:
    return Power(x, 0.5)


def inv_pos(x) -> Expression:
    """1/x for x > 0."""
    return Power(x, -1)


def geo_mean(x, p=None) -> Expression:
    return GeoMean(x, p)
