"""Structure fast paths: problems whose solution map has a closed form.

Recognized by the form of the problem — not by names — with one vector variable y and a
point v(θ) that is affine in the parameters:

* Euclidean projections  minimize c·‖±(y − v(θ))‖²  (c > 0 constant)  subject to exactly
  - ``y >= 0``                                   (nonnegative orthant: max(v, 0))
  - bounds ``y >= l`` and/or ``y <= u`` (constants)   (box: clip(v, l, u))
  - ``sum(y) == r`` and ``y >= 0`` (r > 0)        (simplex: sparsemax, by sorting)
  - ``norm(y) <= r`` (r > 0 constant)             (L2 ball: v·min(1, r/‖v‖))
* the entropic softmax  maximize v(θ)ᵀy + τ·Σ entr(y)  subject to  sum(y) == 1
  (τ > 0 constant): y = softmax(v/τ).

A recognized problem is solved in closed form, batched, and differentiated exactly (the
closed form's Jacobian, below); the contract says so. Each closed form is written once
against a small array namespace (``ops``) so the NumPy, PyTorch and JAX layers run the same
formula natively and their own autodiff differentiates it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

DESCRIPTIONS = {
    "nonneg": "Euclidean projection onto the nonnegative orthant, max(v, 0)",
    "box": "Euclidean projection onto a box, clip(v, l, u)",
    "simplex": "Euclidean projection onto the simplex (sparsemax; sorting, Held–Wolfe–"
               "Crowder 1974)",
    "l2_ball": "Euclidean projection onto an L2 ball, v·min(1, r/‖v‖)",
    "softmax": "the entropic softmax, softmax(v/τ)",
}


@dataclasses.dataclass
class FastPath:
    """A recognized problem: ``kind``, its variable, and v = V @ θ̃ with θ̃ = [1; θ]."""

    kind: str
    variable: object
    V: sp.csr_matrix                      # (size of y, 1 + len θ)
    radius: float = 1.0                   # simplex total / ball radius
    lower: np.ndarray | None = None       # box
    upper: np.ndarray | None = None
    temperature: float = 1.0              # softmax

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.kind]

    def point(self, theta: np.ndarray) -> np.ndarray:
        """v for every column of θ̃ (1 + len θ, B) → (B, size)."""
        return np.asarray(self.V @ theta).T

    def solve(self, v, ops):
        """The closed form at v (B, size), in the array namespace ``ops``."""
        if self.kind == "nonneg":
            return ops.maximum(v, 0.0)
        if self.kind == "box":
            return ops.clip(v, self.lower, self.upper)
        if self.kind == "l2_ball":
            norm = ops.sqrt(ops.sum(v * v, axis=-1, keepdims=True))
            return v * ops.minimum(1.0, self.radius / ops.maximum(norm, 1e-300))
        if self.kind == "softmax":
            z = v / self.temperature
            e = ops.exp(z - ops.max(z, axis=-1, keepdims=True))
            return e / ops.sum(e, axis=-1, keepdims=True)
        # simplex: y = max(v − τ, 0) with τ from the sorted entries
        u = ops.sort_descending(v)
        k = ops.arange(1, v.shape[-1] + 1, like=v)
        css = ops.cumsum(u, axis=-1) - self.radius
        support = ops.sum(ops.where(u - css / k > 0, 1.0, 0.0), axis=-1, keepdims=True)
        tau = ops.take_along(css, ops.as_index(support) - 1) / support
        return ops.maximum(v - tau, 0.0)

    # closed-form Jacobians (NumPy), for Solution.vjp / jvp -------------------------
    def jvp(self, v: np.ndarray, y: np.ndarray, dv: np.ndarray) -> np.ndarray:
        """J(v) dv for the batch (all (B, size)); J is symmetric, so this is also the VJP."""
        if self.kind == "nonneg":
            return np.where(v > 0, dv, 0.0)
        if self.kind == "box":
            return np.where((v > self.lower) & (v < self.upper), dv, 0.0)
        if self.kind == "l2_ball":
            norm = np.linalg.norm(v, axis=-1, keepdims=True)
            u = v / np.maximum(norm, 1e-300)
            inside = norm <= self.radius
            outside = self.radius / np.maximum(norm, 1e-300) * (
                dv - u * np.sum(u * dv, axis=-1, keepdims=True))
            return np.where(inside, dv, outside)
        if self.kind == "softmax":
            return y * (dv - np.sum(y * dv, axis=-1, keepdims=True)) / self.temperature
        support = y > 0                                         # simplex
        count = np.maximum(support.sum(axis=-1, keepdims=True), 1)
        mean = np.sum(np.where(support, dv, 0.0), axis=-1, keepdims=True) / count
        return np.where(support, dv - mean, 0.0)

    def degenerate(self, v: np.ndarray, y: np.ndarray, tol: float = 1e-9) -> np.ndarray:
        """Per element: does v sit on a kink of the closed form (where it has no
        derivative, and the one returned is one element of the Clarke Jacobian)?"""
        scale = tol * np.maximum(1.0, np.abs(v).max(axis=-1))
        if self.kind == "nonneg":
            return (np.abs(v) <= scale[:, None]).any(axis=-1)
        if self.kind == "box":
            near = np.minimum(np.abs(v - self.lower), np.abs(v - self.upper))
            return (near <= scale[:, None]).any(axis=-1)
        if self.kind == "l2_ball":
            return np.abs(np.linalg.norm(v, axis=-1) - self.radius) <= scale
        if self.kind == "softmax":
            return np.zeros(len(v), bool)
        tau = np.max(v - y, axis=-1, where=y > 0, initial=-np.inf)
        off = y <= 0
        return (off & (np.abs(v - tau[:, None]) <= scale[:, None])).any(axis=-1)


# ------------------------------------------------------------------------- array namespaces
class ArrayOps:
    """The operations the closed forms use, for a NumPy-compatible module ``xp`` (NumPy
    itself, or jax.numpy); PyTorch's layer brings its own (``dim`` for ``axis``)."""

    def __init__(self, xp) -> None:
        self.xp = xp
        self.maximum, self.minimum, self.sqrt, self.exp, self.clip, self.where = (
            xp.maximum, xp.minimum, xp.sqrt, xp.exp, xp.clip, xp.where)

    def sum(self, a, axis, keepdims=False):
        return self.xp.sum(a, axis=axis, keepdims=keepdims)

    def max(self, a, axis, keepdims=False):
        return self.xp.max(a, axis=axis, keepdims=keepdims)

    def sort_descending(self, a):
        return -self.xp.sort(-a, axis=-1)

    def arange(self, start, stop, like):
        return self.xp.arange(start, stop, dtype=like.dtype)

    def cumsum(self, a, axis):
        return self.xp.cumsum(a, axis=axis)

    def as_index(self, a):
        return a.astype(self.xp.int32)

    def take_along(self, a, index):
        return self.xp.take_along_axis(a, index, axis=-1)


