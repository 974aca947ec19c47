"""Piecewise-linear atoms: abs, pos, neg, maximum, minimum, max, min, sum_largest,
sum_smallest. Each is representable with linear constraints (zero and nonnegative cones).
"""
from __future__ import annotations

import builtins

import numpy as np

from ..errors import ShapeError
from ..expressions.dcp import Curvature, Monotonicity, Sign
from ..expressions.expression import Expression, as_expression
from ..expressions.shapes import Shape
from .atom import Atom, AxisAtom, Elementwise, signed_monotonicity


class Abs(Elementwise):
    """|x| elementwise. Convex; increasing for x ≥ 0, decreasing for x ≤ 0."""

    name = "abs"
    curvature_of_atom = Curvature.CONVEX

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def monotonicity(self, i: int) -> Monotonicity:
        return signed_monotonicity(self.args[0])

    def numeric(self, values):
        return np.abs(values[0])

    def canonicalize(self, args, ctx):
        """t ≥ x, t ≥ −x."""
        (x,) = args
        t = ctx.new_variable(self.size)
        ctx.nonneg(t - x)
        ctx.nonneg(t + x)
        return t


class Pos(Elementwise):
    """max(x, 0) elementwise. Convex, increasing; zero when x ≤ 0."""

    name = "pos"
    curvature_of_atom = Curvature.CONVEX
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return Sign.of(True, self.args[0].is_nonpos())

    def numeric(self, values):
        return np.maximum(values[0], 0.0)

    def canonicalize(self, args, ctx):
        """t ≥ x, t ≥ 0."""
        t = ctx.new_variable(self.size)
        ctx.nonneg(t - args[0])
        ctx.nonneg(t)
        return t


class Neg(Elementwise):
    """max(−x, 0) elementwise. Convex, decreasing; zero when x ≥ 0."""

    name = "neg"
    curvature_of_atom = Curvature.CONVEX
    monotonicity_of_atom = Monotonicity.DECREASING

    def sign_from_args(self) -> Sign:
        return Sign.of(True, self.args[0].is_nonneg())

    def numeric(self, values):
        return np.maximum(-values[0], 0.0)

    def canonicalize(self, args, ctx):
        """t ≥ −x, t ≥ 0."""
        t = ctx.new_variable(self.size)
        ctx.nonneg(t + args[0])
        ctx.nonneg(t)
        return t


class Maximum(Elementwise):
    """Elementwise maximum of two or more expressions (broadcast). Convex, increasing."""

    name = "maximum"
    curvature_of_atom = Curvature.CONVEX
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return Sign.of(any(a.is_nonneg() for a in self.args), all(a.is_nonpos() for a in self.args))

    def numeric(self, values):
        return np.maximum.reduce(np.broadcast_arrays(*values))

    def canonicalize(self, args, ctx):
        """t ≥ each argument."""
        t = ctx.new_variable(self.size)
        for a in self.broadcast_args(args):
            ctx.nonneg(t - a)
        return t


class Minimum(Elementwise):
    """Elementwise minimum of two or more expressions (broadcast). Concave, increasing."""

    name = "minimum"
    curvature_of_atom = Curvature.CONCAVE
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return Sign.of(all(a.is_nonneg() for a in self.args), any(a.is_nonpos() for a in self.args))

    def numeric(self, values):
        return np.minimum.reduce(np.broadcast_arrays(*values))

    def canonicalize(self, args, ctx):
        """t ≤ each argument."""
        t = ctx.new_variable(self.size)
        for a in self.broadcast_args(args):
            ctx.nonneg(a - t)
        return t


class Max(AxisAtom):
    """Largest entry (over all entries or along ``axis``). Convex, increasing."""

    name = "max"
    curvature_of_atom = Curvature.CONVEX
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return self.args[0].sign

    def numeric(self, values):
        return np.max(values[0], axis=self.axis, keepdims=self.keepdims)

    def canonicalize(self, args, ctx):
        """t_j ≥ every entry reducing into output j."""
        t = ctx.new_variable(self.size)
        ctx.nonneg(t.select(self.output_index()) - args[0])
        return t


