"""Constraints: membership of affine (or convex/concave) expressions in cones.

    lhs == rhs            Zero cone:         lhs − rhs = 0          (both sides affine)
    lhs <= rhs            Nonnegative cone:  rhs − lhs ≥ 0          (lhs convex, rhs concave)
    lhs >> rhs            PSD cone:          lhs − rhs ⪰ 0          (square, affine)
    SOC(t, X, axis=0)     ‖X[:, i]‖₂ ≤ t[i] (axis=0: columns; axis=1: rows)
    ExpCone(x, y, z)      y·exp(x/y) ≤ z, y > 0 (closure)
    PowCone3D(x, y, z, α) x^α · y^(1−α) ≥ |z|, x, y ≥ 0, α ∈ (0, 1)

Comparisons broadcast like NumPy. Each constraint has a ``name`` and a ``dual_value``
(set by a solve).
"""
from __future__ import annotations

import itertools
from functools import cached_property

import numpy as np

from ..cones.cones import svec_indices, svec_to_matrix
from ..errors import ShapeError
from ..expressions.dcp import Curvature
from ..expressions.expression import Expression, as_expression
from ..expressions.shapes import broadcast, require_square

_ids = itertools.count(1)


class Constraint:
    """Base class: a list of argument expressions that must lie in a cone."""

    def __init__(self, *args, name: str | None = None) -> None:
        self.args = tuple(as_expression(a) for a in args)
        self.id = next(_ids)
        self.name = name
        self.dual_value = None

    # analysis -------------------------------------------------------------
    def requirements(self) -> list[tuple[Expression, str, str]]:
        """(expression, required curvature 'affine'|'convex'|'concave', role) triples."""
        return [(a, "affine", f"argument {i + 1}") for i, a in enumerate(self.args)]

    def is_dcp(self, dpp: bool = False) -> bool:
        return all(meets(expr.curvature_in(dpp), need) for expr, need, _ in self.requirements())

    def is_dpp(self) -> bool:
        return self.is_dcp(dpp=True)

    def violation(self):
        """How far the arguments' current values are from satisfying the constraint
        (zero when satisfied; elementwise where that makes sense), or None without values."""
        values = [a.value for a in self.args]
        if any(v is None for v in values):
            return None
        with np.errstate(all="ignore"):
            return self.residual(*[np.asarray(v, dtype=float) for v in values])

    def residual(self, *values) -> np.ndarray:
        raise NotImplementedError

    # canonicalization ------------------------------------------------------
    def canonicalize(self, ctx) -> None:
        """Emit this constraint's cone rows (owned by it, so a solve can return its dual)."""
        raise NotImplementedError

    def dual_from(self, y: np.ndarray):
        """This constraint's dual value, in CVXPY's convention, from its rows of y."""
        return y.reshape(self.shape)

    def dual_adjoint(self, g) -> np.ndarray:
        """Adjoint of the (linear) ``dual_from``: a cotangent on the dual value → on y rows."""
        return np.asarray(g, dtype=float).reshape(-1)

    def broadcast_args(self, ctx):
        from ..compile.context import broadcast_rows
        return [broadcast_rows(ctx.canon(a), a.shape, self.shape) for a in self.args]

    def variables(self) -> list:
        return list({id(v): v for a in self.args for v in a.variables()}.values())

    def parameters(self) -> list:
        return list({id(p): p for a in self.args for p in a.parameters()}.values())

    # printing -------------------------------------------------------------
    def format_body(self) -> str:
        return f"{type(self).__name__}({', '.join(a.format() for a in self.args)})"

    def __str__(self) -> str:
        return (f"{self.name}: " if self.name else "") + self.format_body()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self})"

    def __bool__(self) -> bool:
        raise TypeError(f"the truth value of a constraint is undefined ({self}); do not chain "
                        "comparisons such as 0 <= x <= 1: write two constraints")

    __hash__ = object.__hash__


def meets(curvature: Curvature, need: str) -> bool:
    return {"affine": curvature.is_affine, "convex": curvature.is_convex,
            "concave": curvature.is_concave}[need]


class Comparison(Constraint):
    """``lhs OP rhs`` with NumPy broadcasting of the two sides."""

    operator = "?"

    def __init__(self, lhs, rhs, name: str | None = None) -> None:
        super().__init__(lhs, rhs, name=name)
        self.shape = broadcast(self.args[0].shape, self.args[1].shape, op=self.operator)

    @property
    def lhs(self) -> Expression:
        return self.args[0]

    @property
    def rhs(self) -> Expression:
        return self.args[1]

    @cached_property
    def expr(self) -> Expression:
        """lhs − rhs."""
        return self.lhs - self.rhs

    def is_dcp(self, dpp: bool = False) -> bool:
        return meets(self.expr.curvature_in(dpp), self.requirements()[0][1])

    def format_body(self) -> str:
        return f"{self.lhs} {self.operator} {self.rhs}"


