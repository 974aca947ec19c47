"""The derivative system M = [[P, AᵀD], [−A, I − D]] (+ ρI) at one point, factored once.

Inactive cone entries are eliminated in closed form before factoring. Where D = DΠ_K*(y − s)
has a zero row and column k (an inactive entry of R₊, or a whole inactive SOC/PSD/exp/pow
block), the unknown dz_k appears in row k only, with coefficient 1 + ρ. Ordering the kept
unknowns first,

    M = [[M₁₁, 0], [M₂₁, (1+ρ)I]],   M₂₁ = [−A_dropped, 0],

so M⁻¹r = (u₁, (r₂ − M₂₁u₁)/(1+ρ)) with u₁ = M₁₁⁻¹r₁, and Mᵀ is solved the same way
backwards. M₁₁ has n + (number of kept entries) rows: for an LP or QP, the primal variables
and the active constraints only (the KKT system of the active set).

Variables whose row and column of M₁₁ are both zero are then set aside too: a variable
absent from P that appears only in inactive rows, like the epigraph variable t of
|u| ≤ t ≤ 1 when |u| < 1, whose optimal value fills an interval. Its equation reads 0 = r_j
(the data never move it, and nothing observes it), so its derivative is taken as 0 — the
minimum-norm choice — and the rest of the system stays nonsingular. ``free_residual``
records the largest |r_j| met (nonzero: the equation is inconsistent and is flagged).
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from ..cones.projections import BlockDiagonal
from .linear import DirectSolver, IterativeSolver, QuasiDefiniteSolver, dense_preferred

#: factor large sparse polyhedral-type systems by LDLᵀ (QDLDL) rather than LU
LDL_SOLVER = True
#: refinement steps with a nearby point's factorization before factoring M itself, and
#: the relative residual at which they stop
REUSE_STEPS = 4
REUSE_TOL = 1e-14


class DerivativeSystem:
    """M at one point, for M⁻¹ and M⁻ᵀ solves and M, Mᵀ products."""

    def __init__(self, P, A, D: BlockDiagonal, solver: str = "direct",
                 reg: float = 0.0, near: "DerivativeSystem | None" = None,
                 AT=None) -> None:
        """P and A both dense arrays (small systems: everything dense) or both sparse
        (``AT``: A's transpose, where the caller holds it). ``near``: the system at a
        nearby point with the same data; where D keeps its pattern, M is not factored
        here — solves use near's factorization refined against this M's exact products
        (``_refined``), falling back to a factorization here."""
        self.n, self.m = P.shape[0], A.shape[0]
        self.P, self.A, self.D_blocks, self.reg = P, A, D, reg
        self.AT = A.T if AT is None else AT
        self.solver, self.free_residual = solver, 0.0
        dense = isinstance(P, np.ndarray)
        self.D = D.dense() if dense else D.sparse()
        self.DT = self.D.T
        keep = D.nonzero_lines()
        self.kept, self.dropped = np.flatnonzero(keep), np.flatnonzero(~keep)
        self.near = near if near is not None and self._same_pattern(near) else None
        self._linear, self._make_linear = None, None
        if self.near is not None:
            self.free, self.active, self._linear = near.free, near.active, near.linear
        else:
            self._factor()

    @property
    def linear(self):
        """The factored M₁₁ (``linear``'s solvers), factored on first use."""
        return self.factor()._linear

    @property
    def unfactored(self) -> bool:
        """Whether M₁₁'s factorization is still to be done (``factor`` does it; a lockstep
        refinement factors a batch's systems in parallel)."""
        return self._linear is None

    def factor(self) -> "DerivativeSystem":
        """Factor M₁₁ now, if it is not factored yet."""
        if self._linear is None:
            self._linear = self._make_linear()
        return self

    def _same_pattern(self, other: "DerivativeSystem") -> bool:
        """Same data, same eliminated lines and the same nonzero pattern of D (so the same
        set-aside variables): other's factorization can serve this M."""
        if (other.P is not self.P or other.A is not self.A or other.reg != self.reg
                or other.solver != self.solver or not np.array_equal(other.kept, self.kept)):
            return False
        if isinstance(self.D, np.ndarray):
            return bool(np.array_equal(self.D != 0, other.D != 0))
        return (np.array_equal(self.D.indptr, other.D.indptr)
                and np.array_equal(self.D.indices, other.D.indices))

    def _factor(self) -> None:
        P, A, reg, solver = self.P, self.A, self.reg, self.solver
        dense, D = isinstance(P, np.ndarray), self.D_blocks
        if dense:
            M11 = _dense_block(P, A[self.kept], self.D[np.ix_(self.kept, self.kept)], reg)
        else:
            M11 = _sparse_block(P, A, D, self.D, self.kept, reg)
        self.free, self.active = _free_variables(M11, self.n)
        if self.free.size:
            M11 = M11[np.ix_(self.active, self.active)] if dense else \
                M11[self.active][:, self.active]
        if not dense and solver == "direct" and dense_preferred(M11.shape[0], M11.nnz):
            M11 = M11.toarray()
        d = D.diagonal()
        # LDLᵀ of the quasi-definite form needs P's diagonal positive on the variables: a
        # zero there (an LP, an epigraph variable) meets a pivot of the shift's size, and
        # the LDLᵀ would hand over to LU after all (measured on LPs, partly quadratic QPs
        # and sparsemax) — LU directly then
        quasi_definite = (d is not None and not isinstance(M11, np.ndarray)
                          and bool(np.all(d[self.kept] == 1.0))
                          and bool(np.all(np.delete(P.diagonal(), self.free) > 0)))
        self._linear = None                          # factored on first use
        if solver == "direct" and quasi_definite and LDL_SOLVER:
            self._make_linear = functools.partial(QuasiDefiniteSolver, M11,
                                                  self.n - self.free.size)
        elif solver == "direct":
            self._make_linear = functools.partial(DirectSolver, M11)
        else:
            self._make_linear = functools.partial(IterativeSolver, M11, solver)

    @property
    def singular(self) -> bool:
        return self.linear.singular

    @property
    def pivot_ratio(self) -> float:
        return self.linear.pivot_ratio

    def condition_estimate(self) -> float:
        """Of M₁₁ (the eliminated part is the identity)."""
        return self.linear.condition_estimate()

    def _split(self, v: np.ndarray):
        n = self.n
        return np.concatenate([v[:n], v[n + self.kept]]), v[n + self.dropped]

    def _solve_kept(self, r1: np.ndarray, transpose: bool, refine: bool) -> np.ndarray:
        """M₁₁⁻¹ r₁ (or M₁₁⁻ᵀ r₁), with the free variables' entries 0."""
        if not self.free.size:
            return self.linear.solve(r1, transpose, refine)
        scale = max(np.abs(r1).max(initial=0.0), 1e-300)
        self.free_residual = max(self.free_residual,
                                 float(np.abs(r1[self.free]).max() / scale))
        out = np.zeros_like(r1)
        out[self.active] = self.linear.solve(r1[self.active], transpose, refine)
        return out

    def _join(self, v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
        n = self.n
        out = np.empty(n + self.m)
        out[:n], out[n + self.kept], out[n + self.dropped] = v1[:n], v1[n:], v2
        return out

    def solve(self, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
        """M⁻¹ rhs (or M⁻ᵀ rhs)."""
        if self.near is None:
            return self._eliminated_solve(rhs, transpose)
        return self._refined(rhs, transpose)

    def _refined(self, rhs: np.ndarray, transpose: bool) -> np.ndarray:
        """Iterative refinement with the nearby factorization: each step shrinks the error
        by about ‖M₀⁻¹(M − M₀)‖ (~ the distance between the points); where it does not
        reach rounding level in ``REUSE_STEPS``, M is factored here and solved directly."""
        # (near's own factorization is not refined against near's M: these steps refine
        # against this M)
        sol = self._eliminated_solve(rhs, transpose, refine=False)
        size = max(float(np.linalg.norm(rhs)), 1e-300)
        for step in range(REUSE_STEPS + 1):
            residual = rhs - self.matvec(sol, transpose)
            if np.linalg.norm(residual) <= REUSE_TOL * size:
                return sol
            if step < REUSE_STEPS:
                sol = sol + self._eliminated_solve(residual, transpose, refine=False)
        self.near = None
        self._factor()
        return self._eliminated_solve(rhs, transpose)

    def _eliminated_solve(self, rhs: np.ndarray, transpose: bool,
                          refine: bool = True) -> np.ndarray:
        """M⁻¹ rhs through the factored M₁₁; M₂₁ = [−A_dropped, 0] is applied through A.
        ``refine``: one step of refinement against M₁₁."""
        n, r1, r2 = self.n, *self._split(rhs)
        scale = 1.0 + self.reg
        if not transpose:
            u1 = self._solve_kept(r1, False, refine)
            return self._join(u1, (r2 + (self.A @ u1[:n])[self.dropped]) / scale)
        w2 = r2 / scale
        spread = np.zeros(self.m)
        spread[self.dropped] = w2
        r1 = r1.copy()
        r1[:n] += self.AT @ spread
        return self._join(self._solve_kept(r1, True, refine), w2)

    def matvec(self, v: np.ndarray, transpose: bool = False) -> np.ndarray:
        """M v (or Mᵀ v), from P (symmetric), A and D without forming M."""
        vx, vy = v[:self.n], v[self.n:]
        if not transpose:
            Dvy = self.D @ vy
            out = np.concatenate([self.P @ vx + self.AT @ Dvy, -(self.A @ vx) + vy - Dvy])
        else:
            Avx = self.A @ vx
            out = np.concatenate([self.P @ vx - self.AT @ vy,
                                  self.DT @ (Avx - vy) + vy])
        return out + self.reg * v


def _free_variables(M11, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(free, active): the first-n indices whose row and column of M₁₁ are both zero, and
    every other index."""
    if isinstance(M11, np.ndarray):
        empty = ~(M11[:n] != 0).any(axis=1) & ~(M11[:, :n] != 0).any(axis=0)
    else:
        M = sp.csc_matrix(M11)
        M.eliminate_zeros()
        column_nnz = np.diff(M.indptr)[:n]
        row_nnz = np.bincount(M.indices, minlength=M.shape[0])[:n]
        empty = (column_nnz == 0) & (row_nnz == 0)
    free = np.flatnonzero(empty)
    return free, np.setdiff1d(np.arange(M11.shape[0]), free)


def _dense_block(P, A_kept, D_kept, reg: float) -> np.ndarray:
    """[[P, A_kᵀD_k], [−A_k, I − D_k]] + ρI from dense blocks."""
    n, k = P.shape[0], A_kept.shape[0]
    M = np.empty((n + k, n + k))
    M[:n, :n] = P
    M[:n, n:] = A_kept.T @ D_kept
    M[n:, :n] = -A_kept
    M[n:, n:] = np.eye(k) - D_kept
    if reg:
        M[np.diag_indices(n + k)] += reg
    return M


def _sparse_block(P, A, D: BlockDiagonal, D_matrix, kept, reg: float) -> sp.csc_matrix:
    """The same block, sparse, assembled from triplets in one construction. With D
    diagonal (polyhedral cones) the triplets come straight from A's; otherwise A_kᵀD_k is
    one sparse product."""
    n, k = P.shape[0], kept.size
    position = np.full(A.shape[0], -1)
    position[kept] = np.arange(k)
    A_coo, P_coo = A.tocoo(), P.tocoo()
    on = position[A_coo.row] >= 0
    a_row, a_col, a_val = n + position[A_coo.row[on]], A_coo.col[on], A_coo.data[on]
    d = D.diagonal()
    if d is not None:
        top = (a_col, a_row, a_val * d[A_coo.row[on]])
        corner = (n + np.arange(k), n + np.arange(k), 1.0 - d[kept])
    else:
        # D's dropped lines are zero, so A_kᵀD_k is AᵀD on the kept columns, and D_k is D's
        # triplets between kept lines (no sparse slicing)
        T, C = (A.T @ D_matrix).tocoo(), D_matrix.tocoo()
        on_T = position[T.col] >= 0
        on_C = (position[C.row] >= 0) & (position[C.col] >= 0)
        top = (T.row[on_T], n + position[T.col[on_T]], T.data[on_T])
        corner = (np.concatenate([n + np.arange(k), n + position[C.row[on_C]]]),
                  np.concatenate([n + np.arange(k), n + position[C.col[on_C]]]),
                  np.concatenate([np.ones(k), -C.data[on_C]]))
    parts = [(P_coo.row, P_coo.col, P_coo.data), top, (a_row, a_col, -a_val), corner]
    if reg:
        parts.append((np.arange(n + k), np.arange(n + k), np.full(n + k, reg)))
    rows, cols, vals = (np.concatenate(x) for x in zip(*parts, strict=True))
    return sp.csc_matrix((vals, (rows, cols)), shape=(n + k, n + k))
