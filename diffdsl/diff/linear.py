"""Linear solvers for the derivative system, behind one interface: factor once, then answer
any number of solves with M or Mᵀ (every VJP and JVP on one solution reuses the factor).

Dense LU for small or dense systems (at most ``DENSE_LIMIT`` unknowns and at least
``DENSE_FILL`` of the entries nonzero, or tiny); for large sparse systems of polyhedral
type (quasi-definite after a sign change) a sparse LDLᵀ (``QuasiDefiniteSolver``, QDLDL),
else sparse LU (SuperLU, structure kept); iterative refinement on every solve.
``IterativeSolver`` (LSMR or GMRES: on request, or by default above ``ITERATIVE_THRESHOLD``
unknowns) iterates to ≤ 1e-12 and reports the residual it reached.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

DENSE_LIMIT = 1500
DENSE_FILL = 0.05
ITERATIVE_THRESHOLD = 200_000    # n + m above which solver="auto" iterates (LSMR)


def dense_preferred(size: int, nnz: int) -> bool:
    """Dense LU for tiny systems, or small ones with at least ``DENSE_FILL`` nonzeros."""
    return size <= 64 or (size <= DENSE_LIMIT and nnz >= DENSE_FILL * size * size)


class DirectSolver:
    """LU of M (a dense array: dense LU; a sparse matrix: SuperLU), with one step of
    iterative refinement per solve. A singular M (pivots below 1e-14 relative, or SuperLU's
    exact singularity) is flagged and answered by minimum-norm least squares (the dense
    pseudo-inverse, or LSMR), so a derivative that does not exist comes back finite and
    flagged, never as inf or NaN."""

    def __init__(self, M) -> None:
        self.dense = isinstance(M, np.ndarray)
        self.M = M if self.dense else sp.csc_matrix(M)
        self.n = M.shape[0]
        self.singular = False
        self.least_squares = None
        if self.dense:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
                self.lu = scipy.linalg.lu_factor(M, check_finite=False)
            pivots = np.abs(np.diag(self.lu[0]))
            self.singular = bool(self.n and not pivots.min() > 1e-14 * max(pivots.max(),
                                                                              1e-300))
            if self.singular:
                self.least_squares = np.linalg.pinv(M, rcond=1e-12)
        else:
            try:
                self.lu = spla.splu(self.M, permc_spec="COLAMD")
            except RuntimeError:       # "Factor is exactly singular"
                self.singular = True
                self.least_squares = IterativeSolver(self.M, "lsmr")

    @functools.cached_property
    def pivot_ratio(self) -> float:
        """max |U_ii| / min |U_ii| of the LU factors: a free lower bound on M's condition
        number (infinite when singular)."""
        if self.singular:
            return float("inf")
        if not self.n:
            return 1.0
        pivots = np.abs(np.diag(self.lu[0]) if self.dense else self.lu.U.diagonal())
        return float(pivots.max() / pivots.min())

    def _raw(self, rhs: np.ndarray, transpose: bool) -> np.ndarray:
        if self.dense:
            return scipy.linalg.lu_solve(self.lu, rhs, trans=1 if transpose else 0,
                                         check_finite=False)
        return self.lu.solve(rhs, trans="T" if transpose else "N")

    def solve(self, rhs: np.ndarray, transpose: bool = False,
              refine: bool = True) -> np.ndarray:
        """M⁻¹ rhs (or M⁻ᵀ rhs), refined once (``refine=False``: not — for a caller that
        refines against another matrix anyway); least squares when M is singular."""
        if self.least_squares is not None:
            if self.dense:
                return (self.least_squares.T if transpose else self.least_squares) @ rhs
            return self.least_squares.solve(rhs, transpose)
        x = self._raw(rhs, transpose)
        if not refine:
            return x
        M = self.M.T if transpose else self.M
        return x + self._raw(rhs - M @ x, transpose)

    def condition_estimate(self) -> float:
        """1-norm condition number estimate ‖M‖₁ ‖M⁻¹‖₁ (a few solves, no inverse);
        infinite when M is singular."""
        if not self.n:
            return 1.0
        if self.singular:
            return float("inf")
        inverse = spla.LinearOperator((self.n, self.n), matvec=lambda v: self._raw(v, False),
                                      rmatvec=lambda v: self._raw(v, True), dtype=float)
        norm = np.abs(self.M).sum(axis=0).max() if self.dense else spla.norm(self.M, 1)
        return float(norm * spla.onenormest(inverse))


QUASI_DEFINITE_SHIFT = 1e-10     # δ of the quasi-definite shift (relative to ‖S‖∞)


class QuasiDefiniteSolver:
    """For a reduced system of polyhedral type, M₁₁ = [[P + ρI, A_kᵀ], [−A_k, ρI]] (every kept
    D entry 1): S = JM₁₁ with J = diag(I, −I) is symmetric, and S + diag(δI, −δI) is
    quasi-definite, so it has a sparse LDLᵀ factorization (QDLDL, with AMD ordering) for
    any symmetric permutation — half the work and fill of an LU of the nonsymmetric M₁₁.
    Solves refine against S itself (to 1e-14), so the shift leaves no trace:
    M₁₁u = r ⟺ Su = Jr, and M₁₁ᵀv = r ⟺ v = JS⁻¹r. A (near-)singular S — a pivot of the
    size of the shift, or refinement that stalls — hands over to ``DirectSolver`` (LU, with
    its least-squares answer and flag)."""

    dense = False

    def __init__(self, M11, n: int) -> None:
        import qdldl
        M11 = sp.csc_matrix(M11)
        self.n, self.size = n, M11.shape[0]
        self.J = np.concatenate([np.ones(n), -np.ones(self.size - n)])
        self.S = M11.copy()
        self.S.data = self.S.data * self.J[self.S.indices]        # JM₁₁: rows scaled
        self.M = M11
        scale = max(float(np.abs(self.S.data).max(initial=0.0)), 1.0)
        self.shift = QUASI_DEFINITE_SHIFT * scale
        self.fallback = None
        try:
            self.ldl = qdldl.Solver(self._shifted_upper(), upper=True)
            pivots = np.abs(self.ldl.factors()[1])
        except Exception:                              # noqa: BLE001 - qdldl's own errors
            pivots = np.zeros(1)
        if self.size and not pivots.min() > 100 * self.shift:
            self.fallback = DirectSolver(M11)
        self.pivots = pivots

    def _shifted_upper(self) -> sp.csc_matrix:
        """The upper triangle of S + diag(δI, −δI), assembled from S's entries at once."""
        S, size = self.S, self.size
        columns = np.repeat(np.arange(size), np.diff(S.indptr))
        upper = S.indices <= columns
        diagonal = np.arange(size)
        return sp.csc_matrix((np.concatenate([S.data[upper], self.shift * self.J]),
                              (np.concatenate([S.indices[upper], diagonal]),
                               np.concatenate([columns[upper], diagonal]))),
                             shape=(size, size))

    @property
    def singular(self) -> bool:
        return self.fallback is not None and self.fallback.singular

    @property
    def pivot_ratio(self) -> float:
        if self.fallback is not None:
            return self.fallback.pivot_ratio
        return float(self.pivots.max() / self.pivots.min()) if self.size else 1.0

    def _S_inverse(self, b: np.ndarray) -> np.ndarray:
        x = self.ldl.solve(b)
        scale = max(np.abs(b).max(initial=0.0), 1e-300)
        for _ in range(4):
            r = b - self.S @ x
            if np.abs(r).max(initial=0.0) <= 1e-14 * scale:
                break
            x = x + self.ldl.solve(r)
        return x

    def solve(self, rhs: np.ndarray, transpose: bool = False,
              refine: bool = True) -> np.ndarray:
        """Exact to ~1e-14 (refined against S itself) whatever ``refine`` says."""
        if self.fallback is not None:
            return self.fallback.solve(rhs, transpose, refine)
        return self.J * self._S_inverse(rhs) if transpose else self._S_inverse(self.J * rhs)

    def condition_estimate(self) -> float:
        if self.fallback is not None:
            return self.fallback.condition_estimate()
        if not self.size:
            return 1.0
        inverse = spla.LinearOperator((self.size, self.size),
                                      matvec=lambda v: self.solve(v, False),
                                      rmatvec=lambda v: self.solve(v, True), dtype=float)
        return float(spla.norm(self.M, 1) * spla.onenormest(inverse))


