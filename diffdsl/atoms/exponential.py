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


class Log(Elementwise):
    name = "log"
    curvature_of_atom = Curvature.CONCAVE
    monotonicity_of_atom = Monotonicity.INCREASING

    def domain(self) -> list:
        return [self.args[0] >= 0]

    def numeric(self, values):
        return np.log(values[0])


class Log1p(Log):
    name = "log1p"

    def sign_from_args(self) -> Sign:
        return self.args[0].sign

    def domain(self) -> list:
        return [self.args[0] >= -1]

    def numeric(self, values):
        return np.log1p(values[0])


class Entr(Elementwise):
    name = "entr"
    curvature_of_atom = Curvature.CONCAVE

    def domain(self) -> list:
        return [self.args[0] >= 0]

    def numeric(self, values):
        return scipy.special.entr(values[0])


class Logistic(Elementwise):
    name = "logistic"
    curvature_of_atom = Curvature.CONVEX
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def numeric(self, values):
        return np.logaddexp(0.0, values[0])


class KLDiv(Elementwise):
    name = "kl_div"
    curvature_of_atom = Curvature.CONVEX

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def domain(self) -> list:
        return [self.args[0] >= 0, self.args[1] >= 0]

    def numeric(self, values):
        return scipy.special.kl_div(values[0], values[1])


class RelEntr(Elementwise):
    name = "rel_entr"
    curvature_of_atom = Curvature.CONVEX

    def monotonicity(self, i: int) -> Monotonicity:
        return Monotonicity.DECREASING if i == 1 else Monotonicity.NONMONOTONE

    def domain(self) -> list:
        return [self.args[0] >= 0, self.args[1] >= 0]

    def numeric(self, values):
        return scipy.special.rel_entr(values[0], values[1])


class LogSumExp(AxisAtom):
    name = "log_sum_exp"
    curvature_of_atom = Curvature.CONVEX
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return Sign.of(self.args[0].is_nonneg(), False)

    def numeric(self, values):
        return scipy.special.logsumexp(values[0], axis=self.axis, keepdims=self.keepdims)


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