NumpyOps = ArrayOps(np)


# ------------------------------------------------------------------------- recognition
def recognize(problem, parameters) -> FastPath | None:
    """The fast path for ``problem`` (compiled with ``parameters``), or None."""
    variables = problem.variables()
    if len(variables) != 1:
        return None
    y = variables[0]
    if y.ndim != 1 or any(y.attributes.get(k) for k in ("nonpos", "symmetric", "PSD", "NSD")):
        return None
    constraints = list(problem.constraints)
    if y.attributes.get("nonneg"):
        constraints.append(y >= 0)
    if problem.objective.sense == "maximize":
        return _softmax(problem.objective.expr, y, constraints, parameters)
    return _projection(problem.objective.expr, y, constraints, parameters)


def _projection(expr, y, constraints, parameters):
    from .atoms.affine_arithmetic import Multiply
    from .atoms.quadratic import SumSquares
    if isinstance(expr, Multiply):                      # c · sum_squares(...), c > 0
        const = [a for a in expr.args if a.is_constant() and not a.parameters()]
        if len(const) != 1 or const[0].size != 1 or not float(const[0].value) > 0:
            return None
        expr = expr.args[1] if expr.args[0] is const[0] else expr.args[0]
    if not isinstance(expr, SumSquares) or expr.axis is not None:
        return None
    V = _point_of(expr.args[0], y, parameters)
    if V is None:
        return None
    sets = _constraint_set(constraints, y)
    if sets is None:
        return None
    kind, extra = sets
    return FastPath(kind, y, V, **extra)


