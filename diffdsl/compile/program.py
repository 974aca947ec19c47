"""The parametric cone program: (P, c, d, A, b) = T · [1; θ] with fixed sparsity patterns.

    minimize    ½ xᵀ P x + cᵀ x + d
    subject to  A x + s = b,  s ∈ K

Each block is stored as a sparse matrix T_X of shape (nnz(X), 1 + len(θ)): the values of X's
nonzeros (in a fixed CSC pattern) are ``T_X @ θ̃`` with θ̃ = [1; θ]. A batch of parameter
values Θ̃ (1 + len(θ), B) costs one sparse × dense product per block.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ..cones.cones import CONE_ORDER, ConeDims
from ..errors import DomainError
from .context import CanonContext
from .tensor import AffineTensor, unique_inverse, vstack


@dataclasses.dataclass
class SparsePattern:
    """A fixed CSC sparsity pattern and the map from θ̃ to its values."""

    shape: tuple[int, int]
    indices: np.ndarray       # CSC row indices
    indptr: np.ndarray        # CSC column pointers
    T: sp.csr_matrix          # (nnz, 1 + len θ)

    @classmethod
    def build(cls, shape, rows, cols, params, vals, n_params: int) -> "SparsePattern":
        m, n = shape
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        flat = cols * max(m, 1) + rows
        unique, position = unique_inverse(flat)                   # sorted = CSC order
        T = sp.csr_matrix((np.asarray(vals, float), (position, np.asarray(params))),
                          shape=(unique.size, n_params))
        T.sum_duplicates()
        u_cols, u_rows = np.divmod(unique, max(m, 1))
        indptr = np.zeros(n + 1, np.int64)
        np.add.at(indptr, u_cols + 1, 1)
        return cls((m, n), u_rows, np.cumsum(indptr), T)

    @cached_property
    def depends_on_parameters(self) -> bool:
        return bool(self.T[:, 1:].nnz)

    def values(self, theta: np.ndarray) -> np.ndarray:
        """Nonzero values at θ̃ (shape (1+len θ,) or (1+len θ, B))."""
        return self.T @ theta

    def matrix(self, values: np.ndarray) -> sp.csc_matrix:
        return sp.csc_matrix((values, self.indices, self.indptr), shape=self.shape)

    def symmetric_matrix(self, values: np.ndarray) -> sp.csc_matrix:
        """U + Uᵀ − diag U for an upper-triangular pattern U (how P is stored)."""
        off = self.indices != self.columns
        rows = np.concatenate([self.indices, self.columns[off]])
        cols = np.concatenate([self.columns, self.indices[off]])
        return sp.csc_matrix((np.concatenate([values, values[off]]), (rows, cols)),
                             shape=self.shape)

    def dense(self, values: np.ndarray) -> np.ndarray:
        """Dense matrices (B, m, n) from values (B, nnz) (written at flat places: a (B, ·)
        assignment is an order of magnitude faster than NumPy's 3-index one)."""
        out = np.zeros((values.shape[0], self.shape[0] * self.shape[1]))
        out[:, self.indices * self.shape[1] + self.columns] = values
        return out.reshape((values.shape[0],) + tuple(self.shape))

    def symmetric_dense(self, values: np.ndarray) -> np.ndarray:
        """Dense U + Uᵀ − diag U (B, n, n) for an upper-triangular pattern U, values (B, nnz)."""
        out = self.dense(values)
        out.reshape(out.shape[0], -1)[:, self.columns * self.shape[1] + self.indices] = values
        return out

    @cached_property
    def columns(self) -> np.ndarray:
        """Column index of every stored entry."""
        return np.repeat(np.arange(self.shape[1]), np.diff(self.indptr))

    @cached_property
    def full_diagonal(self) -> bool:
        """Whether every diagonal entry of the (square) pattern is stored: for P, a quadratic
        term on every variable, which a definite P needs."""
        on = self.indices == self.columns
        return np.unique(self.indices[on]).size == self.shape[0]

    def matvec(self, values: np.ndarray, X: np.ndarray) -> np.ndarray:
        """M x for every column pair of ``values`` (nnz, B) and ``X`` (n, B)."""
        return self._sum_into(values * X[self.columns], self.indices, self.shape[0])

    def rmatvec(self, values: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Mᵀ y for every column pair of ``values`` (nnz, B) and ``Y`` (m, B)."""
        return self._sum_into(values * Y[self.indices], self.columns, self.shape[1])

    def symmetric_matvec(self, values: np.ndarray, X: np.ndarray) -> np.ndarray:
        """(U + Uᵀ − diag U) x for an upper-triangular pattern U."""
        off = self.indices != self.columns
        return self.matvec(values, X) + self._sum_into(
            values[off] * X[self.indices[off]], self.columns[off], self.shape[1])

    @staticmethod
    def _sum_into(terms: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
        S = sp.csr_matrix((np.ones(rows.size), (rows, np.arange(rows.size))),
                          shape=(size, rows.size))
        return np.asarray(S @ terms)


@dataclasses.dataclass
class DualBlock:
    """Where a user constraint's rows sit in (s, y)."""

    kind: str
    start: int
    stop: int
    dims: tuple


@dataclasses.dataclass
class ParamConeProgram:
    n: int
    m: int
    n_theta: int
    cones: ConeDims
    A: SparsePattern
    P: SparsePattern
    b: sp.csr_matrix          # (m, 1 + len θ)
    c: sp.csr_matrix          # (n, 1 + len θ)
    d: sp.csr_matrix          # (1, 1 + len θ)
    duals: dict[int, list[DualBlock]]
    variable_offsets: dict[int, int]   # user Variable id → first index in x (C order)
    #: constants of the objective quadratic in θ: d(θ) = d θ̃ + Σ ½(Dθ̃)ᵀQ(Dθ̃)
    quadratic_offsets: tuple = ()

    def objective_offset(self, theta: np.ndarray) -> np.ndarray:
        """d at θ̃ (1 + len θ, B), per element (B,)."""
        out = np.asarray(self.d @ theta).reshape(-1)
        for term in self.quadratic_offsets:
            v = np.asarray(term.D @ theta)
            out = out + 0.5 * np.sum(v * (term.Q @ v), axis=0)
        return out

    def depends_on_parameters(self) -> dict[str, bool]:
        """Which blocks change with θ (e.g. A and P constant: factorizations can be reused)."""
        return {"P": self.P.depends_on_parameters, "A": self.A.depends_on_parameters,
                "b": bool(self.b[:, 1:].nnz), "c": bool(self.c[:, 1:].nnz),
                "d": bool(self.d[:, 1:].nnz) or bool(self.quadratic_offsets)}

    def sizes(self) -> str:
        k = self.cones
        return (f"{self.n} variables, {self.m} cone rows (zero {k.zero}, nonneg {k.nonneg}, "
                f"soc {len(k.soc)}, psd {len(k.psd)}, exp {k.exp}, pow {len(k.pow)}), "
                f"{self.A.T.shape[0]} nonzeros in A, {self.P.T.shape[0]} in P, "
                f"{self.n_theta} parameters")


def build_program(ctx: CanonContext, objective: AffineTensor) -> ParamConeProgram:
    """Assemble the cone blocks (in the fixed cone order) and objective of a context."""
    P_ = ctx.P
    blocks = sorted(ctx.blocks, key=lambda b: CONE_ORDER.index(b.kind))   # stable
    rows = vstack([b.rows for b in blocks], P_) if blocks else AffineTensor.zeros(0, P_)
    m, n = rows.rows, ctx.n_vars

    duals: dict[int, list[DualBlock]] = {}
    start = 0
    for b in blocks:
        if b.owner is not None:
            block = DualBlock(b.kind, start, start + b.rows.rows, b.dims)
            duals.setdefault(b.owner, []).append(block)
        start += b.rows.rows

    r, var, par, val = entries(rows)
    in_A = var > 0                                   # s = rows(x) ⇒ A = −∂rows/∂x, b = rows(0)
    A = SparsePattern.build((m, n), r[in_A], var[in_A] - 1, par[in_A], -val[in_A], P_)
    b = sp.csr_matrix((val[~in_A], (r[~in_A], par[~in_A])), shape=(m, P_))

    _, var, par, val = entries(objective)
    c = sp.csr_matrix((val[var > 0], (var[var > 0] - 1, par[var > 0])), shape=(n, P_))
    d = sp.csr_matrix((val[var == 0], (np.zeros((var == 0).sum(), int), par[var == 0])),
                      shape=(1, P_))

    P = quadratic_pattern(ctx, n)
    cones = ConeDims(
        zero=sum(b.rows.rows for b in blocks if b.kind == "zero"),
        nonneg=sum(b.rows.rows for b in blocks if b.kind == "nonneg"),
        soc=tuple(d_ for b in blocks if b.kind == "soc" for d_ in b.dims),
        psd=tuple(d_ for b in blocks if b.kind == "psd" for d_ in b.dims),
        exp=sum(b.rows.rows // 3 for b in blocks if b.kind == "exp"),
        pow=tuple(a for b in blocks if b.kind == "pow" for a in b.dims))
    for name, T in (("A", A.T), ("P", P.T), ("b", b), ("c", c), ("d", d)):
        if not np.all(np.isfinite(T.data)):
            raise DomainError(f"the cone program's {name} has non-finite coefficients: a "
                              "constant subexpression divides by zero or overflows (check "
                              "constants and, for non-DPP problems, parameter values)")
    return ParamConeProgram(n, m, ctx.n_theta, cones, A, P, b, c, d, duals,
                            dict(ctx.variable_offsets), tuple(ctx.quadratic_offsets))


def entries(t: AffineTensor):
    """(row, variable index, parameter index, value) of every stored entry."""
    coo = t.matrix.tocoo()
    keys = t.keys[coo.col]
    return coo.row.astype(np.int64), keys // t.n_params, keys % t.n_params, coo.data


def quadratic_pattern(ctx: CanonContext, n: int) -> SparsePattern:
    """Upper triangle of P = Σ weight · Q over the quadratic objective terms."""
    rows, cols, params, vals = [], [], [], []
    for term in ctx.quadratic_terms:
        Q = sp.triu(term.Q, format="coo")
        w = term.weight.matrix.tocoo()
        wp = term.weight.keys[w.col] % ctx.P
        for p, wv in zip(wp, w.data, strict=True):
            rows.append(term.offset + Q.row)
            cols.append(term.offset + Q.col)
            params.append(np.full(Q.nnz, p))
            vals.append(Q.data * wv)
    return SparsePattern.build((n, n), concat(rows), concat(cols),
                               concat(params).astype(np.int64), concat(vals), ctx.P)


def concat(parts: list) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)
