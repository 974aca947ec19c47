"""Clarabel (interior point, default). Its PSD triangle is the upper triangle in column-major
order, i.e. our lower triangle in row-major order: rows are permuted in and out."""
from __future__ import annotations

import functools

import numpy as np

from ..cones.cones import ConeDims
from .base import ConeProgramData, RawSolution, SolverAdapter, SolveStatus, register

STATUS = {
    "Solved": SolveStatus.OPTIMAL,
    "AlmostSolved": SolveStatus.OPTIMAL_INACCURATE,
    "PrimalInfeasible": SolveStatus.INFEASIBLE,
    "AlmostPrimalInfeasible": SolveStatus.INFEASIBLE,
    "DualInfeasible": SolveStatus.UNBOUNDED,
    "AlmostDualInfeasible": SolveStatus.UNBOUNDED,
    "MaxIterations": SolveStatus.ITERATION_LIMIT,
    "MaxTime": SolveStatus.ITERATION_LIMIT,
}


def psd_permutation(cones: ConeDims) -> np.ndarray | None:
    """Row order mapping our svec (lower, column-major) to Clarabel's (upper, column-major)."""
    if not cones.psd:
        return None
    perm = np.arange(cones.size)
    start = cones.offsets()["psd"]
    for n in cones.psd:
        i, j = np.tril_indices(n)                  # lower triangle in row-major order
        ours = j * n - j * (j - 1) // 2 + (i - j)  # their position in column-major order
        perm[start:start + ours.size] = start + ours
        start += ours.size
    return perm


class ClarabelAdapter(SolverAdapter):
    name = "clarabel"
    cone_kinds = frozenset({"zero", "nonneg", "soc", "psd", "exp", "pow"})
    #: tight by default: derivatives are only as accurate as the solution they start from
    default_options = {"verbose": False, "tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9,
                       "tol_feas": 1e-9, "tol_ktratio": 1e-7}
    tolerance_keys = ("tol_feas", "tol_gap_rel")
    #: refinement finishes what the last iterations would (Newton: ~1e-6 → rounding in
    #: two steps); the gap is what it closes best — with feasibility loosened to 1e-6 too,
    #: it measured unable to fix some LP and lasso elements' active sets
    refining_options = {"tol_gap_abs": 1e-6, "tol_gap_rel": 1e-6, "tol_feas": 1e-7,
                        "tol_ktratio": 1e-6}

    @functools.cached_property
    def settings_names(self) -> frozenset[str]:
        import clarabel
        return frozenset(k for k in dir(clarabel.DefaultSettings()) if not k.startswith("_"))

    def known_options(self) -> set[str]:
        return set(self.settings_names)

    reuses_workspace = True

    def setup(self, data: ConeProgramData, opts: dict):
        import clarabel
        self.check_cones(data.cones)
        settings = clarabel.DefaultSettings()
        for key, value in self.options(opts).items():
            setattr(settings, key, value)
        perm = psd_permutation(data.cones)
        A = data.A if perm is None else data.A[perm]
        return clarabel.DefaultSolver(data.P, data.c, A.tocsc(), self._b(data, perm),
                                      cones(data.cones), settings)

    @staticmethod
    def _b(data: ConeProgramData, perm) -> np.ndarray:
        return data.b if perm is None else data.b[perm]

    def update(self, workspace, data: ConeProgramData) -> bool:
        if not workspace.is_data_update_allowed():
            return False
        workspace.update(q=np.ascontiguousarray(data.c, float),
                         b=np.ascontiguousarray(self._b(data, psd_permutation(data.cones)),
                                                float))
        return True

    def run(self, workspace, data: ConeProgramData, opts: dict, warm=None) -> RawSolution:
        perm = psd_permutation(data.cones)
        sol = workspace.solve()
        y, s = np.asarray(sol.z), np.asarray(sol.s)
        if perm is not None:
            y_out, s_out = np.empty_like(y), np.empty_like(s)
            y_out[perm], s_out[perm] = y, s
            y, s = y_out, s_out
        status = STATUS.get(str(sol.status), SolveStatus.SOLVER_ERROR)
        return RawSolution(np.asarray(sol.x), y, s, status, int(sol.iterations),
                           float(sol.solve_time))


def cones(dims: ConeDims) -> list:
    import clarabel
    out = []
    if dims.zero:
        out.append(clarabel.ZeroConeT(dims.zero))
    if dims.nonneg:
        out.append(clarabel.NonnegativeConeT(dims.nonneg))
    out += [clarabel.SecondOrderConeT(k) for k in dims.soc]
    out += [clarabel.PSDTriangleConeT(n) for n in dims.psd]
    out += [clarabel.ExponentialConeT() for _ in range(dims.exp)]
    out += [clarabel.PowerConeT(a) for a in dims.pow]
    return out


register(ClarabelAdapter())
