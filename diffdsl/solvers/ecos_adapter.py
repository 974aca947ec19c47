"""ECOS (interior point for LP/SOCP/exponential cones, no quadratic objective: quadratics are
lifted to second-order cones at compile time). ECOS orders an exponential-cone triple as
(x, z, y) in our notation; rows are permuted in and out."""
from __future__ import annotations

import numpy as np

from .base import ConeProgramData, RawSolution, SolverAdapter, SolverError, SolveStatus, register

STATUS = {0: SolveStatus.OPTIMAL, 10: SolveStatus.OPTIMAL_INACCURATE,
          1: SolveStatus.INFEASIBLE, 11: SolveStatus.INFEASIBLE,
          2: SolveStatus.UNBOUNDED, 12: SolveStatus.UNBOUNDED,
          -1: SolveStatus.ITERATION_LIMIT}


class ECOSAdapter(SolverAdapter):
    name = "ecos"
    cone_kinds = frozenset({"zero", "nonneg", "soc", "exp"})
    accepts_quadratic = False
    default_options = {"verbose": False, "abstol": 1e-9, "reltol": 1e-9, "feastol": 1e-9,
                       "max_iters": 200}
    tolerance_keys = ("feastol", "reltol")

    def known_options(self) -> set[str]:
        return {"verbose", "abstol", "reltol", "feastol", "abstol_inacc", "reltol_inacc",
                "feastol_inacc", "max_iters"}

    def solve(self, data: ConeProgramData, opts: dict, warm=None) -> RawSolution:
        import ecos
        self.check_cones(data.cones)
        if data.P.nnz:
            raise SolverError("ECOS takes no quadratic objective; compile with solver='ecos' "
                              "so quadratics are lifted to second-order cones")
        k, z = data.cones, data.cones.zero
        perm = np.arange(data.A.shape[0])
        if k.exp:
            start = k.offsets()["exp"]
            triples = perm[start:start + 3 * k.exp].reshape(-1, 3)
            perm[start:start + 3 * k.exp] = triples[:, [0, 2, 1]].reshape(-1)
        A, b = data.A[perm].tocsc(), data.b[perm]
        dims = {"l": k.nonneg, "q": list(k.soc), "e": k.exp}
        eq = {"A": A[:z], "b": b[:z]} if z else {}
        result = ecos.solve(data.c, A[z:], b[z:], dims, **eq, **self.options(opts))
        y = np.concatenate([np.asarray(result["y"]) if z else np.zeros(0),
                            np.asarray(result["z"])])
        y_out = np.empty_like(y)
        y_out[perm] = y
        x = np.asarray(result["x"])
        info = result["info"]
        status = STATUS.get(int(info["exitFlag"]), SolveStatus.SOLVER_ERROR)
        return RawSolution(x, y_out, data.b - data.A @ x, status, int(info["iter"]),
                           float(info["timing"]["runtime"]))


register(ECOSAdapter())