class Equality(Comparison):
    """lhs == rhs (zero cone); DCP when lhs − rhs is affine."""

    operator = "=="

    def residual(self, lhs, rhs):
        return np.abs(lhs - rhs)

    def canonicalize(self, ctx) -> None:
        lhs, rhs = self.broadcast_args(ctx)
        ctx.equal(lhs, rhs, owner=self.id)

    def dual_from(self, y):
        """CVXPY's equality multiplier enters the Lagrangian as + ν (lhs − rhs): ν = −y."""
        return -y.reshape(self.shape)

    def dual_adjoint(self, g) -> np.ndarray:
        return -np.asarray(g, dtype=float).reshape(-1)

    def requirements(self):
        return [(self.lhs, "affine", "left side of =="), (self.rhs, "affine", "right side of ==")]


class Inequality(Comparison):
    """lhs <= rhs (nonnegative cone); DCP when lhs − rhs is convex.

    ``flipped`` only records that the user wrote ``rhs >= lhs`` (for printing).
    """

    operator = "<="

    def __init__(self, lhs, rhs, name: str | None = None, flipped: bool = False) -> None:
        super().__init__(lhs, rhs, name=name)
        self.flipped = flipped

    def format_body(self) -> str:
        return f"{self.rhs} >= {self.lhs}" if self.flipped else super().format_body()

    def residual(self, lhs, rhs):
        return np.maximum(lhs - rhs, 0.0)

    def canonicalize(self, ctx) -> None:
        if self.is_norm_bound():
            t = ctx.canon(self.rhs)
            ctx.soc(t, ctx.canon(self.lhs.args[0]), owner=self.id)
            return
        lhs, rhs = self.broadcast_args(ctx)
        ctx.nonneg(rhs - lhs, owner=self.id)

    def is_norm_bound(self) -> bool:
        """‖x‖₂ ≤ t with x and t affine (t scalar): compiled to the one second-order cone
        (t, x) directly, without an epigraph variable for the norm (one variable and one row
        fewer, and no variable without a quadratic term). Its dual is the cone's t entry."""
        from ..atoms.norms import Pnorm
        lhs = self.lhs
        return (isinstance(lhs, Pnorm) and lhs.p == 2 and lhs.axis is None
                and lhs.size == 1 and self.rhs.size == 1 and lhs.args[0].is_affine()
                and self.rhs.is_affine())

    def dual_from(self, y):
        size = int(np.prod(self.shape, dtype=int))
        return y[:size].reshape(self.shape)               # a norm bound: the cone's t entry

    def dual_adjoint(self, g) -> np.ndarray:
        g = np.asarray(g, dtype=float).reshape(-1)
        if self.is_norm_bound():
            return np.concatenate([g, np.zeros(self.lhs.args[0].size)])
        return g

    def requirements(self):
        return [(self.lhs, "convex", "left side of <="), (self.rhs, "concave", "right side of <=")]


class PSD(Comparison):
    """lhs >> rhs: lhs − rhs is positive semidefinite (square, affine)."""

    operator = ">>"

    def __init__(self, lhs, rhs, name: str | None = None) -> None:
        super().__init__(lhs, rhs, name=name)
        require_square(self.shape, "a semidefinite constraint (>> / <<)")

    def requirements(self):
        return [(self.lhs, "affine", "left side of >>"), (self.rhs, "affine", "right side of >>")]

    def residual(self, lhs, rhs):
        """Most negative eigenvalue of the symmetric part, plus the asymmetry."""
        D = np.broadcast_to(lhs - rhs, self.shape)
        if not np.all(np.isfinite(D)):
            return np.inf
        asym = np.abs(D - D.T).max()
        return max(0.0, -np.linalg.eigvalsh((D + D.T) / 2).min()) + asym

    def canonicalize(self, ctx) -> None:
        lhs, rhs = self.broadcast_args(ctx)
        ctx.psd(lhs - rhs, self.shape[0], owner=self.id)

    def dual_from(self, y):
        return svec_to_matrix(y, self.shape[0])

    def dual_adjoint(self, g) -> np.ndarray:
        """svec_to_matrix puts v_k/√2 at (i, j) and (j, i): its adjoint sums both, / √2."""
        G = np.asarray(g, dtype=float)
        rows, cols = svec_indices(self.shape[0])
        return np.where(rows == cols, G[rows, cols], (G[rows, cols] + G[cols, rows]) / np.sqrt(2))


