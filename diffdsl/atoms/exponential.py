"""Exponential-cone atoms: exp, log, log1p, entr, logistic, kl_div, rel_entr, log_sum_exp.

    exp(x)          convex, increasing,                  ≥ 0
    log(x)          concave, increasing,                 domain x ≥ 0
    log1p(x)        log(1 + x), concave, increasing,     sign of x, domain x ≥ −1
    entr(x)         −x log x, concave, nonmonotone,      domain x ≥ 0
    logistic(x)     log(1 + eˣ), convex, increasing,     ≥ 0
    kl_div(x, y)    x log(x/y) − x + y, convex,          ≥ 0, domain x, y ≥ 0
    rel_entr(x, y)  x log(x/y), convex, decreasing in y, domain x, y ≥ 0
    log_sum_exp(x)  log Σ exp(x_i), convex, increasing
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.special

from ..expressions.dcp import Curvature, Monotonicity, Sign
from ..expressions.expression import Expression
from .atom import AxisAtom, Elementwise


class Exp(Elementwise):
    name = "exp"
    curvature_of_atom = Curvature.CONVEX
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def numeric(self, values):
        return np.exp(values[0])

    def canonicalize(self, args, ctx):
        """(x, 1, t) ∈ K_exp ⇔ eˣ ≤ t."""
        t = ctx.new_variable(self.size)
        ctx.exp_cone(args[0], ctx.ones(self.size), t)
        return t


class Log(Elementwise):
    name = "log"
    curvature_of_atom = Curvature.CONCAVE
    monotonicity_of_atom = Monotonicity.INCREASING

    def domain(self) -> list:
        return [self.args[0] >= 0]

    def numeric(self, values):
        return np.log(values[0])

    def canonicalize(self, args, ctx):
        """(t, 1, x) ∈ K_exp ⇔ t ≤ log x (log1p: x + 1)."""
        t = ctx.new_variable(self.size)
        ctx.exp_cone(t, ctx.ones(self.size), self.log_argument(args[0], ctx))
        return t

    def log_argument(self, x, ctx):
        return x


class Log1p(Log):
    name = "log1p"

    def sign_from_args(self) -> Sign:
        return self.args[0].sign

    def domain(self) -> list:
        return [self.args[0] >= -1]

    def numeric(self, values):
        return np.log1p(values[0])

    def log_argument(self, x, ctx):
        return x + ctx.ones(self.size)


class Entr(Elementwise):
    name = "entr"
    curvature_of_atom = Curvature.CONCAVE

    def domain(self) -> list:
        return [self.args[0] >= 0]

    def numeric(self, values):
        return scipy.special.entr(values[0])

    def canonicalize(self, args, ctx):
        """(t, x, 1) ∈ K_exp ⇔ x e^{t/x} ≤ 1 ⇔ t ≤ −x log x."""
        t = ctx.new_variable(self.size)
        ctx.exp_cone(t, args[0], ctx.ones(self.size))
        return t


class Logistic(Elementwise):
    name = "logistic"
    curvature_of_atom = Curvature.CONVEX
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def numeric(self, values):
        return np.logaddexp(0.0, values[0])

    def canonicalize(self, args, ctx):
        """t ≥ log(e⁰ + eˣ): u + v ≤ 1, (−t, 1, u), (x − t, 1, v) ∈ K_exp."""
        n = self.size
        t, u, v = ctx.new_variable(n), ctx.new_variable(n), ctx.new_variable(n)
        one = ctx.ones(n)
        ctx.nonneg(one - u - v)
        ctx.exp_cone(-t, one, u)
        ctx.exp_cone(args[0] - t, one, v)
        return t


class KLDiv(Elementwise):
    name = "kl_div"
    curvature_of_atom = Curvature.CONVEX

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def domain(self) -> list:
        return [self.args[0] >= 0, self.args[1] >= 0]

    def numeric(self, values):
        return scipy.special.kl_div(values[0], values[1])

    def canonicalize(self, args, ctx):
        """rel_entr(x, y) − x + y."""
        x, y = self.broadcast_args(args)
        return rel_entr_epigraph(ctx, x, y) - x + y


class RelEntr(Elementwise):
    name = "rel_entr"
    curvature_of_atom = Curvature.CONVEX

    def monotonicity(self, i: int) -> Monotonicity:
        return Monotonicity.DECREASING if i == 1 else Monotonicity.NONMONOTONE

    def domain(self) -> list:
        return [self.args[0] >= 0, self.args[1] >= 0]

    def numeric(self, values):
        return scipy.special.rel_entr(values[0], values[1])

    def canonicalize(self, args, ctx):
        return rel_entr_epigraph(ctx, *self.broadcast_args(args))


class LogSumExp(AxisAtom):
    name = "log_sum_exp"
    curvature_of_atom = Curvature.CONVEX
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return Sign.of(self.args[0].is_nonneg(), False)

    def numeric(self, values):
        return scipy.special.logsumexp(values[0], axis=self.axis, keepdims=self.keepdims)

    def canonicalize(self, args, ctx):
        """t_j ≥ log Σ_i exp(x_i) over group j: Σ_i u_i ≤ 1, (x_i − t_j, 1, u_i) ∈ K_exp."""
        n = self.args[0].size
        t, u = ctx.new_variable(self.size), ctx.new_variable(n)
        index = self.output_index()
        ctx.exp_cone(args[0] - t.select(index), ctx.ones(n), u)
        group_sum = sp.csr_matrix((np.ones(n), (index, np.arange(n))), shape=(self.size, n))
        ctx.nonneg(ctx.ones(self.size) - u.linear(group_sum))
        return t


def rel_entr_epigraph(ctx, x, y):
    """t ≥ x log(x/y): (−t, x, y) ∈ K_exp ⇔ x e^{−t/x} ≤ y."""
    t = ctx.new_variable(x.rows)
    ctx.exp_cone(-t, x, y)
    return t


def exp(x) -> Expression:
    return Exp(x)


def log(x) -> Expression:
    return Log(x)


def log1p(x) -> Expression:
    return Log1p(x)


def entr(x) -> Expression:
    return Entr(x)


def logistic(x) -> Expression:
    return Logistic(x)


def kl_div(x, y) -> Expression:
    return KLDiv(x, y)


def rel_entr(x, y) -> Expression:
    return RelEntr(x, y)


def log_sum_exp(x, axis: int | None = None, keepdims: bool = False) -> Expression:
    return LogSumExp(x, axis, keepdims)
