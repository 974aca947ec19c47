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
import scipy.sparse as sp

from ..errors import ShapeError
from ..expressions.dcp import Curvature, Monotonicity, Sign
from ..expressions.expression import Expression, as_expression
from ..expressions.shapes import Shape, is_vector_shape
from .atom import Atom, Elementwise, require_number, signed_monotonicity
from .quadratic import quad_over_lin_epigraph


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

    @property
    def value(self):
        """x⁰ = 1 whatever x is (even without a value): power(x, 0) is constant."""
        if self.p == 0:
            return np.ones(self.shape) if self.shape else 1.0
        return super().value

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

    def quadratic_form(self, args, ctx):
        """x² = ½ x (2) x for a scalar x."""
        if self.p != 2 or self.size != 1:
            return None
        return args[0], sp.identity(1, format="csr") * 2.0

    def domain(self) -> list:
        if self.p in (0, 1) or (self.p > 1 and is_power_of_two(self.p_rational)):
            return []
        return [self.args[0] >= 0]

    def numeric(self, values):
        return np.power(values[0], self.p)

    def canonicalize(self, args, ctx):
        """Second-order cones for p ∈ {2, ½, −1}; 3-d power cones otherwise:
        p > 1: |x| ≤ t^{1/p};  0 < p < 1: t ≤ x^p;  p < 0: 1 ≤ t^{1/(1−p)} x^{−p/(1−p)}."""
        (x,) = args
        n, p = self.size, self.p
        if p == 0:
            return ctx.ones(n)
        if p == 1:
            return x
        t = ctx.new_variable(n)
        one = ctx.ones(n)
        if p == 2:                                           # x² ≤ t · 1
            quad_over_lin_epigraph(ctx, x, 1, t, one)
        elif p == 0.5:                                       # t² ≤ x · 1
            quad_over_lin_epigraph(ctx, t, 1, x, one)
        elif p == -1:                                        # 1² ≤ x · t
            quad_over_lin_epigraph(ctx, one, 1, t, x)
        elif p > 1:
            ctx.pow_cone(t, one, x, 1.0 / p)
            if not is_power_of_two(self.p_rational):
                ctx.nonneg(x)
        elif p > 0:
            ctx.pow_cone(x, one, t, p)
        else:
            ctx.pow_cone(t, x, one, 1.0 / (1.0 - p))
        return t

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

    def canonicalize(self, args, ctx):
        """t ≤ Π x_i^{w_i} as a chain of 3-d power cones: g_1 = t,
        g_i ≤ x_i^{α_i} g_{i+1}^{1−α_i} with α_i = w_i / Σ_{j≥i} w_j, and g_last = x_last."""
        order = np.flatnonzero(self.weights)     # x is a vector: F and C order agree
        x, w = args[0], self.weights[order]
        if len(order) == 1:
            return x.select(order)
        t = ctx.new_variable(1)
        g = t
        for i in range(len(order) - 1):
            alpha = w[i] / w[i:].sum()
            last = i == len(order) - 2
            nxt = x.select(order[i + 1:i + 2]) if last else ctx.new_variable(1)
            ctx.pow_cone(x.select(order[i:i + 1]), nxt, g, alpha)
            g = nxt
        return t

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
