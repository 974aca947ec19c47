"""The canonicalization context: variable and parameter layout, auxiliary variables, and the
cone constraints and quadratic objective terms atoms emit while they canonicalize.

An atom's ``canonicalize(args, ctx)`` receives its arguments as ``AffineTensor`` rows and
returns its own value as rows, adding whatever cone constraints make that correct under
the DCP rules (an epigraph variable for a convex atom, a hypograph one for a concave atom).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ..cones.cones import svec_indices
from ..errors import DomainError
from ..expressions.expression import Expression
from ..expressions.leaves import Constant, Parameter, Variable
from .tensor import AffineTensor, vstack


@dataclasses.dataclass
class ConeBlock:
    """Rows ``rows`` (affine in x, θ) constrained to lie in one kind of cone."""

    kind: str                      # zero | nonneg | soc | psd | exp | pow
    rows: AffineTensor
    dims: tuple = ()               # soc: cone sizes; psd: orders; pow: alphas
    owner: int | None = None       # id of the user constraint whose dual these rows carry


@dataclasses.dataclass
class QuadraticTerm:
    """weight · ½ rᵀ Q r on the variable block r = x[offset : offset + Q.shape[0]]."""

    offset: int
    Q: sp.spmatrix
    weight: AffineTensor           # one row, variable-free (constant or parameter-affine)


@dataclasses.dataclass
class QuadraticOffset:
    """½ (Dθ̃)ᵀ Q (Dθ̃): a constant of the objective that is quadratic in θ (from a square of
    a variable shifted by parameters, expanded: ½(x + Dθ̃)ᵀQ(x + Dθ̃))."""

    Q: sp.csr_matrix               # (k, k), the term's weight included
    D: sp.csr_matrix               # (k, 1 + len θ)


class CanonContext:
    """State of one canonicalization."""

    def __init__(self, parameters: list[Parameter], variables: list[Variable],
                 quadratic_objective: bool, parameters_as_constants: bool = False) -> None:
        self.parameters = parameters
        self.parameter_offsets: dict[int, int] = {}
        offset = 0
        for p in parameters:
            self.parameter_offsets[p.id] = offset
            offset += p.size
        self.n_theta = offset
        self.P = 1 + offset
        self.quadratic_objective = quadratic_objective
        self.parameters_as_constants = parameters_as_constants
        self.variable_offsets: dict[int, int] = {}
        self.n_vars = 0
        for v in variables:
            self.variable_offsets[v.id] = self.n_vars
            self.n_vars += v.size
        self.blocks: list[ConeBlock] = []
        self.quadratic_terms: list[QuadraticTerm] = []
        self.quadratic_offsets: list[QuadraticOffset] = []
        self._memo: dict[int, tuple[Expression, AffineTensor]] = {}

    # leaves and atoms -----------------------------------------------------------
    def canon(self, expr: Expression) -> AffineTensor:
        """Rows of ``expr`` (memoized: a shared subexpression is canonicalized once)."""
        key = id(expr)
        if key not in self._memo:      # the entry keeps expr alive, so its id stays unique
            self._memo[key] = (expr, self._canon(expr))
        return self._memo[key][1]

    def _canon(self, expr: Expression) -> AffineTensor:
        if isinstance(expr, Variable):
            return AffineTensor.variable(self.variable_offsets[expr.id], expr.size, self.P)
        if isinstance(expr, Parameter):
            if self.parameters_as_constants or expr.id not in self.parameter_offsets:
                if expr.value is None:
                    raise ValueError(f"Parameter {expr.name!r} has no value")
                return AffineTensor.constant(expr.value, self.P)
            return AffineTensor.parameter(self.parameter_offsets[expr.id], expr.size, self.P)
        if isinstance(expr, Constant):
            return AffineTensor.constant(expr.value, self.P)
        if self.is_data(expr):                                 # constant folding
            return AffineTensor.constant(self.data_value(expr), self.P)
        with_data = getattr(expr, "canonicalize_with_data", None)
        if with_data is not None:
            out = with_data(self)
            if out is not None:
                return out
        return expr.canonicalize([self.canon(a) for a in expr.args], self)

    def data_value(self, expr: Expression):
        """The numeric value of a data expression (sparse stays sparse); finite or raises."""
        value = expr.value
        data = value.data if sp.issparse(value) else value
        if not np.all(np.isfinite(data)):
            raise DomainError(f"the constant subexpression {expr} is not finite "
                             f"({value}); its arguments lie outside the atom's domain")
        return value

    def is_data(self, expr: Expression) -> bool:
        """No variables, and a value that does not depend on symbolic parameters (the DPP
        analysis' constants: power(p, 0) is data even though p is a parameter)."""
        if expr.variables():
            return False
        return self.parameters_as_constants or expr.is_constant(dpp=True) or not any(
            p.id in self.parameter_offsets for p in expr.parameters())

    # new variables and constants -------------------------------------------------
    def new_variable(self, size: int) -> AffineTensor:
        t = AffineTensor.variable(self.n_vars, size, self.P)
        self.n_vars += size
        return t

    def constant(self, values) -> AffineTensor:
        return AffineTensor.constant(values, self.P)

    def ones(self, size: int) -> AffineTensor:
        return self.constant(np.ones(size))

    # cone constraints ------------------------------------------------------------
    def add(self, kind: str, rows: AffineTensor, dims: tuple = (), owner: int | None = None):
        if rows.rows:
            self.blocks.append(ConeBlock(kind, rows, dims, owner))

    def equal(self, a: AffineTensor, b: AffineTensor, owner: int | None = None) -> None:
        """a = b."""
        self.add("zero", a - b, owner=owner)

    def nonneg(self, a: AffineTensor, owner: int | None = None) -> None:
        """a ≥ 0 elementwise."""
        self.add("nonneg", a, owner=owner)

    def soc(self, t: AffineTensor, X: AffineTensor, owner: int | None = None) -> None:
        """‖X[j, :]‖₂ ≤ t[j] for each of the ``t.rows`` cones; X has t.rows · k rows
        (cone j's vector is X's rows j·k … j·k + k − 1)."""
        count = t.rows
        k = X.rows // count
        order = np.empty((count, k + 1), np.int64)   # cone j: t_j, then its k entries
        order[:, 0] = np.arange(count)
        order[:, 1:] = count + np.arange(count)[:, None] * k + np.arange(k)[None, :]
        self.add("soc", vstack([t, X], self.P).select(order.reshape(-1)),
                 dims=(k + 1,) * count, owner=owner)

    def psd(self, M: AffineTensor, n: int, owner: int | None = None) -> None:
        """The symmetric part of the n×n matrix M (rows in C order) is PSD."""
        rows, cols = svec_indices(n)         # svec_k = (M_ij + M_ji) / √2 off the diagonal
        half = np.where(rows == cols, 0.5, np.sqrt(2.0) / 2)
        L = sp.csr_matrix((np.concatenate([half, half]),
                           (np.tile(np.arange(rows.size), 2),
                            np.concatenate([rows * n + cols, cols * n + rows]))),
                          shape=(rows.size, n * n))
        self.add("psd", M.linear(L), dims=(n,), owner=owner)

    def exp_cone(self, x: AffineTensor, y: AffineTensor, z: AffineTensor,
                 owner: int | None = None) -> None:
        """(x_i, y_i, z_i) ∈ K_exp for every row i."""
        self.add("exp", interleave([x, y, z], self.P), dims=(x.rows,), owner=owner)

    def pow_cone(self, x: AffineTensor, y: AffineTensor, z: AffineTensor, alpha,
                 owner: int | None = None) -> None:
        """(x_i, y_i, z_i) in the 3-d power cone with exponent α_i, for every row i."""
        alphas = np.broadcast_to(np.asarray(alpha, dtype=float), (x.rows,))
        self.add("pow", interleave([x, y, z], self.P), dims=tuple(alphas.tolist()),
                 owner=owner)

    def symmetric(self, M: AffineTensor, n: int) -> None:
        """M = Mᵀ (equalities on the strictly upper triangle)."""
        i, j = np.triu_indices(n, 1)
        if i.size:
            self.equal(M.select(i * n + j), M.select(j * n + i))

    # quadratic objective -----------------------------------------------------------
    def add_quadratic(self, offset: int, Q: sp.spmatrix, weight: AffineTensor) -> None:
        """weight · ½ rᵀ Q r on the variable block r = x[offset : offset + Q.shape[0]]."""
        self.quadratic_terms.append(QuadraticTerm(offset, sp.csr_matrix(Q), weight))

    def add_quadratic_offset(self, Q: sp.spmatrix, shift: AffineTensor) -> None:
        """½ vᵀ Q v added to the objective for v = ``shift``, variable-free rows."""
        m = shift.matrix.tocoo()
        D = sp.csr_matrix((m.data, (m.row, shift.keys[m.col] % self.P)),
                          shape=(shift.rows, self.P))
        self.quadratic_offsets.append(QuadraticOffset(sp.csr_matrix(Q), D))


def interleave(tensors: list[AffineTensor], P: int) -> AffineTensor:
    """Rows t0[0], t1[0], t2[0], t0[1], … of equally long tensors."""
    k, m = len(tensors), tensors[0].rows
    order = (np.arange(k)[None, :] * m + np.arange(m)[:, None]).reshape(-1)
    return vstack(tensors, P).select(order)


def broadcast_index(shape: tuple, target: tuple) -> np.ndarray:
    """Row index that broadcasts C-order rows of ``shape`` to ``target``."""
    return np.broadcast_to(np.arange(int(np.prod(shape, dtype=int))).reshape(shape),
                           target).reshape(-1)


def broadcast_rows(t: AffineTensor, shape: tuple, target: tuple) -> AffineTensor:
    """Rows of ``t`` (an expression of ``shape``) broadcast to ``target``."""
    if tuple(shape) == tuple(target):
        return t
    return t.select(broadcast_index(shape, target))
