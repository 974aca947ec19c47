"""Affine arithmetic: ``+``, unary ``-``, elementwise ``*``/``multiply``, ``@`` and ``/``.

Products are affine only when one factor is constant (DCP). Under DPP a product is also
allowed when one factor is affine in the parameters (and variable-free) and the other is
parameter-free, so that problem data stay affine in the parameters — the rules CVXPY applies.
Canonicalization: each is a linear map on the stacked variables; its coefficients are
affine in the parameters.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..compile.context import broadcast_rows
from ..errors import DomainError, ShapeError
from ..expressions.dcp import Curvature, Monotonicity, Sign, mul_sign, sum_sign
from ..expressions.expression import (PREC_ADD, PREC_MUL, PREC_UNARY, Expression,
                                      as_expression)
from ..expressions.shapes import Shape, broadcast, matmul_shape
from .atom import Atom, MonotoneSemidefinite, is_square


def is_param_affine(expr: Expression) -> bool:
    """Variable-free and affine when parameters are treated as affine."""
    return not expr.variables() and expr.is_affine(dpp=True)


def is_param_free(expr: Expression) -> bool:
    return not expr.parameters()


def parenthesize(expr: Expression, min_prec: int) -> str:
    text = expr.format()
    return f"({text})" if expr.precedence < min_prec else text


class AddExpression(MonotoneSemidefinite, Atom):
    """Sum of arguments, broadcast elementwise."""

    name = "add"
    label = "+"
    precedence = PREC_ADD
    curvature_of_atom = Curvature.AFFINE
    monotonicity_of_atom = Monotonicity.INCREASING

    def shape_from_args(self) -> Shape:
        return broadcast(*(a.shape for a in self.args), op="+")

    def sign_from_args(self) -> Sign:
        return sum_sign(a.sign for a in self.args)

    def numeric(self, values):
        return sum(values[1:], values[0])

    def canonicalize(self, args, ctx):
        out = broadcast_rows(args[0], self.args[0].shape, self.shape)
        for a, t in zip(self.args[1:], args[1:], strict=True):
            out = out + broadcast_rows(t, a.shape, self.shape)
        return out

    def format(self) -> str:
        text = parenthesize(self.args[0], PREC_ADD)
        for a in self.args[1:]:
            if isinstance(a, NegExpression):
                text += " - " + parenthesize(a.args[0], PREC_MUL)
            else:
                text += " + " + parenthesize(a, PREC_ADD)
        return text


class NegExpression(MonotoneSemidefinite, Atom):
    """−x."""

    name = "negative"
    label = "-"
    precedence = PREC_UNARY
    curvature_of_atom = Curvature.AFFINE
    monotonicity_of_atom = Monotonicity.DECREASING

    def shape_from_args(self) -> Shape:
        return self.args[0].shape

    def sign_from_args(self) -> Sign:
        return -self.args[0].sign

    def numeric(self, values):
        return -values[0]

    def canonicalize(self, args, ctx):
        return -args[0]

    def format(self) -> str:
        return "-" + parenthesize(self.args[0], PREC_UNARY)


class BinaryProduct(Atom):
    """Shared rules of products (elementwise, matrix): affine iff a factor is constant,
    or (DPP) one factor is parameter-affine and the other parameter-free."""

    precedence = PREC_MUL
    operator = "*"

    def sign_from_args(self) -> Sign:
        return mul_sign(self.args[0].sign, self.args[1].sign)

    def atom_curvature(self, dpp: bool) -> Curvature:
        x, y = self.args
        ok = x.is_constant(dpp) or y.is_constant(dpp)
        if dpp and not ok:
            ok = ((is_param_affine(x) and is_param_free(y))
                  or (is_param_affine(y) and is_param_free(x)))
        return Curvature.AFFINE if ok else Curvature.UNKNOWN

    def monotonicity(self, i: int) -> Monotonicity:
        other = self.args[1 - i]
        return Monotonicity.of(other.is_nonneg(), other.is_nonpos())

    def why_unknown(self, dpp: bool) -> str:
        x, y = self.args
        if x.variables() and y.variables():
            return ("a product of two expressions that both contain variables is not convex "
                    "(it is bilinear or quadratic)")
        if dpp and x.parameters() and y.parameters():
            return (f"both factors ({x} and {y}) depend on parameters, so the problem data "
                    "would not be affine in the parameters")
        if dpp:
            return ("the parameter-dependent factor is not affine in the parameters, so the "
                    "problem data would not be affine in them")
        return "a product is affine only when one factor is constant"

    def format(self) -> str:
        return (f"{parenthesize(self.args[0], PREC_MUL)} {self.operator} "
                f"{parenthesize(self.args[1], PREC_MUL + 1)}")


class Multiply(BinaryProduct):
    """Elementwise product with broadcasting (``multiply(x, y)``, or ``*`` with a scalar)."""

    name = "multiply"

    def shape_from_args(self) -> Shape:
        return broadcast(self.args[0].shape, self.args[1].shape, op="multiply")

    def numeric(self, values):
        return values[0] * values[1]

    def canonicalize(self, args, ctx):
        x, y = (broadcast_rows(t, a.shape, self.shape)
                for t, a in zip(args, self.args, strict=True))
        return x.rowwise_product(y)

    def is_psd(self) -> bool:
        """Schur product theorem: the elementwise product of PSD matrices is PSD."""
        x, y = self.args
        return (x.is_psd() and y.is_psd()) or (x.is_nsd() and y.is_nsd())

    def is_nsd(self) -> bool:
        x, y = self.args
        return (x.is_psd() and y.is_nsd()) or (x.is_nsd() and y.is_psd())

    def is_symmetric(self) -> bool:
        return is_square(self) and all(a.is_symmetric() for a in self.args)

    def format(self) -> str:
        if self.args[0].ndim == 0 or self.args[1].ndim == 0:
            return super().format()
        return f"multiply({self.args[0]}, {self.args[1]})"


class MatMul(BinaryProduct):
    """Matrix product with NumPy's rules for 1-d operands."""

    name = "matmul"
    operator = "@"

    def shape_from_args(self) -> Shape:
        return matmul_shape(self.args[0].shape, self.args[1].shape)

    def numeric(self, values):
        return values[0] @ values[1]

    def canonicalize_with_data(self, ctx):
        """A data factor (no variables or symbolic parameters) is used as a sparse matrix
        directly — never flattened into m·k rows — and gives a linear map of the other."""
        (m, k), (_, n) = promoted(self.args[0].shape, 0), promoted(self.args[1].shape, 1)
        left, right = self.args
        if ctx.is_data(left):
            A = sp.csr_matrix(as_matrix(ctx.data_value(left), (m, k)))
            return ctx.canon(right).linear(sp.kron(A, sp.identity(n), format="csr"))
        if ctx.is_data(right):
            B = sp.csr_matrix(as_matrix(ctx.data_value(right), (k, n)))
            return ctx.canon(left).linear(sp.kron(sp.identity(m), B.T, format="csr"))
        return None

    def canonicalize(self, args, ctx):
        """out[i, j] = Σ_l X[i, l] Y[l, j] for a parameter factor: one product per (i, l, j)
        term, summed over l (data factors: ``canonicalize_with_data``)."""
        (m, k), (_, n) = promoted(self.args[0].shape, 0), promoted(self.args[1].shape, 1)
        left, right = args
        i, mid, j = (g.reshape(-1) for g in np.meshgrid(np.arange(m), np.arange(k),
                                                        np.arange(n), indexing="ij"))
        terms = left.select(i * k + mid).rowwise_product(right.select(mid * n + j))
        total = sp.csr_matrix((np.ones(i.size), (i * n + j, np.arange(i.size))),
                              shape=(m * n, i.size))
        return terms.linear(total)