class IterativeSolver:
    """LSMR or restarted GMRES to ≤ 1e-12 relative tolerance, for systems too large to
    factor; the residual reached is recorded (``last_residual``), never assumed."""

    def __init__(self, M, method: str = "lsmr", tol: float = 1e-12) -> None:
        if method not in ("lsmr", "gmres"):
            raise ValueError(f"unknown iterative method {method!r}; expected 'lsmr' or 'gmres'")
        self.M = M if isinstance(M, np.ndarray) else sp.csr_matrix(M)
        self.method, self.tol = method, tol
        self.last_residual = 0.0
        self.singular = False

    def solve(self, rhs: np.ndarray, transpose: bool = False,
              refine: bool = True) -> np.ndarray:
        """To ``tol`` (``refine`` has no meaning here)."""
        M = self.M.T if transpose else self.M
        n = self.M.shape[0]
        if self.method == "lsmr":
            x = spla.lsmr(M, rhs, atol=self.tol, btol=self.tol, maxiter=20 * n)[0]
        else:
            x = spla.gmres(M, rhs, rtol=self.tol, atol=0.0, restart=min(n, 200),
                           maxiter=20 * n)[0]
        self.last_residual = float(np.linalg.norm(M @ x - rhs) / max(np.linalg.norm(rhs), 1e-300))
        return x

    @property
    def pivot_ratio(self) -> float:
        return float("nan")

    def condition_estimate(self) -> float:
        return float("nan")