class SOC(Constraint):
    """Second-order cone ‖X[:, i]‖₂ ≤ t[i] for axis=0 (columns of X), rows for axis=1.

    A 1-d X is one cone with scalar t.
    """

    def __init__(self, t, X, axis: int = 0, name: str | None = None) -> None:
        super().__init__(t, X, name=name)
        t, X = self.args
        if axis not in (0, 1):
            raise ShapeError(f"SOC axis must be 0 or 1, got {axis!r}")
        self.axis = axis
        count = 1 if X.ndim <= 1 else X.shape[1 - axis]
        if t.size != count or t.ndim > 1:
            raise ShapeError(f"SOC: X of shape {X.shape} with axis={axis} has {count} cone(s), "
                             f"so t must be a scalar or vector of length {count}, got {t.shape}")

    def residual(self, t, X):
        norms = np.linalg.norm(X, axis=self.axis) if X.ndim == 2 else np.linalg.norm(X)
        return np.maximum(norms - t, 0.0)

    def _cone_order(self) -> np.ndarray:
        """Rows of X (C order) arranged cone by cone."""
        X = self.args[1]
        index = np.arange(X.size).reshape(X.shape)
        return (index.T if X.ndim == 2 and self.axis == 0 else index).reshape(-1)

    def canonicalize(self, ctx) -> None:
        t, X = (ctx.canon(a) for a in self.args)
        ctx.soc(t, X.select(self._cone_order()), owner=self.id)

    def dual_from(self, y):
        """[dual of t, dual of X] as in CVXPY."""
        t, X = self.args
        per_cone = y.reshape(t.size, -1)
        dual_X = np.empty(X.size)
        dual_X[self._cone_order()] = per_cone[:, 1:].reshape(-1)
        return [per_cone[:, 0].reshape(t.shape), dual_X.reshape(X.shape)]

    def dual_adjoint(self, g) -> np.ndarray:
        g_t, g_X = (np.asarray(part, dtype=float).reshape(-1) for part in g)
        per_cone = np.empty((g_t.size, 1 + g_X.size // g_t.size))
        per_cone[:, 0] = g_t
        per_cone[:, 1:] = g_X[self._cone_order()].reshape(g_t.size, -1)
        return per_cone.reshape(-1)

    def format_body(self) -> str:
        extra = f", axis={self.axis}" if self.axis else ""
        return f"SOC({self.args[0]}, {self.args[1]}{extra})"


class ExpCone(Constraint):
    """(x, y, z) in the exponential cone: y·exp(x/y) ≤ z, y > 0, elementwise."""

    def __init__(self, x, y, z, name: str | None = None) -> None:
        super().__init__(x, y, z, name=name)
        self.shape = broadcast(*(a.shape for a in self.args), op="ExpCone")

    def residual(self, x, y, z):
        x, y, z = np.broadcast_arrays(x, y, z)
        inside = np.where(y > 0, y * np.exp(x / np.where(y > 0, y, 1)) - z,
                          np.maximum(x, -z))  # closure at y = 0: x ≤ 0, z ≥ 0
        return np.maximum(np.maximum(inside, -y), 0.0)

    def canonicalize(self, ctx) -> None:
        ctx.exp_cone(*self.broadcast_args(ctx), owner=self.id)

    def dual_from(self, y):
        """[dual of x, dual of y, dual of z] as in CVXPY."""
        triples = y.reshape(-1, 3)
        return [triples[:, i].reshape(self.shape) for i in range(3)]

    def dual_adjoint(self, g) -> np.ndarray:
        parts = [np.asarray(part, dtype=float).reshape(-1) for part in g]
        return np.stack(parts, axis=1).reshape(-1)


class PowCone3D(Constraint):
    """(x, y, z) in the 3-d power cone: x^α y^(1−α) ≥ |z|, x, y ≥ 0, elementwise."""

    def __init__(self, x, y, z, alpha, name: str | None = None) -> None:
        super().__init__(x, y, z, name=name)
        if isinstance(alpha, Expression):
            raise TypeError("PowCone3D: alpha must be numeric data in (0, 1), not an expression")
        self.alpha = np.asarray(alpha, dtype=float)
        if np.any(self.alpha <= 0) or np.any(self.alpha >= 1):
            raise ValueError(f"PowCone3D: alpha must lie strictly between 0 and 1, got {alpha}")
        self.shape = broadcast(*(a.shape for a in self.args), self.alpha.shape, op="PowCone3D")

    def residual(self, x, y, z):
        a = self.alpha
        gap = np.abs(z) - np.power(np.maximum(x, 0), a) * np.power(np.maximum(y, 0), 1 - a)
        return np.maximum.reduce([gap, -x, -y, np.zeros(self.shape)])

    def canonicalize(self, ctx) -> None:
        alpha = np.broadcast_to(self.alpha, self.shape).reshape(-1)
        ctx.pow_cone(*self.broadcast_args(ctx), alpha, owner=self.id)

    dual_from = ExpCone.dual_from
    dual_adjoint = ExpCone.dual_adjoint

    def format_body(self) -> str:
        a = f"{float(self.alpha):g}" if self.alpha.ndim == 0 else "alpha"
        return f"PowCone3D({', '.join(a_.format() for a_ in self.args)}, {a})"