class DivExpression(MonotoneSemidefinite, Atom):
    """Elementwise x / y; affine only when the denominator y is constant.

    A Parameter in the denominator is constant for DCP but not for DPP (data 1/θ would not be
    affine in θ): introduce a Parameter for 1/θ instead.
    """

    name = "divide"
    precedence = PREC_MUL

    def shape_from_args(self) -> Shape:
        return broadcast(self.args[0].shape, self.args[1].shape, op="/")

    def sign_from_args(self) -> Sign:
        return mul_sign(self.args[0].sign, self.args[1].sign)

    def atom_curvature(self, dpp: bool) -> Curvature:
        return Curvature.AFFINE if self.args[1].is_constant(dpp) else Curvature.UNKNOWN

    def monotonicity(self, i: int) -> Monotonicity:
        x, y = self.args
        if i == 0:
            return Monotonicity.of(y.is_nonneg(), y.is_nonpos())
        return Monotonicity.of(x.is_nonpos(), x.is_nonneg())

    def why_unknown(self, dpp: bool) -> str:
        if dpp and not self.args[1].variables():
            return ("division by a parameter-dependent expression makes the problem data "
                    "non-affine in the parameters")
        return "division is affine only when the denominator is constant"

    def numeric(self, values):
        return values[0] / values[1]

    def canonicalize(self, args, ctx):
        x = broadcast_rows(args[0], self.args[0].shape, self.shape)
        y = broadcast_rows(args[1], self.args[1].shape, self.shape)
        if y.is_parameter_free() and y.is_variable_free():
            denominator = y.constant_value()
            if np.any(denominator == 0):
                raise DomainError(f"{self}: the denominator {self.args[1]} has zero entries "
                                  f"(value {self.args[1].value})")
            return x.scale(1.0 / denominator)
        raise ValueError("division by a parameter reached canonicalization; it is not DPP")

    def format(self) -> str:
        num, den = self.args
        return f"{parenthesize(num, PREC_MUL)} / {parenthesize(den, PREC_MUL + 1)}"


def promoted(shape: tuple, side: int) -> tuple[int, int]:
    """A matmul operand's shape as a matrix (1-d: a row on the left, a column on the right)."""
    if len(shape) == 2:
        return shape
    return (1, shape[0]) if side == 0 else (shape[0], 1)


def as_matrix(value, shape: tuple[int, int]):
    """A (sparse or dense) data value with the given 2-d shape."""
    return value if sp.issparse(value) else np.reshape(np.asarray(value, float), shape)


# ---------------------------------------------------------------------------- functions
def add(lhs, rhs) -> Expression:
    lhs, rhs = as_expression(lhs), as_expression(rhs)
    args = []
    for e in (lhs, rhs):
        args.extend(e.args if isinstance(e, AddExpression) else (e,))
    return AddExpression(*args)


def negate(x) -> Expression:
    x = as_expression(x)
    return x.args[0] if isinstance(x, NegExpression) else NegExpression(x)


def multiply(x, y) -> Expression:
    """Elementwise product ``x ∘ y`` with NumPy broadcasting."""
    return Multiply(x, y)


def matmul(x, y) -> Expression:
    """Matrix product ``x @ y`` (NumPy's rules for 1-d operands; no scalar operands)."""
    x, y = as_expression(x), as_expression(y)
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError("@ does not take scalar operands; use * to scale")
    return MatMul(x, y)


def divide(x, y) -> Expression:
    """Elementwise ``x / y``; DCP only with a constant (or, for DCP, parameter) denominator."""
    return DivExpression(x, y)


