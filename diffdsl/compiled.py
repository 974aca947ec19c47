"""A compiled problem — the map θ ↦ (x*, y*, s*) — and the solutions it returns.

``CompiledProblem.solve`` takes parameter values (positionally, in the compiled order, or as
a {Parameter: value} dict), each either unbatched (the parameter's shape) or batched with a
leading batch dimension; batched and unbatched values may be mixed. The cone data of the
whole batch come from one sparse × dense product per block; the instances are solved
through a ``concurrent.futures.Executor`` (a thread pool by default).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import time

import numpy as np

from .compile.problem_canon import canonicalize_problem
from .errors import ParameterValueError
from .solvers.base import ConeProgramData, RawSolution, SolveStatus, get_adapter

_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def default_executor() -> concurrent.futures.Executor:
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    return _POOL


class CompiledProblem:
    """A DPP problem compiled once into a parametric cone program for one solver."""

    def __init__(self, problem, parameters=None, variables=None, solver: str = "clarabel",
                 parameters_as_constants: bool = False, **opts) -> None:
        problem.check_dcp()
        if not parameters_as_constants:
            problem.check_dpp()
        all_params = [] if parameters_as_constants else problem.parameters()
        self.parameters = list(all_params if parameters is None else parameters)
        missing = [p.name for p in all_params if not any(p is q for q in self.parameters)]
        if missing and not parameters_as_constants:
            raise ParameterValueError(
                f"parameters must include every Parameter of the problem; missing {missing}")
        self.variables = list(problem.variables() if variables is None else variables)
        self.problem = problem
        self.adapter = get_adapter(solver)
        self.options = self.adapter.options(opts)
        started = time.perf_counter()
        self.program = canonicalize_problem(
            problem, self.parameters,
            quadratic_objective=self.adapter.accepts_quadratic,
            parameters_as_constants=parameters_as_constants)
        self.compile_time = time.perf_counter() - started
        self.adapter.check_cones(self.program.cones)
        self.sense = 1.0 if problem.objective.sense == "minimize" else -1.0
        self._last: list[RawSolution] | None = None

    # parameter values -------------------------------------------------------------
    def theta(self, *values, **named) -> tuple[np.ndarray, int | None]:
        """θ̃ = [1; θ] as a (1 + len θ, B) array, and the batch size (None if unbatched)."""
        if len(values) == 1 and isinstance(values[0], dict):
            by_param = values[0]
            values = tuple(by_param[p] if p in by_param else p.value for p in self.parameters)
        elif not values and not named:
            values = tuple(p.value for p in self.parameters)
        if len(values) != len(self.parameters):
            raise ParameterValueError(
                f"expected {len(self.parameters)} parameter values "
                f"({', '.join(p.name for p in self.parameters)}), got {len(values)}")
        arrays, batch = [], None
        for p, v in zip(self.parameters, values, strict=True):
            if v is None:
                raise ParameterValueError(f"Parameter {p.name!r} has no value")
            arr = np.asarray(v, dtype=float)
            if arr.shape == p.shape:
                arrays.append((arr.reshape(1, -1), False))
                p.check_batch(arr.reshape((1,) + p.shape))
            elif arr.shape[1:] == p.shape and arr.ndim == p.ndim + 1:
                if batch is not None and arr.shape[0] != batch:
                    raise ParameterValueError(
                        f"inconsistent batch sizes: {p.name!r} has {arr.shape[0]}, "
                        f"earlier parameters {batch}")
                batch = arr.shape[0]
                p.check_batch(arr)
                arrays.append((arr.reshape(batch, -1), True))
            else:
                raise ParameterValueError(
                    f"Parameter {p.name!r}: value has shape {arr.shape}, expected {p.shape} "
                    f"or (batch, {', '.join(map(str, p.shape))})")
        B = batch or 1
        rows = [np.ones((1, B))] + [a.T if batched else np.repeat(a.T, B, axis=1)
                                    for a, batched in arrays]
        return np.vstack(rows), batch

    def data(self, theta: np.ndarray) -> list[ConeProgramData]:
        """The numeric cone programs at θ̃ (one per column)."""
        prog = self.program
        A_vals, P_vals = prog.A.values(theta), prog.P.values(theta)
        b, c = prog.b @ theta, prog.c @ theta
        return [ConeProgramData(prog.P.matrix(P_vals[:, i]), np.asarray(c[:, i]).reshape(-1),
                                prog.A.matrix(A_vals[:, i]), np.asarray(b[:, i]).reshape(-1),
                                prog.cones)
                for i in range(theta.shape[1])]

    # solving -------------------------------------------------------------------------
    def solve(self, *values, executor: concurrent.futures.Executor | None = None,
              warm_start: bool = False, **opts) -> "Solution":
        """Solve at the given parameter values; see the module docstring."""
        theta, batch = self.theta(*values)
        instances = self.data(theta)
        options = self.adapter.options({**self.options, **opts})
        reuse = (warm_start and self.adapter.supports_warm_start and self._last is not None
                 and len(self._last) == len(instances))
        warm = self._last if reuse else [None] * len(instances)
        args = [(self.adapter.name, inst, options, w)
                for inst, w in zip(instances, warm, strict=True)]
        if len(instances) == 1 and executor is None:
            raws = [solve_instance(*args[0])]
        else:
            pool = executor or default_executor()
            raws = list(pool.map(solve_instance, *zip(*args, strict=True)))
        self._last = raws
        d = np.asarray(self.program.d @ theta).reshape(-1)
        return Solution(self, raws, instances, d, batch)


def solve_instance(adapter_name: str, data: ConeProgramData, options: dict,
                   warm: RawSolution | None) -> RawSolution:
    """Solve one instance (a module-level function, so process pools can pickle it)."""
    return get_adapter(adapter_name).solve(data, options, warm)


class Solution:
    """Solutions of a (batch of) compiled problem(s).

    ``solution[var]`` is the variable's value (with a leading batch dimension when the call
    was batched); ``duals[constraint]`` the constraint's dual value (CVXPY's conventions);
    ``status``, ``iterations``, ``primal_residual``, ``dual_residual``, ``gap``,
    ``solve_time`` and ``objective`` are per element.
    """

    def __init__(self, compiled: CompiledProblem, raws: list[RawSolution],
                 instances: list[ConeProgramData], d: np.ndarray, batch: int | None) -> None:
        self.compiled = compiled
        self.batched = batch is not None
        self.raw = raws
        self.status = [r.status for r in raws]
        self.iterations = np.array([r.iterations for r in raws])
        self.solve_time = np.array([r.solve_time for r in raws])
        stats = [kkt_statistics(inst, r) for inst, r in zip(instances, raws, strict=True)]
        self.primal_residual = np.array([s.primal_residual for s in stats])
        self.dual_residual = np.array([s.dual_residual for s in stats])
        self.gap = np.array([s.gap for s in stats])
        sense = compiled.sense
        objective = []
        for s, r, d_i in zip(stats, raws, d, strict=True):
            if r.status.is_optimal:
                objective.append(sense * (s.primal_objective + d_i))
            elif r.status is SolveStatus.INFEASIBLE:
                objective.append(sense * np.inf)
            elif r.status is SolveStatus.UNBOUNDED:
                objective.append(-sense * np.inf)
            else:
                objective.append(np.nan)
        self.objective = np.array(objective)
        self.x = np.array([r.x if r.status.is_optimal else np.full(len(r.x), np.nan) for r in raws])
        self.y = np.array([r.y if r.status.is_optimal else np.full(len(r.y), np.nan) for r in raws])
        self.s = np.array([r.s if r.status.is_optimal else np.full(len(r.s), np.nan) for r in raws])

    def _unbatch(self, stacked):
        return stacked if self.batched else stacked[0]

    def __getitem__(self, variable) -> np.ndarray:
        offset = self.compiled.program.variable_offsets[variable.id]
        block = self.x[:, offset:offset + variable.size].reshape((-1,) + variable.shape)
        return self._unbatch(block)

    @property
    def values(self) -> dict:
        """{Variable: value} for the compiled problem's variables."""
        return {v: self[v] for v in self.compiled.variables}

    def dual(self, constraint):
        """The constraint's dual value in CVXPY's convention."""
        blocks = self.compiled.program.duals[constraint.id]
        duals = [constraint.dual_from(np.concatenate([y[b.start:b.stop] for b in blocks]))
                 for y in self.y]
        return self._unbatch(duals)

    @property
    def duals(self) -> dict:
        return {c: self.dual(c) for c in self.compiled.problem.constraints}

    @property
    def value(self):
        return self._unbatch(self.objective)

    def __repr__(self) -> str:
        kinds = sorted({s.value for s in self.status})
        return f"Solution({len(self.status)} element(s), status {kinds})"


@dataclasses.dataclass
class KKTStatistics:
    primal_residual: float   # ‖Ax + s − b‖∞
    dual_residual: float     # ‖Px + Aᵀy + c‖∞
    gap: float               # |xᵀPx + cᵀx + bᵀy|
    primal_objective: float  # ½xᵀPx + cᵀx


def inf_norm(v: np.ndarray) -> float:
    return float(np.abs(v).max()) if v.size else 0.0


def kkt_statistics(data: ConeProgramData, raw: RawSolution) -> KKTStatistics:
    from .solvers.base import full_symmetric
    x, y, s = raw.x, raw.y, raw.s
    Px = full_symmetric(data.P) @ x if data.P.nnz else np.zeros_like(x)
    primal = data.A @ x + s - data.b
    dual = Px + data.A.T @ y + data.c
    return KKTStatistics(inf_norm(primal), inf_norm(dual),
                         float(abs(x @ Px + data.c @ x + data.b @ y)),
                         float(0.5 * x @ Px + data.c @ x))
