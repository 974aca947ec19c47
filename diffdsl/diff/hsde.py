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
residual (τ = 1): z ← z − t M(z)⁻¹ R(z), t halved until ‖R‖ decreases (at most
``REFINE_STEPS`` steps). A solver's answer accurate to 1e-6 becomes accurate to ~1e-15 in a
step or two when the solution map is differentiable, so derivatives do not inherit the
solver's tolerance.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..cones import projections
from ..cones.cones import ConeDims
from .linear import ITERATIVE_THRESHOLD
from .system import DerivativeSystem
from .threads import cores, factor_pool

ILL_CONDITIONED = 1e10      # LU pivot ratio above which a derivative is flagged
NOT_CONVERGED = 1e-8        # relative KKT residual (after refinement) above which it is flagged
REFINE_STEPS = 8
REUSE_STEP = 1e-4        # relative step after which the previous factorization still serves
LINE_SEARCH_HALVINGS = 12
DENSE_SYSTEM_LIMIT = 400     # n + m up to which P, A and D are held as dense arrays


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
                 cones: ConeDims, solver: str = "auto", reg: float = 0.0,
                 refine: bool = True, lockstep: bool = False) -> None:
        """``solver``: "direct" (LU), "lsmr", "gmres", or "auto" (direct up to
        ``linear.ITERATIVE_THRESHOLD`` unknowns, LSMR above). ``lockstep``: leave the
        refinement to a driver (``together``)."""
        if solver == "auto":
            solver = "direct" if len(x) + len(y) <= ITERATIVE_THRESHOLD else "lsmr"
        if solver not in ("direct", "lsmr", "gmres"):
            raise ValueError(f"unknown derivative solver {solver!r}; expected 'auto', "
                             "'direct', 'lsmr' or 'gmres'")
        self.P_pattern, self.P_values = P_pattern, P_values
        self.A_pattern, self.A_values = A_pattern, A_values
        self.cones, self.solver, self.reg = cones, solver, reg
        self.n, self.m = len(x), len(y)
        if self.n + self.m <= DENSE_SYSTEM_LIMIT and solver == "direct":
            self.P = P_pattern.symmetric_dense(P_values[None])[0]
            self.A = A_pattern.dense(A_values[None])[0]
        else:
            self.P = P_pattern.symmetric_matrix(P_values)
            self.A = A_pattern.matrix(A_values).tocsr()
        self.AT, self.b, self.c = self.A.T, b, c
        #: ‖KKT residual‖ at the given (x, y, s) and at its projection z = (x, y − s)
        self.raw_residual = float(np.linalg.norm(np.concatenate(
            [self.P @ x + self.AT @ y + c, -(self.A @ x) + b - s])))
        self.backward_residual = 0.0
        self._building = self._build(np.concatenate([x, y - s]),
                                     refine and not reg and solver == "direct")
        if not lockstep:
            for _ in self._building:      # alone: nothing to batch the requests with
                pass

    @classmethod
    def together(cls, arguments: list[dict], cones: ConeDims) -> list["SolutionDerivative"]:
        """``SolutionDerivative(**a, cones=cones)`` for every a in ``arguments``, refined in
        lockstep: each round, the projections (and their Jacobians) the elements are about
        to need are computed for all of them in one batched call
        (``projections.prefetch``), so a batch's exponential cones are projected
        together rather than element by element, and the systems they built are factored
        together on the CPU's cores (``_factor_together``). Same results as one by one."""
        out = [cls(**a, cones=cones, lockstep=True) for a in arguments]
        pending = list(out)
        while pending:
            requests, still = [], []
            for d in pending:
                request = next(d._building, None)
                if request is not None:
                    requests.append(request)
                    still.append(d)
            _factor_together([r[1] for r in requests if r[0] == "factor"])
            projections.prefetch([r for r in requests if r[0] != "factor"], cones)
            pending = still
        return out

    def _build(self, z: np.ndarray, refine: bool):
        """Refine (or not) and factor the system at the final point; a generator that
        yields, before each projection it needs, a request for ``projections.prefetch``:
        ("project", v, v_near) for Π_K*(v) (Newton may start from v_near's projection) and
        ("jacobian", v, None) for DΠ_K*(v); and ("factor", system) after building a system
        whose factorization is still to be done (``DerivativeSystem.factor``)."""
        yield ("project", z[self.n:], None)
        self.initial_residual = self.refined_residual = self._residual_norm(z)
        if refine:
            z, self.system = yield from self._refine(z)
        else:
            yield ("jacobian", z[self.n:], None)
            self.system = self._system(z)
            yield ("factor", self.system)
        self.z = z
        self.x, self.y, self.s = self._point(z)
        self.D = self.system.D
        self.counts = projections.degenerate_count(z[self.n:], self.cones)

    # the residual map at τ = 1 -------------------------------------------------------
    def _point(self, z: np.ndarray):
        x, z_y = z[:self.n], z[self.n:]
        y = projections.project(z_y, self.cones, dual=True)
        return x, y, y - z_y

    def _residual(self, z: np.ndarray) -> np.ndarray:
        """(Px + Aᵀy + c, −Ax + b − s) at (x, y, s) = point(z)."""
        x, y, s = self._point(z)
        return np.concatenate([self.P @ x + self.AT @ y + self.c, -(self.A @ x) + self.b - s])

    def _residual_norm(self, z: np.ndarray) -> float:
        return float(np.linalg.norm(self._residual(z)))

    def _derivative_of_projection(self, z: np.ndarray):
        return projections.derivative(z[self.n:], self.cones, dual=True)

    def _system(self, z: np.ndarray, D=None, near=None) -> DerivativeSystem:
        D = self._derivative_of_projection(z) if D is None else D
        return DerivativeSystem(self.P, self.A, D, solver=self.solver, reg=self.reg, AT=self.AT,
                                near=near)

    def _refine(self, z: np.ndarray):
        """Damped Newton steps on R (halving the step until ‖R‖ decreases; a semismooth
        Newton step from a point whose active set is guessed wrong can overshoot); returns
        the final point with the system to differentiate at. M depends on z only through
        D, so when a step leaves D unchanged (always, near a nondegenerate solution with
        polyhedral cones) the factorization is reused: a well-solved LP/QP costs one. When D
        moves by a short step (SOC, exponential and other smooth cones) the previous
        factorization still serves, refined against the new M: one factorization too."""
        r, n = self.initial_residual, self.n
        scale = 1.0 + np.linalg.norm(z)
        yield ("jacobian", z[n:], None)
        system = self._system(z)
        yield ("factor", system)
        for _ in range(REFINE_STEPS):
            if r <= 1e-15 * scale:
                break                      # (a singular M takes least-squares steps)
            direction = -system.solve(self._residual(z))
            yield ("project", z[n:] + direction[n:], z[n:])
            for t in 0.5 ** np.arange(LINE_SEARCH_HALVINGS):
                candidate = z + t * direction
                r_new = self._residual_norm(candidate)
                if r_new < r:
                    break
            if not r_new < r:
                break
            step = np.linalg.norm(candidate - z)
            z, r = candidate, r_new
            yield ("jacobian", z[n:], None)
            D = self._derivative_of_projection(z)
            if D == system.D_blocks:
                continue                   # same M: the factorization serves
            # after a short step the previous factorization, refined against the new M,
            # solves it (``DerivativeSystem``'s ``near``): no new factorization
            system = self._system(z, D, near=system if step <= REUSE_STEP * scale else None)
            yield ("factor", system)
            if step <= 1e-10 * scale:
                break
        self.refined_residual = r
        return z, system

    # forward mode ----------------------------------------------------------------------
    def jvp(self, dP_values, dc, dA_values, db):
        """(dx, dy, ds) for a perturbation of the data."""
        g = self._data_map(dP_values, dc, dA_values, db)
        dz = -self.system.solve(g)
        self._record_residual(dz, g, transpose=False)
        return self._solution_map(dz)

    # reverse mode ----------------------------------------------------------------------
    def vjp(self, gx, gy, gs) -> DataCotangent:
        """Gradients of ⟨gx, x⟩ + ⟨gy, y⟩ + ⟨gs, s⟩ with respect to the data."""
        gz = self._solution_map_adjoint(gx, gy, gs)
        w = -self.system.solve(gz, transpose=True)
        self._record_residual(w, gz, transpose=True)
        return self._data_map_adjoint(w)

    # pieces ----------------------------------------------------------------------------
    def _data_map(self, dP_values, dc, dA_values, db) -> np.ndarray:
        Ap, Pp = self.A_pattern, self.P_pattern
        dA_x = np.bincount(Ap.indices, dA_values * self.x[Ap.columns], minlength=self.m)
        dAT_y = np.bincount(Ap.columns, dA_values * self.y[Ap.indices], minlength=self.n)
        off = Pp.indices != Pp.columns            # P is stored by its upper triangle
        dP_x = (np.bincount(Pp.indices, dP_values * self.x[Pp.columns], minlength=self.n)
                + np.bincount(Pp.columns[off], dP_values[off] * self.x[Pp.indices[off]],
                              minlength=self.n))
        return np.concatenate([dP_x + dAT_y + dc, -dA_x + db])

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
        return np.concatenate([gx, self.system.DT @ (gy + gs) - gs])

    def _record_residual(self, solution, rhs, transpose: bool) -> None:
        """‖M sol + rhs‖ / ‖rhs‖ for sol = −M⁻¹ rhs (or with Mᵀ)."""
        r = self.system.matvec(solution, transpose) + rhs
        self.backward_residual = max(self.backward_residual, float(
            np.linalg.norm(r) / max(np.linalg.norm(rhs), 1e-300)))

    @property
    def condition_estimate(self) -> float:
        return self.system.condition_estimate()

    @property
    def exact(self) -> bool:
        """Whether the point is a KKT point to rounding (residual ≤ 1e-12 relative)."""
        return self.refined_residual <= 1e-12 * (1.0 + np.linalg.norm(self.z))

    @property
    def refined(self) -> bool:
        """Whether the refined point is better than the solver's: exact, or at least no
        worse than the given (x, y, s), whose residual leaves out complementarity."""
        return self.exact or self.refined_residual <= self.raw_residual

    def flags(self) -> list[str]:
        """Why this derivative should not be trusted (empty when it can be)."""
        out = []
        if self.counts["degenerate"]:
            out.append(f"degenerate: strict complementarity fails at "
                       f"{self.counts['degenerate']} cone entr(ies)")
        if self.system.singular:
            out.append("singular backward system (the solution or its multipliers are not "
                       "unique); a least-squares derivative was used")
        elif self.system.pivot_ratio > ILL_CONDITIONED:
            out.append(f"ill-conditioned backward system (LU pivot ratio "
                       f"{self.system.pivot_ratio:.1e})")
        if self.system.free_residual > 1e-10:
            out.append(f"inconsistent equation for a variable the data do not determine "
                       f"(relative residual {self.system.free_residual:.1e})")
        if self.refined_residual > NOT_CONVERGED * (1.0 + np.linalg.norm(self.z)):
            out.append(f"not converged: KKT residual {self.refined_residual:.1e} after "
                       "refinement")
        return out

    @property
    def differentiable(self) -> bool:
        """False when strict complementarity fails (Π_K* has a kink at y − s) or the system
        is singular (the solution, or its multipliers, are not unique)."""
        return self.counts["degenerate"] == 0 and not self.system.singular


def _factor_together(systems: list[DerivativeSystem]) -> None:
    """Factor the systems of a lockstep round that still need it, on the CPU's cores (LU
    factorizations, dense and sparse, run without holding the GIL)."""
    systems = [s for s in systems if s.unfactored]
    if min(len(systems), cores()) < 2:
        for s in systems:
            s.factor()
        return
    list(factor_pool().map(DerivativeSystem.factor, systems))
