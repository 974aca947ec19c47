"""Implicit differentiation of the homogeneous self-dual embedding at a returned solution.

With u = (x, y, τ), v = (0, s, κ) and z = u − v, a solution satisfies the residual equation
of the (quadratic) homogeneous self-dual embedding

    R(z) = Q(Π(z)) − Π(z) + z = 0,   Π = (identity, Π_K*, max(·, 0)),
    Q(u) = (P x + Aᵀy + c τ,  −A x + b τ,  −xᵀPx/τ − cᵀx − bᵀy),

which holds for a solution from any solver (interior point or ADMM). R is positively
homogeneous, so D_z R is singular along z itself (the homogenizing direction). We fix that
gauge by holding τ = 1 (dτ = 0); the τ row is then implied by the others, leaving

    M dz = −g,   M = [[P, Aᵀ D], [−A, I − D]],   D = DΠ_K*(y − s),
    g = (dP x + dAᵀ y + dc,  −dA x + db),

and dx = dz_x, dy = D dz_y, ds = (D − I) dz_y. Reverse mode solves with Mᵀ and applies the
adjoint of (dP, dA, db, dc) ↦ g. M is factored once per solution and reused.

Before differentiating, the returned point is refined by Newton's method on the same
residual (τ = 1): z ← z − M(z)⁻¹ R(z) while ‖R‖ decreases (at most ``REFINE_STEPS``
steps). A solver's answer accurate to 1e-6 becomes accurate to ~1e-15 in a step or two when
the solution map is differentiable, so derivatives do not inherit the solver's tolerance.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ..cones import projections
from ..cones.cones import ConeDims
from .linear import DirectSolver, LSMRSolver

REFINE_STEPS = 4


@dataclasses.dataclass
class DataCotangent:
    """Gradients with respect to the cone program's data (P only on its upper pattern)."""

    P_values: np.ndarray
    c: np.ndarray
    A_values: np.ndarray
    b: np.ndarray


