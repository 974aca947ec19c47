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
from .diff.rules import as_rule, perturbed_vjp
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
                 parameters_as_constants: bool = False, rule=None, **opts) -> None:
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
        self.rule = as_rule(rule)
        self._last: list[RawSolution] | None = None

    # parameter values -------------------------------------------------------------
    def theta(self, *values) -> tuple[np.ndarray, int | None]:
        """θ̃ = [1; θ] as a (1 + len θ, B) array, and the batch size (None if unbatched).

        ``values``: one per compiled parameter, or one {Parameter: value} dict (missing
        parameters use their ``.value``), or nothing (every parameter's ``.value``)."""
        if len(values) == 1 and isinstance(values[0], dict):
            by_param = values[0]
            values = tuple(by_param[p] if p in by_param else p.value for p in self.parameters)
        elif not values:
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
        """The numeric cone programs at θ̃ (one per column). A block that does not depend on
        θ is built once and shared by every element."""
        return ProgramValues.at(self.program, theta).instances(self.program)

    # solving -------------------------------------------------------------------------
    def solve(self, *values, executor: concurrent.futures.Executor | None = None,
              warm_start: bool = False, refine: bool = False, **opts) -> "Solution":
        """Solve at the given parameter values; see the module docstring. ``refine=True``
        polishes each solution by Newton steps on the residual map (``Solution.refine``)."""
        theta, batch = self.theta(*values)
        return self.solve_program(ProgramValues.at(self.program, theta), batch,
                                  executor=executor, warm_start=warm_start, refine=refine,
                                  **opts)

    def solve_program(self, data: "ProgramValues", batch: int | None = None,
                      executor: concurrent.futures.Executor | None = None,
                      warm_start: bool = False, refine: bool = False, **opts) -> "Solution":
        """Solve the cone programs given by their numeric data directly (the layers compute
        (P, c, A, b) = T·θ̃ in their own framework and call this)."""
        instances = data.instances(self.program)
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
        solution = Solution(self, raws, data, batch)
        return solution.refine() if refine else solution


@dataclasses.dataclass
class ProgramValues:
    """Numeric data of a batch of B cone programs: the nonzero values of P and A in their
    fixed patterns, (nnz, B) — or (nnz, 1) when shared by every element — and b (m, B),
    c (n, B), d (B,)."""

    P: np.ndarray
    A: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray

    @classmethod
    def at(cls, program, theta: np.ndarray) -> "ProgramValues":
        """The data at θ̃ (1 + len θ, B); blocks that do not depend on θ are computed once."""
        P, A = (p.values(theta if p.depends_on_parameters else theta[:, :1])
                for p in (program.P, program.A))
        return cls(np.asarray(P), np.asarray(A), np.asarray(program.b @ theta),
                   np.asarray(program.c @ theta), np.asarray(program.d @ theta).reshape(-1))

    @property
    def batch(self) -> int:
        return self.b.shape[1]

    def element(self, i: int):
        """(P values, A values, b, c) of element i."""
        return (self.P[:, i % self.P.shape[1]], self.A[:, i % self.A.shape[1]],
                self.b[:, i], self.c[:, i])

    def select(self, i: int) -> "ProgramValues":
        """Element i alone."""
        P, A, b, c = self.element(i)
        return ProgramValues(P[:, None], A[:, None], b[:, None], c[:, None], self.d[i:i + 1])

    def instances(self, program) -> list[ConeProgramData]:
        P = [program.P.matrix(self.P[:, j]) for j in range(self.P.shape[1])]
        A = [program.A.matrix(self.A[:, j]) for j in range(self.A.shape[1])]
        return [ConeProgramData(P[i % len(P)], self.c[:, i], A[i % len(A)], self.b[:, i],
                                program.cones) for i in range(self.batch)]

    def full(self, block: str) -> np.ndarray:
        """P or A values with the shared column repeated to (nnz, B)."""
        values = getattr(self, block)
        return values if values.shape[1] == self.batch else np.repeat(values, self.batch, 1)


def solve_instance(adapter_name: str, data: ConeProgramData, options: dict,
                   warm: RawSolution | None) -> RawSolution:
    """Solve one instance (a module-level function, so process pools can pickle it)."""
    started = time.perf_counter()
    raw = get_adapter(adapter_name).solve(data, options, warm)
    raw.wall_time = time.perf_counter() - started
    return raw


