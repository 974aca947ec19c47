"""Quadratic atoms: sum_squares, quad_form, quad_over_lin, huber.

They stay in the objective's P when the solver accepts P (quad_over_lin with a constant
denominator, sum_squares, quad_form, square, huber); otherwise they are lifted to
second-order cones.

    sum_squares(x)        Σ x_i²,             convex, ≥ 0, ↑ for x ≥ 0, ↓ for x ≤ 0
    quad_form(x, P)       xᵀ P x,             convex for constant P ⪰ 0, concave for P ⪯ 0
    quad_over_lin(x, y)   Σ x_i² / y,         convex, decreasing in y, domain y > 0
    huber(x, M)           x² for |x| ≤ M, 2M|x| − M² else; convex, ≥ 0
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.special

from ..errors import DomainError, ShapeError
from ..expressions.dcp import Curvature, Monotonicity, Sign
from ..expressions.expression import Expression, as_expression
from ..expressions.shapes import Shape
from .affine_arithmetic import is_param_free
from .atom import Atom, AxisAtom, Elementwise, require_number, signed_monotonicity


class SumSquares(AxisAtom):
    name = "sum_squares"
    curvature_of_atom = Curvature.CONVEX

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def monotonicity(self, i: int) -> Monotonicity:
        return signed_monotonicity(self.args[0])

    def numeric(self, values):
        return np.sum(np.square(values[0]), axis=self.axis, keepdims=self.keepdims)

    def canonicalize(self, args, ctx):
        """t_j ≥ ‖x_group j‖²: ‖(2 x, t − 1)‖ ≤ t + 1 per group."""
        x, k = self.lines(args[0])
        t = ctx.new_variable(self.size)
        quad_over_lin_epigraph(ctx, x, k, t, ctx.ones(self.size))
        return t

    def quadratic_form(self, args, ctx):
        if self.axis is not None:
            return None
        return args[0], sp.identity(self.args[0].size, format="csr") * 2.0


class QuadOverLin(Atom):
    name = "quad_over_lin"

    def __init__(self, x, y) -> None:
        y = as_expression(y)
        if y.size != 1:
            raise ShapeError(f"quad_over_lin needs a scalar denominator, got shape {y.shape}")
        super().__init__(x, y)

    def shape_from_args(self) -> Shape:
        return ()

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def atom_curvature(self, dpp: bool) -> Curvature:
        ok = not dpp or is_param_free(self.args[1])
        return Curvature.CONVEX if ok else Curvature.UNKNOWN

    def why_unknown(self, dpp: bool) -> str:
        return ("quad_over_lin with a parameter-dependent denominator is not DPP; "
                "scale the numerator instead, e.g. sum_squares(s * x) with a Parameter s ≥ 0")

    def monotonicity(self, i: int) -> Monotonicity:
        if i == 1:
            return Monotonicity.DECREASING
        return signed_monotonicity(self.args[0])

    def domain(self) -> list:
        return [self.args[1] >= 0]

    def numeric(self, values):
        return np.sum(np.square(values[0])) / values[1].reshape(())

    def canonicalize(self, args, ctx):
        """‖(2x, y − t)‖ ≤ y + t ⇔ ‖x‖² ≤ y t (y ≥ 0)."""
        t = ctx.new_variable(1)
        quad_over_lin_epigraph(ctx, args[0], self.args[0].size, t, args[1])
        return t

    def quadratic_form(self, args, ctx):
        y = args[1]
        if not (y.is_variable_free() and y.is_parameter_free()):
            return None
        denominator = y.constant_value()[0]
        if not denominator > 0:
            raise DomainError(f"{self}: the denominator {self.args[1]} must be positive "
                              f"(value {denominator:g})")
        return args[0], sp.identity(self.args[0].size, format="csr") * (2.0 / denominator)


class QuadForm(Atom):
    name = "quad_form"

    def __init__(self, x, P) -> None:
        x, P = as_expression(x), as_expression(P)
        vector = x.ndim <= 1 or x.shape[1] == 1
        if P.ndim != 2 or P.shape[0] != P.shape[1] or x.size != P.shape[0] or not vector:
            raise ShapeError(f"quad_form(x, P) needs a vector x of length n and an n×n matrix P, "
                             f"got shapes {x.shape} and {P.shape}")
        if not P.is_symmetric():
            raise ValueError(f"quad_form(x, P) needs a symmetric P; {P} is not (for a "
                             "Parameter, declare symmetric=True or PSD=True)")
        super().__init__(x, P)

    def shape_from_args(self) -> Shape:
        return ()

    def _definite(self, dpp: bool) -> tuple[bool, bool]:
        P = self.args[1]
        constant = P.is_constant(dpp)
        return constant and P.is_psd(), constant and P.is_nsd()

    def sign_from_args(self) -> Sign:
        return Sign.of(*self._definite(False))

    def atom_curvature(self, dpp: bool) -> Curvature:
        return Curvature.of(*self._definite(dpp))

    def why_unknown(self, dpp: bool) -> str:
        if dpp and self.args[1].is_constant(False):
            return ("quad_form with a Parameter matrix P is not DPP; write xᵀPx with P = FᵀF "
                    "as sum_squares(F @ x) with a Parameter F")
        return ("quad_form(x, P) is convex only for a constant symmetric P ⪰ 0 "
                "(concave for P ⪯ 0); this P is neither")

    def monotonicity(self, i: int) -> Monotonicity:
        x, P = self.args
        if i == 0:
            same = (x.is_nonneg() and P.is_nonneg()) or (x.is_nonpos() and P.is_nonpos())
            opposite = (x.is_nonneg() and P.is_nonpos()) or (x.is_nonpos() and P.is_nonneg())
            return Monotonicity.of(same, opposite)
        return Monotonicity.of(x.is_nonneg() or x.is_nonpos(), False)

    def numeric(self, values):
        x = values[0].reshape(-1)
        return x @ values[1] @ x

    def canonicalize(self, args, ctx):
        """xᵀPx = ‖Lᵀx‖² with P = LLᵀ (P ⪰ 0); the negative of that for P ⪯ 0."""
        P = self.constant_matrix(args)
        sign = 1.0 if self.is_convex_form(P) else -1.0
        eig, vec = np.linalg.eigh(sign * P)
        keep = eig > 1e-12 * max(1.0, eig.max(initial=0.0))
        factor = (vec[:, keep] * np.sqrt(eig[keep])).T           # rows of Lᵀ
        y = args[0].linear(sp.csr_matrix(factor))
        t = ctx.new_variable(1)
        quad_over_lin_epigraph(ctx, y, y.rows, t, ctx.ones(1))
        return t.scale(sign)

    def constant_matrix(self, args) -> np.ndarray:
        n = self.args[0].size
        if not (args[1].is_variable_free() and args[1].is_parameter_free()):
            raise ValueError("quad_form with a parameter matrix reached canonicalization; "
                             "it is not DPP")
        P = args[1].constant_value().reshape(n, n)
        return (P + P.T) / 2

    @staticmethod
    def is_convex_form(P: np.ndarray) -> bool:
        return np.linalg.eigvalsh(P).min() >= -1e-10 * max(1.0, np.abs(P).max())

    def quadratic_form(self, args, ctx):
        return args[0], sp.csr_matrix(2.0 * self.constant_matrix(args))


class Huber(Elementwise):
    name = "huber"
    curvature_of_atom = Curvature.CONVEX

    def __init__(self, x, M: float = 1.0) -> None:
        self.M = require_number(M, "huber threshold M")
        if self.M < 0:
            raise ValueError(f"huber threshold M must be nonnegative, got {M}")
        super().__init__(x)

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def monotonicity(self, i: int) -> Monotonicity:
        return signed_monotonicity(self.args[0])

    def numeric(self, values):
        return 2.0 * scipy.special.huber(self.M, values[0])

    def canonicalize(self, args, ctx):
        """huber(x) = min {s² + 2M|n| : x = s + n}: returns q + 2M a with q ≥ s² and
        a ≥ |n| elementwise."""
        (x,) = self.broadcast_args(args)
        n = self.size
        s, a, q = ctx.new_variable(n), ctx.new_variable(n), ctx.new_variable(n)
        residual = x - s
        ctx.nonneg(a - residual)
        ctx.nonneg(a + residual)
        quad_over_lin_epigraph(ctx, s, 1, q, ctx.ones(n))
        return q + a.scale(2.0 * self.M)

    def quadratic_form(self, args, ctx):
        """Σ huber(x_i) = Σ s_i² + 2M Σ a_i at the optimum, with a ≥ |x − s|: the s² part
        goes to P, the rest is (rows s, Q = 2I, rest 2M Σ a)."""
        (x,) = self.broadcast_args(args)
        n = self.size
        s, a = ctx.new_variable(n), ctx.new_variable(n)
        ctx.nonneg(a - (x - s))
        ctx.nonneg(a + (x - s))
        return s, sp.identity(n, format="csr") * 2.0, a.linear(np.full((1, n), 2.0 * self.M))

    def format_data(self) -> list[str]:
        return [f"{self.M:g}"] if self.M != 1 else []


def quad_over_lin_epigraph(ctx, x, k: int, t, y) -> None:
    """‖x_group j‖² ≤ y_j t_j for the groups of k consecutive rows of x (y_j ≥ 0):
    ‖(2 x_group j, y_j − t_j)‖ ≤ y_j + t_j."""
    from ..compile.tensor import vstack
    count = t.rows
    if y.rows == 1 and count > 1:
        y = y.select(np.zeros(count, np.int64))
    order = np.empty((count, k + 1), np.int64)
    order[:, :k] = np.arange(count * k).reshape(count, k)
    order[:, k] = count * k + np.arange(count)
    ctx.soc(y + t, vstack([x.scale(2.0), y - t], ctx.P).select(order.reshape(-1)))


def sum_squares(x, axis: int | None = None, keepdims: bool = False) -> Expression:
    return SumSquares(x, axis, keepdims)


def quad_over_lin(x, y) -> Expression:
    return QuadOverLin(x, y)


def quad_form(x, P) -> Expression:
    """xᵀ P x. P must be constant (a Constant or, for DCP, a Parameter) unless x is."""
    from .affine_arithmetic import matmul
    x, P = as_expression(x), as_expression(P)
    if x.is_constant():
        if P.ndim != 2 or x.size != P.shape[0]:
            raise ShapeError(f"quad_form: shapes {x.shape} and {P.shape} do not fit")
        xv = x.reshape((x.size,))
        return matmul(matmul(xv, P), xv)
    if not P.is_constant():
        raise TypeError(f"quad_form(x, P): one argument must be constant; got variables in "
                        f"both ({x} and {P})")
    return QuadForm(x, P)


def huber(x, M: float = 1.0) -> Expression:
    return Huber(x, M)