class Min(AxisAtom):
    """Smallest entry (over all entries or along ``axis``). Concave, increasing."""

    name = "min"
    curvature_of_atom = Curvature.CONCAVE
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return self.args[0].sign

    def numeric(self, values):
        return np.min(values[0], axis=self.axis, keepdims=self.keepdims)

    def canonicalize(self, args, ctx):
        """t_j ≤ every entry reducing into output j."""
        t = ctx.new_variable(self.size)
        ctx.nonneg(args[0] - t.select(self.output_index()))
        return t


class SumLargest(Atom):
    """Sum of the k largest entries. Convex, increasing."""

    name = "sum_largest"
    curvature_of_atom = Curvature.CONVEX
    monotonicity_of_atom = Monotonicity.INCREASING

    def __init__(self, x, k: int) -> None:
        x = as_expression(x)
        if isinstance(k, Expression) or int(k) != k or k <= 0:
            raise ValueError(f"{self.name}: k must be a positive integer, got {k!r}")
        self.k = int(k)
        super().__init__(x)

    def shape_from_args(self) -> Shape:
        return ()

    def sign_from_args(self) -> Sign:
        return self.args[0].sign

    def numeric(self, values):
        v = np.sort(values[0].reshape(-1))
        return v[::-1][: self.k].sum()

    def canonicalize(self, args, ctx):
        """Σ_k largest x_i = min_q k q + Σ (x_i − q)₊ : returns k q + Σ s with s ≥ 0,
        s ≥ x − q (the sign flips for sum_smallest)."""
        sign = 1.0 if self.curvature_of_atom is Curvature.CONVEX else -1.0
        x = args[0].scale(sign)
        n = self.args[0].size
        q, s = ctx.new_variable(1), ctx.new_variable(n)
        ctx.nonneg(s)
        ctx.nonneg(s - x + q.select(np.zeros(n, np.int64)))
        total = q.scale(builtins.min(self.k, n)) + s.linear(np.ones((1, n)))
        return total.scale(sign)

    def format_data(self) -> list[str]:
        return [str(self.k)]


class SumSmallest(SumLargest):
    """Sum of the k smallest entries. Concave, increasing."""

    name = "sum_smallest"
    curvature_of_atom = Curvature.CONCAVE

    def numeric(self, values):
        return np.sort(values[0].reshape(-1))[: self.k].sum()


# ---------------------------------------------------------------------------- functions
def abs(x) -> Expression:  # noqa: A001
    return Abs(x)


def pos(x) -> Expression:
    """max(x, 0) elementwise."""
    return Pos(x)


def neg(x) -> Expression:
    """max(−x, 0) elementwise (so x = pos(x) − neg(x))."""
    return Neg(x)


def maximum(*args) -> Expression:
    if len(args) < 2:
        raise ValueError("maximum needs at least two arguments; use max(x) for the largest entry")
    return Maximum(*args)


def minimum(*args) -> Expression:
    if len(args) < 2:
        raise ValueError("minimum needs at least two arguments; use min(x) for the smallest entry")
    return Minimum(*args)


def max(x, axis: int | None = None, keepdims: bool = False) -> Expression:  # noqa: A001
    if isinstance(axis, Expression):
        raise ShapeError("max(x, axis): axis is an int; for the elementwise maximum of "
                         "expressions use maximum(x, y)")
    return Max(x, axis, keepdims)


def min(x, axis: int | None = None, keepdims: bool = False) -> Expression:  # noqa: A001
    if isinstance(axis, Expression):
        raise ShapeError("min(x, axis): axis is an int; for the elementwise minimum of "
                         "expressions use minimum(x, y)")
    return Min(x, axis, keepdims)


def sum_largest(x, k: int) -> Expression:
    return SumLargest(x, k)


def sum_smallest(x, k: int) -> Expression:
    return SumSmallest(x, k)
