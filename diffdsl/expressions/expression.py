"""The immutable expression tree: shapes, operator overloads, sign/curvature analysis, values.

Every node is an ``Expression``; leaves are Variables, Parameters and Constants
(``leaves.py``); inner nodes are atoms (``diffdsl.atoms``). Nodes never change after
construction, so analysis results are computed once and cached on the node.
"""
from __future__ import annotations

import numbers
import warnings
from functools import cached_property
from typing import TYPE_CHECKING, Iterator

import numpy as np
import scipy.sparse as sp

from .dcp import Curvature, Sign
from .shapes import Shape, size_of

if TYPE_CHECKING:  # pragma: no cover
    from ..constraints.constraint import Constraint
    from .leaves import Parameter, Variable

# Precedence used when printing: a child is parenthesized when it binds looser than its parent.
PREC_ADD, PREC_MUL, PREC_UNARY, PREC_POSTFIX, PREC_ATOM = 1, 2, 3, 4, 5


class Expression:
    """A node of a convex-modeling expression tree with a shape of 0, 1 or 2 dimensions."""

    __array_ufunc__ = None  # NumPy defers to our reflected operators (A @ x, A * x, ...)
    __hash__ = object.__hash__
    precedence = PREC_ATOM

    args: tuple["Expression", ...] = ()
    shape: Shape = ()

    # ----------------------------------------------------------------- shape helpers
    @property
    def size(self) -> int:
        return size_of(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def is_scalar(self) -> bool:
        return self.size == 1

    @property
    def T(self) -> "Expression":
        """Transpose (reverses the axes; a no-op on 0-d and 1-d expressions, as in NumPy)."""
        from ..atoms.affine_structural import transpose
        return transpose(self)

    def reshape(self, shape, order: str = "F") -> "Expression":
        from ..atoms.affine_structural import reshape
        return reshape(self, shape, order)

    def flatten(self, order: str = "F") -> "Expression":
        from ..atoms.affine_structural import vec
        return vec(self, order)

    # ----------------------------------------------------------------- analysis
    @cached_property
    def sign(self) -> Sign:
        """Elementwise sign of the value, from local rules (never from evaluating data)."""
        return self._sign()

    def _sign(self) -> Sign:
        raise NotImplementedError

    def curvature_in(self, dpp: bool = False) -> Curvature:
        """Curvature under DCP (``dpp=False``: parameters are constants) or DPP
        (``dpp=True``: parameters are treated like affine variables)."""
        cache = self.__dict__.setdefault("_curvature_cache", {})
        if dpp not in cache:
            cache[dpp] = self._curvature(dpp)
        return cache[dpp]

    def _curvature(self, dpp: bool) -> Curvature:
        raise NotImplementedError

    @property
    def curvature(self) -> Curvature:
        return self.curvature_in(False)

    def is_constant(self, dpp: bool = False) -> bool:
        return self.curvature_in(dpp) is Curvature.CONSTANT

    def is_affine(self, dpp: bool = False) -> bool:
        return self.curvature_in(dpp).is_affine

    def is_convex(self, dpp: bool = False) -> bool:
        return self.curvature_in(dpp).is_convex

    def is_concave(self, dpp: bool = False) -> bool:
        return self.curvature_in(dpp).is_concave

    def is_dcp(self, dpp: bool = False) -> bool:
        """Whether the expression has known curvature (convex, concave or affine)."""
        return self.curvature_in(dpp).is_dcp

    def is_dpp(self) -> bool:
        """Whether the expression is DCP with parameters treated as affine."""
        return self.is_dcp(dpp=True)

    def is_nonneg(self) -> bool:
        return self.sign.is_nonneg

    def is_nonpos(self) -> bool:
        return self.sign.is_nonpos

    def is_zero(self) -> bool:
        return self.sign is Sign.ZERO

    def is_psd(self) -> bool:
        """Whether the expression is known to be a positive semidefinite matrix."""
        return False

    def is_nsd(self) -> bool:
        """Whether the expression is known to be a negative semidefinite matrix."""
        return False

    def is_symmetric(self) -> bool:
        """Whether the expression is known to be a symmetric matrix (scalars are)."""
        return all(d == 1 for d in self.shape)

    # ----------------------------------------------------------------- leaves
    def leaves(self) -> Iterator["Expression"]:
        """Every leaf of the tree, depth first, left to right (with repetitions)."""
        stack = [self]
        while stack:
            node = stack.pop()
            if node.args:
                stack.extend(reversed(node.args))
            else:
                yield node

    @cached_property
    def _variables(self) -> tuple:
        from .leaves import Variable
        return tuple({id(v): v for v in self.leaves() if isinstance(v, Variable)}.values())

    @cached_property
    def _parameters(self) -> tuple:
        from .leaves import Parameter
        return tuple({id(p): p for p in self.leaves() if isinstance(p, Parameter)}.values())

    def variables(self) -> list["Variable"]:
        """The distinct Variables in the expression, in order of first appearance."""
        return list(self._variables)

    def parameters(self) -> list["Parameter"]:
        """The distinct Parameters in the expression, in order of first appearance."""
        return list(self._parameters)

    # ----------------------------------------------------------------- values
    @property
    def value(self):
        """Numeric value from the leaves' values, or None if some leaf has no value."""
        values = [arg.value for arg in self.args]
        if any(v is None for v in values):
            return None
        with np.errstate(all="ignore"):   # outside a domain values are NaN or ±inf
            out = self.numeric([dense(v) for v in values])
        return finalize_value(out, self.shape)

    def numeric(self, values: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    # ----------------------------------------------------------------- printing
    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"Expression({self.curvature.name}, {self.sign.name}, {self.shape}): "
                f"{self}")

    def __bool__(self) -> bool:
        raise TypeError(
            f"the truth value of an expression is undefined ({self}); "
            "compare expressions only to build constraints, and do not chain comparisons "
            "(write 0 <= x and x <= 1 as two constraints)")

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other):
        from ..atoms.affine_arithmetic import add
        return add(self, other)

    def __radd__(self, other):
        from ..atoms.affine_arithmetic import add
        return add(other, self)

    def __sub__(self, other):
        from ..atoms.affine_arithmetic import add, negate
        return add(self, negate(as_expression(other)))

    def __rsub__(self, other):
        from ..atoms.affine_arithmetic import add, negate
        return add(other, negate(self))

    def __neg__(self):
        from ..atoms.affine_arithmetic import negate
        return negate(self)

    def __pos__(self):
        return self

    def __mul__(self, other):
        return _star(self, other)

    def __rmul__(self, other):
        return _star(other, self)

    def __matmul__(self, other):
        from ..atoms.affine_arithmetic import matmul
        return matmul(self, other)

    def __rmatmul__(self, other):
        from ..atoms.affine_arithmetic import matmul
        return matmul(other, self)

    def __truediv__(self, other):
        from ..atoms.affine_arithmetic import divide
        return divide(self, other)

    def __rtruediv__(self, other):
        from ..atoms.affine_arithmetic import divide
        return divide(other, self)

    def __pow__(self, p):
        from ..atoms.powers import power
        return power(self, p)

    def __getitem__(self, key):
        from ..atoms.affine_structural import index
        return index(self, key)

    # ----------------------------------------------------------------- constraints
    def __eq__(self, other) -> "Constraint":  # type: ignore[override]
        from ..constraints.constraint import Equality
        return Equality(self, other)

    def __le__(self, other) -> "Constraint":
        from ..constraints.constraint import Inequality
        return Inequality(self, other)

    def __ge__(self, other) -> "Constraint":
        from ..constraints.constraint import Inequality
        return Inequality(other, self, flipped=True)

    def __lt__(self, other):
        raise TypeError("strict inequalities are not allowed; use <= or >=")

    __gt__ = __lt__

    def __rshift__(self, other) -> "Constraint":
        from ..constraints.constraint import PSD
        return PSD(self, other)

    def __rrshift__(self, other) -> "Constraint":
        from ..constraints.constraint import PSD
        return PSD(other, self)

    def __lshift__(self, other) -> "Constraint":
        from ..constraints.constraint import PSD
        return PSD(other, self)

    def __rlshift__(self, other) -> "Constraint":
        from ..constraints.constraint import PSD
        return PSD(self, other)


