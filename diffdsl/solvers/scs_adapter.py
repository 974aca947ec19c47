"""SCS (first-order, the homogeneous self-dual embedding). Same cone conventions as ours."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .base import ConeProgramData, RawSolution, SolverAdapter, SolveStatus, register

STATUS = {
    "solved": SolveStatus.OPTIMAL,
    "solved_inaccurate": SolveStatus.OPTIMAL_INACCURATE,
    "infeasible": SolveStatus.INFEASIBLE,
    "infeasible_inaccurate": SolveStatus.INFEASIBLE,
    "unbounded": SolveStatus.UNBOUNDED,
    "unbounded_inaccurate": SolveStatus.UNBOUNDED,
}


class SCSAdapter(SolverAdapter):
    name = "scs"
    cone_kinds = frozenset({"zero", "nonneg", "soc", "psd", "exp", "pow"})
    supports_warm_start = True
    default_options = {"verbose": False, "eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 100_000}
    tolerance_keys = ("eps_abs", "eps_rel")

    def known_options(self) -> set[str]:
        return {"verbose", "eps_abs", "eps_rel", "eps_infeas", "max_iters", "time_limit_secs",
                "normalize", "scale", "adaptive_scale", "rho_x", "alpha", "acceleration_lookback",
                "acceleration_interval", "use_indirect", "log_csv_filename", "write_data_filename"}

    reuses_workspace = True

    def setup(self, data: ConeProgramData, opts: dict):
        import scs
        self.check_cones(data.cones)
        k, padded = data.cones, data.A.shape[0] == 0
        # SCS needs m ≥ 1: an empty A gets the vacuous row 0 ≤ 1 (``_b``)
        A = sp.csc_matrix((1, data.A.shape[1])) if padded else data.A
        cone = {"z": k.zero, "l": k.nonneg + padded, "q": list(k.soc), "s": list(k.psd),
                "ep": k.exp, "p": list(k.pow)}
        problem = {"P": data.P if data.P.nnz else None, "A": A, "b": self._b(data),
                   "c": data.c}
        return scs.SCS(problem, cone, **self.options(opts))

    @staticmethod
    def _b(data: ConeProgramData) -> np.ndarray:
        return np.ones(1) if data.A.shape[0] == 0 else data.b

    def update(self, workspace, data: ConeProgramData) -> bool:
        workspace.update(b=np.ascontiguousarray(self._b(data), float),
                         c=np.ascontiguousarray(data.c, float))
        return True

    def run(self, workspace, data: ConeProgramData, opts: dict, warm=None) -> RawSolution:
        solver, padded = workspace, data.A.shape[0] == 0
        if warm is not None:
            sol = solver.solve(warm_start=True, x=warm.x, y=warm.y, s=warm.s)
        else:                              # cold, also in a reused workspace
            sol = solver.solve(warm_start=False)
        info = sol["info"]
        status = STATUS.get(info["status"], SolveStatus.SOLVER_ERROR)
        if info["status"] == "solved_inaccurate" and \
                info["iter"] >= self.options(opts)["max_iters"]:
            status = SolveStatus.ITERATION_LIMIT
        y, s = np.asarray(sol["y"]), np.asarray(sol["s"])
        if padded:
            y, s = y[:0], s[:0]
        return RawSolution(np.asarray(sol["x"]), y, s, status, int(info["iter"]),
                           float(info["solve_time"]) / 1e3)


register(SCSAdapter())