class Solution:
    """Solutions of a (batch of) compiled problem(s).

    ``solution[var]`` is the variable's value (with a leading batch dimension when the call
    was batched); ``dual(constraint)`` the constraint's dual value (CVXPY's conventions);
    ``status``, ``iterations``, ``primal_residual`` (‖Ax + s − b‖∞), ``dual_residual``
    (‖Px + Aᵀy + c‖∞), ``gap`` (|xᵀPx + cᵀx + bᵀy|), ``solve_time`` and ``objective`` are
    per element. Elements that were not solved to optimality have NaN values and duals.
    """

    def __init__(self, compiled: CompiledProblem, raws: list[RawSolution],
                 data: ProgramValues, batch: int | None) -> None:
        self.compiled = compiled
        self.data = data
        self.rule = compiled.rule
        self.tolerances = dict(compiled.options)
        self._derivatives: dict = {}
        self.batched = batch is not None
        self.raw = raws
        self.status = [r.status for r in raws]
        self.iterations = np.array([r.iterations for r in raws])
        self.solve_time = np.array([r.solve_time for r in raws])
        self.solver_wall_time = np.array([r.wall_time for r in raws])
        self._statistics(np.array([r.x for r in raws]).T, np.array([r.y for r in raws]).T,
                         np.array([r.s for r in raws]).T)

    def _statistics(self, X: np.ndarray, Y: np.ndarray, S: np.ndarray) -> None:
        """Residuals, gap, objective and values from (n, B), (m, B), (m, B) solutions."""
        compiled, data = self.compiled, self.data
        prog = compiled.program
        A_vals, P_vals, b, c, d = data.full("A"), data.full("P"), data.b, data.c, data.d
        Px = prog.P.symmetric_matvec(P_vals, X)
        self.primal_residual = max_abs(prog.A.matvec(A_vals, X) + S - b)
        self.dual_residual = max_abs(Px + prog.A.rmatvec(A_vals, Y) + c)
        self.gap = np.abs(np.sum(X * Px + c * X, axis=0) + np.sum(b * Y, axis=0))
        value = compiled.sense * (np.sum(0.5 * X * Px + c * X, axis=0) + d)
        optimal = np.array([s.is_optimal for s in self.status])
        infeasible = np.array([s is SolveStatus.INFEASIBLE for s in self.status])
        unbounded = np.array([s is SolveStatus.UNBOUNDED for s in self.status])
        self.objective = np.where(optimal, value, np.nan)
        self.objective[infeasible] = compiled.sense * np.inf
        self.objective[unbounded] = -compiled.sense * np.inf
        self.x, self.y, self.s = (np.where(optimal[:, None], M.T, np.nan) for M in (X, Y, S))

    def refine(self) -> "Solution":
        """Newton-refine every optimal element on the embedding's residual map (see
        ``diff.hsde``): solutions become accurate to ~1e-15 where the solution map is
        differentiable, and the factorization is kept for the derivative."""
        X, Y, S = self.x.T.copy(), self.y.T.copy(), self.s.T.copy()
        for i, status in enumerate(self.status):
            if status.is_optimal:
                d = self.derivative(i)
                X[:, i], Y[:, i], S[:, i] = d.x, d.y, d.s
        self._statistics(X, Y, S)
        return self

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

    # derivatives ---------------------------------------------------------------------
    def derivative(self, i: int = 0, solver: str = "auto", reg: float | None = None,
                   refine: bool = True):
        """The factored derivative system of element ``i`` (built once, then reused)."""
        from .diff.hsde import SolutionDerivative
        reg = self.rule.reg if reg is None else reg
        key = (i, solver, reg, refine)
        if key not in self._derivatives:
            prog = self.compiled.program
            if not self.status[i].is_optimal:
                raise ValueError(f"element {i} has status {self.status[i].value}; its "
                                 "derivative is not defined")
            P, A, b, c = self.data.element(i)
            self._derivatives[key] = SolutionDerivative(
                prog.P, P, prog.A, A, b, c, self.x[i], self.y[i], self.s[i], prog.cones,
                solver=solver, reg=reg, refine=refine)
        return self._derivatives[key]

    def vjp(self, d_variables: dict, d_duals: dict | None = None, **rule) -> dict:
        """Reverse mode: {Parameter: gradient} of Σ⟨d_variables[v], v⟩ + Σ⟨d_duals[c], dual⟩,
        by the compiled derivative rule (``self.rule``)."""
        from .diff import solution_map
        B = len(self.status)
        gx, gy, _ = solution_map.cotangents(self.compiled, d_variables, d_duals, B)
        if self.rule.name == "perturbed" and d_duals:
            raise ValueError("the perturbed (LPGD) rule differentiates variables only")
        return solution_map.parameter_gradients(self.compiled, self.data_vjp(gx, gy, **rule),
                                                self.batched)

    def data_vjp(self, gx: np.ndarray, gy: np.ndarray, **rule) -> list:
        """Reverse mode on the cone program's data: per element, the gradient of
        ⟨gx[i], x⟩ + ⟨gy[i], y⟩ with respect to (P values, c, A values, b)
        (``hsde.DataCotangent``); gx (B, n), gy (B, m)."""
        B = len(self.status)
        if self.rule.name == "perturbed":
            return [self._perturbed(i, gx[i]) for i in range(B)]
        zero = np.zeros(gy.shape[1])
        return [self.derivative(i, **rule).vjp(gx[i], gy[i], zero) for i in range(B)]

    def _perturbed(self, i: int, gx: np.ndarray):
        compiled = self.compiled
        data = self.data.select(i).instances(compiled.program)[0]
        return perturbed_vjp(compiled.adapter, compiled.options, data, self.x[i], self.y[i],
                             gx, self.rule.tau, compiled.program.P, compiled.program.A)

    def jvp(self, d_parameters: dict, **rule) -> tuple[dict, dict]:
        """Forward mode: ({Variable: tangent}, {Constraint: dual tangent}) for parameter
        tangents ``d_parameters`` (missing parameters: zero)."""
        from .diff import solution_map
        B = len(self.status)
        tangents = solution_map.data_tangents(self.compiled, d_parameters, B)
        dx, dy = self.data_jvp(tangents, **rule)
        return solution_map.outputs(self.compiled, dx, dy, self.batched)

    def data_jvp(self, tangents, **rule) -> tuple[np.ndarray, np.ndarray]:
        """Forward mode on the data: per element tangents (dP values, dc, dA values, db) →
        (dx (B, n), dy (B, m))."""
        if self.rule.name == "perturbed":
            raise ValueError("the perturbed (LPGD) rule has no forward mode; use 'implicit'")
        out = [self.derivative(i, **rule).jvp(*t) for i, t in enumerate(tangents)]
        return np.array([o[0] for o in out]), np.array([o[1] for o in out])

    def jacobian(self, **rule) -> np.ndarray:
        """Dense d(variables)/d(parameters): rows are the compiled variables' entries (C
        order, in compiled order), columns the parameters' entries; (B, rows, cols) when
        batched. One factorization per element, one solve per parameter entry."""
        params, variables = self.compiled.parameters, self.compiled.variables
        n_out = sum(v.size for v in variables)
        n_in = sum(p.size for p in params)
        J = np.zeros((len(self.status), n_out, n_in))
        col = 0
        for p in params:
            for k in range(p.size):
                unit = np.zeros(p.size)
                unit[k] = 1.0
                d_vars, _ = self.jvp({p: unit.reshape(p.shape)}, **rule)
                column = [np.asarray(d_vars[v]).reshape(len(self.status), -1) if self.batched
                          else np.asarray(d_vars[v]).reshape(1, -1) for v in variables]
                J[:, :, col] = np.concatenate(column, axis=1)
                col += 1
        return J if self.batched else J[0]

    def derivative_diagnostics(self, i: int = 0) -> dict:
        """Backward residual, conditioning estimate, active / inactive / degenerate cone
        entries, and whether the derivative is classically defined, for element i."""
        d = self.derivative(i)
        return {"backward_residual": d.backward_residual,
                "condition_estimate": d.condition_estimate, **d.counts,
                "differentiable": d.differentiable,
                "kkt_residual_before_refinement": d.initial_residual,
                "kkt_residual": d.refined_residual}


def max_abs(M: np.ndarray) -> np.ndarray:
    """Largest absolute entry of each column (0 for empty columns)."""
    return np.abs(M).max(axis=0, initial=0.0)