class SolutionDerivative:
    """The factored derivative system at one solution (x, y, s) of one instance."""

    def __init__(self, P_pattern, P_values, A_pattern, A_values, b, c, x, y, s,
                 cones: ConeDims, solver: str = "direct", reg: float = 0.0,
                 refine: bool = True) -> None:
        self.P_pattern, self.P_values = P_pattern, P_values
        self.A_pattern, self.A_values = A_pattern, A_values
        self.cones = cones
        self.n, self.m = len(x), len(y)
        self.P = P_pattern.symmetric_matrix(P_values)
        self.A = A_pattern.matrix(A_values)
        self.b, self.c = b, c
        z = np.concatenate([x, y - s])
        self.initial_residual = self.refined_residual = self._residual_norm(z)
        factored = self._refine(z) if refine and not reg and solver == "direct" else None
        if factored is not None:
            z, self.M, self.D, self.linear = factored
        else:
            self.M, self.D = self._jacobian(z)
            if reg:
                self.M = self.M + reg * sp.identity(self.n + self.m, format="csc")
            self.linear = DirectSolver(self.M) if solver == "direct" else LSMRSolver(self.M)
        self.z = z
        self.x, self.y, self.s = self._point(z)
        self.counts = projections.degenerate_count(z[self.n:], cones)
        self.backward_residual = 0.0

    # the residual map at τ = 1 -------------------------------------------------------
    def _point(self, z: np.ndarray):
        x, z_y = z[:self.n], z[self.n:]
        y = projections.project(z_y, self.cones, dual=True)
        return x, y, y - z_y

    def _residual(self, z: np.ndarray) -> np.ndarray:
        """(Px + Aᵀy + c, −Ax + b − s) at (x, y, s) = point(z)."""
        x, y, s = self._point(z)
        return np.concatenate([self.P @ x + self.A.T @ y + self.c, -(self.A @ x) + self.b - s])

    def _residual_norm(self, z: np.ndarray) -> float:
        return float(np.linalg.norm(self._residual(z)))

    def _jacobian(self, z: np.ndarray):
        D = projections.derivative(z[self.n:], self.cones, dual=True).sparse()
        I_m = sp.identity(self.m, format="csr")
        M = sp.bmat([[self.P, self.A.T @ D], [-self.A, I_m - D]], format="csc")
        return M, D

    def _refine(self, z: np.ndarray):
        """Newton steps while the residual decreases; returns the final point with the
        factorization to differentiate at (the last one made, when the last step was
        negligible, so a well-solved point costs one factorization in all)."""
        r = self._residual_norm(z)
        scale = 1.0 + np.linalg.norm(z)
        M, D = self._jacobian(z)
        linear = DirectSolver(M)
        for _ in range(REFINE_STEPS):
            if r <= 1e-15 * scale or linear.singular:
                break
            step = -linear.solve(self._residual(z))
            candidate = z + step
            r_new = self._residual_norm(candidate)
            if not r_new < r:
                break
            z, r = candidate, r_new
            if np.linalg.norm(step) <= 1e-10 * scale:
                break                      # the factorization at the previous point serves
            M, D = self._jacobian(z)
            linear = DirectSolver(M)
        self.refined_residual = r
        return z, M, D, linear

    # forward mode ----------------------------------------------------------------------
    def jvp(self, dP_values, dc, dA_values, db):
        """(dx, dy, ds) for a perturbation of the data."""
        g = self._data_map(dP_values, dc, dA_values, db)
        dz = -self.linear.solve(g)
        self._record_residual(dz, g, transpose=False)
        return self._solution_map(dz)

    # reverse mode ----------------------------------------------------------------------
    def vjp(self, gx, gy, gs) -> DataCotangent:
        """Gradients of ⟨gx, x⟩ + ⟨gy, y⟩ + ⟨gs, s⟩ with respect to the data."""
        gz = self._solution_map_adjoint(gx, gy, gs)
        w = -self.linear.solve(gz, transpose=True)
        self._record_residual(w, gz, transpose=True)
        return self._data_map_adjoint(w)

    # pieces ----------------------------------------------------------------------------
    def _data_map(self, dP_values, dc, dA_values, db) -> np.ndarray:
        dP = self.P_pattern.symmetric_matrix(dP_values)
        dA = self.A_pattern.matrix(dA_values)
        return np.concatenate([dP @ self.x + dA.T @ self.y + dc, -(dA @ self.x) + db])

    def _data_map_adjoint(self, w: np.ndarray) -> DataCotangent:
        wx, wy = w[:self.n], w[self.n:]
        rows, cols = self.A_pattern.indices, self.A_pattern.columns
        grad_A = self.y[rows] * wx[cols] - wy[rows] * self.x[cols]
        pr, pc = self.P_pattern.indices, self.P_pattern.columns
        # d⟨w_x, dP x⟩/dP_ij = w_i x_j, and an upper entry stands for (i, j) and (j, i)
        grad_P = wx[pr] * self.x[pc] + np.where(pr == pc, 0.0, wx[pc] * self.x[pr])
        return DataCotangent(grad_P, wx.copy(), grad_A, wy.copy())

    def _solution_map(self, dz: np.ndarray):
        dz_x, dz_y = dz[:self.n], dz[self.n:]
        dy = self.D @ dz_y
        return dz_x, dy, dy - dz_y

    def _solution_map_adjoint(self, gx, gy, gs) -> np.ndarray:
        return np.concatenate([gx, self.D.T @ (gy + gs) - gs])

    def _record_residual(self, solution, rhs, transpose: bool) -> None:
        """‖M sol + rhs‖ / ‖rhs‖ for sol = −M⁻¹ rhs (or with Mᵀ)."""
        M = self.M.T if transpose else self.M
        r = M @ solution + rhs
        self.backward_residual = max(self.backward_residual, float(
            np.linalg.norm(r) / max(np.linalg.norm(rhs), 1e-300)))

    @property
    def condition_estimate(self) -> float:
        return self.linear.condition_estimate()

    @property
    def differentiable(self) -> bool:
        """False when strict complementarity fails (Π_K* has a kink at y − s) or the system
        is singular (the solution, or its multipliers, are not unique)."""
        return self.counts["degenerate"] == 0 and not self.linear.singular
