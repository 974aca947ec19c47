"""OSQP (ADMM for QPs): zero and nonnegative cones only, as l ≤ Ax ≤ u with l = u = b on
equality rows and l = −∞, u = b on inequality rows. Its y has our sign convention."""
from __future__ import annotations

import numpy as np

from .base import ConeProgramData, RawSolution, SolverAdapter, SolveStatus, register

STATUS = {
    "solved": SolveStatus.OPTIMAL,
    "solved inaccurate": SolveStatus.OPTIMAL_INACCURATE,
    "primal infeasible": SolveStatus.INFEASIBLE,
    "primal infeasible inaccurate": SolveStatus.INFEASIBLE,
    "dual infeasible": SolveStatus.UNBOUNDED,
    "dual infeasible inaccurate": SolveStatus.UNBOUNDED,
    "maximum iterations reached": SolveStatus.ITERATION_LIMIT,
    "run time limit reached": SolveStatus.ITERATION_LIMIT,
}


class OSQPAdapter(SolverAdapter):
    name = "osqp"
    cone_kinds = frozenset({"zero", "nonneg"})
    supports_warm_start = True
    default_options = {"verbose": False, "eps_abs": 1e-9, "eps_rel": 1e-9, "polishing": True,
                       "max_iter": 100_000}
    tolerance_keys = ("eps_abs", "eps_rel")

    def known_options(self) -> set[str]:
        return {"verbose", "eps_abs", "eps_rel", "eps_prim_inf", "eps_dual_inf", "polishing",
                "max_iter", "rho", "sigma", "alpha", "scaling", "adaptive_rho", "time_limit",
                "check_termination", "warm_starting", "polish_refine_iter"}

    reuses_workspace = True

    def setup(self, data: ConeProgramData, opts: dict):
        import osqp
        self.check_cones(data.cones)
        solver = osqp.OSQP()
        solver.setup(data.P, data.c, data.A.tocsc(), self._lower(data), data.b,
                     **self.options(opts))
        return solver

    @staticmethod
    def _lower(data: ConeProgramData) -> np.ndarray:
        return np.concatenate([data.b[:data.cones.zero], np.full(data.cones.nonneg, -np.inf)])

    def update(self, workspace, data: ConeProgramData) -> bool:
        workspace.update(q=np.ascontiguousarray(data.c, float), l=self._lower(data),
                         u=np.ascontiguousarray(data.b, float))
        return True

    def run(self, workspace, data: ConeProgramData, opts: dict, warm=None) -> RawSolution:
        solver = workspace
        if warm is not None:
            solver.warm_start(x=warm.x, y=warm.y)
        else:                              # cold (zeros), also in a reused workspace
            solver.warm_start(x=np.zeros(data.A.shape[1]), y=np.zeros(data.A.shape[0]))
        res = solver.solve(raise_error=False)   # failures come back as a status
        status = STATUS.get(str(res.info.status).lower(), SolveStatus.SOLVER_ERROR)
        x = np.asarray(res.x, dtype=float)
        return RawSolution(x, np.asarray(res.y, dtype=float), data.b - data.A @ x, status,
                           int(res.info.iter), float(res.info.solve_time))


register(OSQPAdapter())