def _star(lhs, rhs) -> Expression:
    """``*`` as in CVXPY: scaling when either side is a scalar, else matrix multiplication
    (with a warning pointing to ``@`` and ``multiply``)."""
    from ..atoms.affine_arithmetic import matmul, multiply
    lhs, rhs = as_expression(lhs), as_expression(rhs)
    if lhs.ndim == 0 or rhs.ndim == 0:
        return multiply(lhs, rhs)
    warnings.warn(
        f"`*` between two non-scalar expressions ({lhs.shape} * {rhs.shape}) means matrix "
        "multiplication, as in CVXPY; write `@` for it, or `multiply` for elementwise products",
        UserWarning, stacklevel=3)
    return matmul(lhs, rhs)


def as_expression(value) -> Expression:
    """Wrap numbers, NumPy arrays and scipy.sparse matrices as Constants."""
    if isinstance(value, Expression):
        return value
    from .leaves import Constant
    return Constant(value)


def dense(value) -> np.ndarray:
    if sp.issparse(value):
        return value.toarray()
    return np.asarray(value, dtype=float)


def finalize_value(out, shape: Shape):
    """Return numeric results with the expression's shape; scalars as NumPy float64."""
    out = np.asarray(out, dtype=float).reshape(shape)
    return out[()] if out.ndim == 0 else out


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
