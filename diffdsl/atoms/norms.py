"""Norms: norm(x, p, axis), norm1, norm2, norm_inf, pnorm.

    norm1(x) = Σ|x_i|,  norm_inf(x) = max|x_i|   (linear constraints)
    pnorm(x, p) = (Σ|x_i|^p)^{1/p}                (second-order / power cones)
        p > 1: convex, increasing for x ≥ 0, decreasing for x ≤ 0
        p < 1 (p ≠ 0): concave, increasing, domain x ≥ 0
All are ≥ 0. For a matrix with ``axis=None``, ``norm`` follows CVXPY/NumPy: p=1 is the max
column sum, 2 the largest singular value (sigma_max), 'fro' Frobenius, 'nuc' nuclear,
inf the max row sum.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..expressions.dcp import Curvature, Monotonicity, Sign
from ..expressions.expression import Expression, as_expression
from .atom import AxisAtom, require_number, signed_monotonicity


class NormAtom(AxisAtom):
    """Convex, nonnegative; increasing where x ≥ 0 and decreasing where x ≤ 0."""

    curvature_of_atom = Curvature.CONVEX

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def monotonicity(self, i: int) -> Monotonicity:
        return signed_monotonicity(self.args[0])


class Norm1(NormAtom):
    name = "norm1"

    def numeric(self, values):
        return np.sum(np.abs(values[0]), axis=self.axis, keepdims=self.keepdims)

    def canonicalize(self, args, ctx):
        """Σ |x_i| per group, with |x| ≤ a elementwise."""
        a = ctx.new_variable(self.args[0].size)
        ctx.nonneg(a - args[0])
        ctx.nonneg(a + args[0])
        n = self.args[0].size
        return a.linear(sp.csr_matrix((np.ones(n), (self.output_index(), np.arange(n))),
                                      shape=(self.size, n)))


class NormInf(NormAtom):
    name = "norm_inf"

    def numeric(self, values):
        return np.max(np.abs(values[0]), axis=self.axis, keepdims=self.keepdims)

    def canonicalize(self, args, ctx):
        """t_j ≥ ±x_i for every entry i of group j."""
        t = ctx.new_variable(self.size)
        spread = t.select(self.output_index())
        ctx.nonneg(spread - args[0])
        ctx.nonneg(spread + args[0])
        return t


class Pnorm(NormAtom):
    name = "pnorm"

    def __init__(self, x, p: float = 2, axis: int | None = None, keepdims: bool = False) -> None:
        self.p = require_number(p, "pnorm exponent p")
        if self.p == 0 or self.p == 1 or np.isinf(self.p):
            raise ValueError("pnorm needs a finite p ∉ {0, 1}; use norm1 / norm_inf")
        super().__init__(x, axis, keepdims)

    def atom_curvature(self, dpp: bool) -> Curvature:
        return Curvature.CONVEX if self.p > 1 else Curvature.CONCAVE

    def monotonicity(self, i: int) -> Monotonicity:
        return super().monotonicity(i) if self.p > 1 else Monotonicity.INCREASING

    def domain(self) -> list:
        return [self.args[0] >= 0] if self.p < 1 else []

    def numeric(self, values):
        x = values[0] if self.p < 1 else np.abs(values[0])
        s = np.sum(np.power(x, self.p), axis=self.axis, keepdims=self.keepdims)
        return np.power(s, 1.0 / self.p)

    def canonicalize(self, args, ctx):
        """p = 2: one second-order cone per group. Otherwise, per group with t = Σ r_i:
        p > 1: |x_i| ≤ r_i^{1/p} t^{1−1/p};  0 < p < 1: r_i ≤ x_i^p t^{1−p};
        p < 0: t ≤ r_i^{1/(1−p)} x_i^{−p/(1−p)}."""
        x, k = self.lines(args[0])
        t = ctx.new_variable(self.size)
        if self.p == 2:
            ctx.soc(t, x)
            return t
        n = x.rows
        r = ctx.new_variable(n)
        spread = t.select(np.repeat(np.arange(self.size), k))
        ctx.equal(t, r.linear(sp.kron(sp.identity(self.size), np.ones((1, k)), format="csr")))
        if self.p > 1:
            ctx.pow_cone(r, spread, x, 1.0 / self.p)
        elif self.p > 0:
            ctx.pow_cone(x, spread, r, self.p)
        else:
            ctx.pow_cone(r, x, spread, 1.0 / (1.0 - self.p))
        return t

    @property
    def label(self) -> str:
        return "norm" if self.p == 2 else "pnorm"

    def format_data(self) -> list[str]:
        return ([] if self.p == 2 else [f"{self.p:g}"]) + super().format_data()

    def format(self) -> str:
        return f"{self.label}({', '.join([self.args[0].format()] + self.format_data())})"


def norm1(x, axis: int | None = None, keepdims: bool = False) -> Expression:
    return Norm1(x, axis, keepdims)


def norm_inf(x, axis: int | None = None, keepdims: bool = False) -> Expression:
    return NormInf(x, axis, keepdims)


def pnorm(x, p: float = 2, axis: int | None = None, keepdims: bool = False) -> Expression:
    """(Σ|x_i|^p)^{1/p} (p ≥ 1, convex) or (Σ x_i^p)^{1/p} (p < 1, concave, x ≥ 0)."""
    if p == 1:
        return Norm1(x, axis, keepdims)
    if p in (np.inf, "inf", "Inf"):
        return NormInf(x, axis, keepdims)
    return Pnorm(x, p, axis, keepdims)


def norm(x, p=2, axis: int | None = None, keepdims: bool = False) -> Expression:
    """Vector p-norm (p = 1, 2, inf, or any real p for pnorm), along ``axis`` if given; for a
    matrix with ``axis=None``: induced 1/2/inf norms, 'fro' or 'nuc'."""
    from .affine_structural import vec
    from .piecewise_linear import Max
    from .spectral import NormNuc, SigmaMax
    x = as_expression(x)
    if p in ("inf", "Inf"):
        p = np.inf
    if axis is None and x.ndim == 2:
        nontrivial = sum(d > 1 for d in x.shape)
        if p == 1:
            return Max(Norm1(x, axis=0))
        if p == "fro" or (p == 2 and nontrivial <= 1):
            return Pnorm(vec(x), 2)
        if p == 2:
            return SigmaMax(x)
        if p == "nuc":
            return NormNuc(x)
        if p == np.inf:
            return Max(Norm1(x, axis=1))
        if isinstance(p, str):
            raise ValueError(f"unknown norm p={p!r}; expected 1, 2, inf, 'fro', 'nuc' or a number")
        return Pnorm(vec(x), p)
    if p == "fro":
        return Pnorm(vec(x) if axis is None else x, 2, axis, keepdims)
    if isinstance(p, str):
        raise ValueError(f"unknown norm p={p!r}; expected 1, 2, inf, 'fro' or a number")
    return pnorm(x, p, axis, keepdims)


def norm2(x, axis: int | None = None, keepdims: bool = False) -> Expression:
    return norm(x, 2, axis, keepdims)