def _point_of(arg, y, parameters):
    """V with arg = ±(y − V θ̃), or None when arg is not of that form."""
    from .compile.context import CanonContext
    if arg.shape != y.shape:
        return None
    ctx = CanonContext(parameters, [y], quadratic_objective=False)
    try:
        rows = ctx.canon(arg)
    except Exception:                                    # not affine in this context
        return None
    M = rows.matrix.tocsc()
    var, par = rows.keys // ctx.P, rows.keys % ctx.P
    on_y = var > 0
    if np.any(par[on_y] != 0):
        return None                                      # θ multiplies y: not a projection
    Y = M[:, np.flatnonzero(on_y)].tocoo()
    n = y.size
    order = np.argsort(Y.row, kind="stable")
    entries = var[np.flatnonzero(on_y)][Y.col[order]] - 1
    signs = Y.data[order]
    if not (Y.nnz == n and np.array_equal(Y.row[order], np.arange(n))
            and np.array_equal(entries, np.arange(n)) and np.all(np.abs(signs) == 1)
            and np.all(signs == signs[0])):
        return None
    data = np.flatnonzero(~on_y)                         # constant and parameter columns
    select = sp.csr_matrix((np.ones(data.size), (np.arange(data.size), par[data])),
                           shape=(data.size, ctx.P))
    # arg = s·y + W θ̃ = s(y − v) with v = −s·W θ̃
    return sp.csr_matrix(-signs[0] * (M[:, data] @ select))


def _constraint_set(constraints, y):
    """(kind, options) for the constraint list, or None."""
    from .atoms.affine_structural import Sum
    from .atoms.norms import Pnorm
    from .constraints.constraint import Equality, Inequality
    lower = upper = total = radius = None
    for c in constraints:
        if isinstance(c, Inequality):
            lhs, rhs = c.args
            if lhs is y and _constant(rhs):                 # y <= u
                upper = _bound(upper, rhs.value, y, np.minimum)
            elif rhs is y and _constant(lhs):               # l <= y
                lower = _bound(lower, lhs.value, y, np.maximum)
            elif (isinstance(lhs, Pnorm) and lhs.p == 2 and lhs.axis is None
                  and lhs.args[0] is y and _constant(rhs) and rhs.size == 1
                  and radius is None):
                radius = float(rhs.value)
            else:
                return None
        elif isinstance(c, Equality):
            lhs, rhs = c.args
            if isinstance(lhs, Sum) and lhs.axis is None and lhs.args[0] is y \
                    and _constant(rhs) and rhs.size == 1 and total is None:
                total = float(rhs.value)
            else:
                return None
        else:
            return None
    if radius is not None:
        return ("l2_ball", {"radius": radius}) if radius > 0 and lower is None \
            and upper is None and total is None else None
    if total is not None:
        simplex = (lower is not None and upper is None and np.all(lower == 0) and total > 0)
        return ("simplex", {"radius": total}) if simplex else None
    if lower is not None and upper is None and np.all(lower == 0):
        return "nonneg", {}
    if lower is None and upper is None:
        return None
    lo = np.full(y.shape, -np.inf) if lower is None else lower
    hi = np.full(y.shape, np.inf) if upper is None else upper
    return ("box", {"lower": lo, "upper": hi}) if np.all(lo < hi) else None


def _softmax(expr, y, constraints, parameters):
    from .atoms.affine_arithmetic import AddExpression, MatMul, Multiply
    from .atoms.affine_structural import Sum
    from .atoms.exponential import Entr
    from .constraints.constraint import Equality
    if not isinstance(expr, AddExpression) or len(expr.args) != 2 or len(constraints) != 1:
        return None
    c = constraints[0]
    if not (isinstance(c, Equality) and isinstance(c.args[0], Sum) and c.args[0].args[0] is y
            and _constant(c.args[1]) and np.isclose(float(c.args[1].value), 1.0)):
        return None
    linear = entropy = None
    temperature = 1.0
    for term in expr.args:
        if isinstance(term, MatMul) and term.args[1] is y and not term.args[0].variables():
            linear = term.args[0]
        elif isinstance(term, Multiply) and any(isinstance(a, Sum) for a in term.args):
            const = [a for a in term.args if _constant(a)]
            inner = [a for a in term.args if isinstance(a, Sum)]
            if len(const) == 1 and const[0].size == 1 and float(const[0].value) > 0:
                temperature, entropy = float(const[0].value), inner[0]
        elif isinstance(term, Sum):
            entropy = term
    if linear is None or entropy is None or not isinstance(entropy.args[0], Entr) \
            or entropy.args[0].args[0] is not y or linear.shape != y.shape:
        return None
    V = _point_of(y - linear, y, parameters)
    return None if V is None else FastPath("softmax", y, V, temperature=temperature)


def _constant(expr) -> bool:
    return not expr.variables() and not expr.parameters() and expr.value is not None


def _bound(current, value, y, combine):
    value = np.broadcast_to(np.asarray(value, float), y.shape)
    return value.copy() if current is None else combine(current, value)
