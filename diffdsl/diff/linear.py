"""Linear solvers for the derivative system, behind one interface: factor once, then answer
any number of solves with M or Mᵀ (every VJP and JVP on one solution reuses the factor).

Dense LU for small or dense systems (at most ``DENSE_LIMIT`` unknowns and at least
``DENSE_FILL`` of the entries nonzero, or tiny), sparse LU (SuperLU, structure kept)
otherwise; one step of iterative refinement on every solve. ``LSMRSolver`` (on request)
iterates to ≤ 1e-12 and reports the residual it reached.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

DENSE_LIMIT = 1500
DENSE_FILL = 0.05


class DirectSolver:
    """LU of M (dense or sparse), with one step of iterative refinement per solve."""

    def __init__(self, M: sp.spmatrix) -> None:
        self.M = sp.csc_matrix(M)
        self.n = M.shape[0]
        self.dense = self.n <= 64 or (self.n <= DENSE_LIMIT
                                      and self.M.nnz >= DENSE_FILL * self.n * self.n)
        self.singular = False
        if self.dense:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
                self.lu = scipy.linalg.lu_factor(self.M.toarray(), check_finite=False)
            pivots = np.abs(np.diag(self.lu[0]))
            self.singular = bool(self.n and pivots.min() <= 1e-14 * max(pivots.max(), 1e-300))
        else:
            try:
                self.lu = spla.splu(self.M, permc_spec="COLAMD")
            except RuntimeError:       # "Factor is exactly singular"
                self.singular = True
                self.lu = spla.splu(self.M + 1e-14 * sp.identity(self.n, format="csc"))

    def _raw(self, rhs: np.ndarray, transpose: bool) -> np.ndarray:
        if self.dense:
            return scipy.linalg.lu_solve(self.lu, rhs, trans=1 if transpose else 0,
                                         check_finite=False)
        return self.lu.solve(rhs, trans="T" if transpose else "N")

    def solve(self, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
        """M⁻¹ rhs (or M⁻ᵀ rhs), refined once."""
        M = self.M.T if transpose else self.M
        x = self._raw(rhs, transpose)
        return x + self._raw(rhs - M @ x, transpose)

    def condition_estimate(self) -> float:
        """1-norm condition number estimate ‖M‖₁ ‖M⁻¹‖₁ (a few solves, no inverse)."""
        inverse = spla.LinearOperator((self.n, self.n), matvec=lambda v: self._raw(v, False),
                                      rmatvec=lambda v: self._raw(v, True), dtype=float)
        norm = spla.norm(self.M, 1) if self.n else 0.0
        return float(norm * spla.onenormest(inverse)) if self.n else 1.0


class LSMRSolver:
    """LSMR to ≤ 1e-12 relative tolerance, for systems too large to factor."""

    def __init__(self, M: sp.spmatrix, tol: float = 1e-12) -> None:
        self.M = sp.csr_matrix(M)
        self.tol = tol
        self.last_residual = 0.0
        self.singular = False

    def solve(self, rhs: np.ndarray, transpose: bool = False) -> np.ndarray:
        M = self.M.T if transpose else self.M
        x = spla.lsmr(M, rhs, atol=self.tol, btol=self.tol, maxiter=20 * self.M.shape[0])[0]
        self.last_residual = float(np.linalg.norm(M @ x - rhs) / max(np.linalg.norm(rhs), 1e-300))
        return x

    def condition_estimate(self) -> float:
        return float("nan")
