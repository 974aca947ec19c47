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
import time
import warnings

import numpy as np

from .compile.problem_canon import canonicalize_problem
from .cones import projections
from .diff.rules import as_rule, perturbed_vjp
from .diff.threads import cores, per_process, single_threaded_blas
from .errors import DegenerateDerivativeWarning, NonUniqueSolutionWarning, ParameterValueError
from .solvers import native
from .solvers.base import ConeProgramData, RawSolution, SolveStatus, get_adapter

CERTIFICATE_TOL = 1e-4     # relative violation up to which an infeasibility certificate verifies


@per_process
def default_executor() -> concurrent.futures.Executor:
    """The solver pool: one thread a core, made once per process."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=cores())


class CompiledProblem:
    """A DPP problem compiled once into a parametric cone program for one solver."""

    def __init__(self, problem, parameters=None, variables=None, solver: str = "clarabel",
                 parameters_as_constants: bool = False, rule=None,
                 proximal: float | None = None, fast_paths: bool = True, **opts) -> None:
        """``proximal=ρ`` adds ρ/2·Σ‖v‖² over the problem's variables to the objective (part
        of the model: values and objective include it), making the solution unique.
        ``fast_paths``: solve problems with a closed-form solution map (``diffdsl.fastpaths``)
        in closed form; False always uses the cone solver."""
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
        self.proximal = _check_proximal(proximal)
        #: why solver="auto" chose the solver it did (None: the solver was named)
        self.auto_choice: str | None = None
        auto = str(solver).lower() == "auto"
        self.adapter = get_adapter("clarabel" if auto else solver)
        started = time.perf_counter()
        self.program = canonicalize_problem(
            with_proximal_term(problem, self.proximal), self.parameters,
            quadratic_objective=self.adapter.accepts_quadratic,
            parameters_as_constants=parameters_as_constants)
        self.compile_time = time.perf_counter() - started
        if auto:
            name, self.auto_choice = choose_solver(self.program)
            self.adapter = get_adapter(name)
        self.options = self.adapter.options(opts)
        self.explicit_options = frozenset(opts)      # what the caller set (not defaults)
        self.adapter.check_cones(self.program.cones)
        self.fast_path = None
        if fast_paths and not parameters_as_constants and not self.proximal:
            from .fastpaths import recognize
            fast = recognize(problem, self.parameters)
            if fast is not None and all(v is fast.variable for v in self.variables):
                self.fast_path = fast
        self.sense = 1.0 if problem.objective.sense == "minimize" else -1.0
        self.rule = as_rule(rule)
        if self.rule.name == "unrolled" and self.adapter.name != "native":
            raise ValueError("rule='unrolled' differentiates through the iterations of "
                             f"solver='native'; got solver={self.adapter.name!r}")
        self._last: list[RawSolution] | None = None
        self._contract = None
        self._warned_unique = False

    # contracts ------------------------------------------------------------------------
    def contract(self):
        """The problem, solution convention, derivative rule and tolerances, stated
        (``diffdsl.contract.Contract``; ``print`` it)."""
        from .contract import contract_of
        if self._contract is None:
            self._contract = contract_of(self)
        return self._contract

    def warn_if_not_unique(self, singular: list[int]) -> None:
        """Warn (once per compiled problem) when elements' derivative systems are singular —
        their solutions are not unique — and uniqueness is not structural."""
        if self._warned_unique or not singular or self.contract().unique:
            return
        self._warned_unique = True
        warnings.warn(f"the solutions of element(s) {singular[:10]} are not unique (singular "
                      "derivative system): values and derivatives are the solver's choice; "
                      "compile with proximal=ρ to add ρ/2·Σ‖v‖² to the model and make them "
                      f"unique (problem: {self.problem})", NonUniqueSolutionWarning,
                      stacklevel=4)

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
            arr = real_array(v, p.name)
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
              warm_start: bool = False, refine: bool = False, on_failure: str = "nan",
              **opts) -> "Solution":
        """Solve at the given parameter values; see the module docstring. ``refine=True``
        polishes each solution by Newton steps on the residual map (``Solution.refine``).
        ``on_failure``: "nan" (elements not solved to optimality carry their status, NaN
        values and zero gradients; the rest of the batch is unaffected) or "raise" (a
        ``SolverError`` naming the failed elements, their statuses and residuals)."""
        theta, batch = self.theta(*values)
        if self.fast_path is not None:
            from .fastsolution import FastSolution
            return FastSolution(self, theta, batch)
        return self.solve_program(ProgramValues.at(self.program, theta), batch,
                                  executor=executor, warm_start=warm_start, refine=refine,
                                  on_failure=on_failure, **opts)

    def solve_program(self, data: "ProgramValues", batch: int | None = None,
                      executor: concurrent.futures.Executor | None = None,
                      warm_start: bool = False, refine: bool = False, on_failure: str = "nan",
                      **opts) -> "Solution":
        """Solve the cone programs given by their numeric data directly (the layers compute
        (P, c, A, b) = T·θ̃ in their own framework and call this)."""
        if on_failure not in ("nan", "raise"):
            raise ValueError(f"on_failure must be 'nan' or 'raise', got {on_failure!r}")
        data.check_finite()
        options = self.adapter.options({**self.options, **opts})
        if hasattr(self.adapter, "solve_batch"):          # one batched run (solver="native")
            raws = self.adapter.solve_batch(self.program, data, options)
            if self.auto_choice is not None:
                self._resolve_failures(raws, data, executor)
            solution = Solution(self, raws, data, batch, options)
        elif refine:
            solution = self._solve_refined(data, batch, options, opts, executor, warm_start)
        else:
            solution = Solution(self, self._solve_instances(data, options, executor,
                                                            warm_start), data, batch, options)
        self._last = solution.raw
        if on_failure == "raise":
            solution.raise_failures()
        return solution.refine() if refine and not solution.is_refined else solution

    def refining_options(self, opts: dict | None = None) -> dict | None:
        """The solver options a refined solve (``refine=True``) starts from: the adapter's
        ``refining_options`` over the compiled ones (and ``opts``, a call's own) — or None
        where it keeps those: tolerances the caller set, a damped rule or an iterative
        derivative solver (no Newton refinement then), an adapter without looser ones."""
        from .diff.linear import ITERATIVE_THRESHOLD
        opts = opts or {}
        looser = self.adapter.refining_options
        newton = (not self.rule.reg                  # what Solution.refine can make exact
                  and self.program.n + self.program.m <= ITERATIVE_THRESHOLD)
        if not looser or not newton or (self.explicit_options | set(opts)) & set(looser):
            return None
        return self.adapter.options({**self.options, **opts, **looser})

    def _solve_refined(self, data: "ProgramValues", batch, options: dict, opts: dict,
                       executor, warm_start: bool) -> "Solution":
        """Solve for refinement: with the adapter's ``refining_options`` in place of its
        default tolerances unless the caller set any (Newton makes a good answer exact in
        a step or two, cheaper than the solver's last iterations), refined; then the
        elements the refinement did not make exact are solved again with ``options``. The
        returned solution's refinement reuses the derivatives already built."""
        loose = self.refining_options(opts)
        if loose is None:
            return Solution(self, self._solve_instances(data, options, executor, warm_start),
                            data, batch, options)
        raws = self._solve_instances(data, loose, executor, warm_start)
        first = Solution(self, raws, data, batch, options).refine()
        certified = (SolveStatus.INFEASIBLE, SolveStatus.UNBOUNDED)
        again = [i for i, status in enumerate(first.status)
                 if status not in certified and not first.exact(i)]
        if not again:
            return first
        redone = self._solve_instances(data.take(again), options, executor, False)
        for i, raw in zip(again, redone, strict=True):
            raws[i] = raw
        solution = Solution(self, raws, data, batch, options)
        solution._derivatives = {k: d for k, d in first._derivatives.items()
                                 if k[0] not in again}
        return solution

    def _resolve_failures(self, raws: list, data: "ProgramValues", executor) -> None:
        """solver="auto": elements the native method did not solve are solved again by
        Clarabel, which certifies infeasibility and unboundedness (they are then
        differentiated one by one)."""
        failed = [i for i, r in enumerate(raws) if not r.status.is_optimal]
        if not failed:
            return
        fallback = get_adapter(AUTO_FALLBACK)
        options = fallback.options({})
        instances = [data.select(i).instances(self.program)[0] for i in failed]
        pool = executor or default_executor()
        redone = list(pool.map(solve_instance, [fallback.name] * len(failed), instances,
                               [options] * len(failed), [None] * len(failed)))
        shared = raws[0].derivative
        for i, raw in zip(failed, redone, strict=True):
            raw.derivative = shared
            if shared is not None:
                shared.usable[i] = False
            raws[i] = raw

    def _solve_instances(self, data: "ProgramValues", options: dict, executor,
                         warm_start: bool) -> list[RawSolution]:
        """One adapter call per element, through the executor (one element: inline)."""
        instances = data.instances(self.program)
        reuse = (warm_start and self.adapter.supports_warm_start and self._last is not None
                 and len(self._last) == len(instances))
        warm = self._last if reuse else [None] * len(instances)
        if len(instances) == 1 and executor is None:
            return [solve_instance(self.adapter.name, instances[0], options, warm[0])]
        pool = executor or default_executor()
        if (self.adapter.reuses_workspace and data.P.shape[1] == 1 and data.A.shape[1] == 1):
            # P and A do not depend on θ: one solver workspace per worker, set up once and
            # updated with each element's b and c (setup, scaling, symbolic analysis and
            # factorizations of P and A are not repeated per element)
            chunks = np.array_split(np.arange(len(instances)),
                                    min(len(instances), _workers(pool)))
            parts = pool.map(solve_sequence, *zip(*[
                (self.adapter.name, [instances[i] for i in c], options, [warm[i] for i in c])
                for c in chunks], strict=True))
            return [raw for part in parts for raw in part]
        args = [(self.adapter.name, inst, options, w)
                for inst, w in zip(instances, warm, strict=True)]
        return list(pool.map(solve_instance, *zip(*args, strict=True)))


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
                   np.asarray(program.c @ theta), program.objective_offset(theta))

    @property
    def batch(self) -> int:
        return self.b.shape[1]

    def element(self, i: int):
        """(P values, A values, b, c) of element i."""
        return (self.P[:, i % self.P.shape[1]], self.A[:, i % self.A.shape[1]],
                self.b[:, i], self.c[:, i])

    def check_finite(self) -> None:
        """Raise DomainError naming the elements whose data overflowed to inf or NaN."""
        bad = np.zeros(self.batch, bool)
        for block in (self.P, self.A, self.b, self.c):
            if block.size:
                column_bad = ~np.isfinite(block).all(axis=0)
                bad |= column_bad if column_bad.size == self.batch else column_bad.any()
        if bad.any():
            from .errors import DomainError
            raise DomainError(f"the cone program data of batch element(s) "
                              f"{np.flatnonzero(bad)[:10].tolist()} are not finite (parameter "
                              "values too large for the problem's coefficients)")

    def select(self, i: int) -> "ProgramValues":
        """Element i alone."""
        return self.take([i])

    def take(self, elements: list[int]) -> "ProgramValues":
        """The given elements (shared P or A stay shared)."""
        def columns(values):
            return values if values.shape[1] == 1 else values[:, elements]
        return ProgramValues(columns(self.P), columns(self.A), self.b[:, elements],
                             self.c[:, elements], self.d[elements])

    def instances(self, program) -> list[ConeProgramData]:
        P = [program.P.matrix(self.P[:, j]) for j in range(self.P.shape[1])]
        A = [program.A.matrix(self.A[:, j]) for j in range(self.A.shape[1])]
        return [ConeProgramData(P[i % len(P)], self.c[:, i], A[i % len(A)], self.b[:, i],
                                program.cones) for i in range(self.batch)]

    def full(self, block: str) -> np.ndarray:
        """P or A values with the shared column repeated to (nnz, B)."""
        values = getattr(self, block)
        return values if values.shape[1] == self.batch else np.repeat(values, self.batch, 1)


def _ratio(violation: np.ndarray, scale: np.ndarray) -> float:
    """‖violation‖∞ / ‖scale‖∞ (0 when both vanish)."""
    top = float(np.abs(violation).max(initial=0.0))
    bottom = float(np.abs(scale).max(initial=0.0))
    return top / bottom if bottom > 0 else (0.0 if top == 0 else float("inf"))


def real_array(value, name: str) -> np.ndarray:
    """``value`` as a float64 array, or a ParameterValueError when it is not real numbers
    (complex, boolean, strings, objects)."""
    try:
        arr = np.asarray(value)
    except Exception as err:                 # ragged nested sequences and the like
        raise ParameterValueError(f"Parameter {name!r}: cannot read the value as an array "
                                  f"({err})") from None
    if arr.dtype.kind not in "iuf":
        raise ParameterValueError(f"Parameter {name!r}: values must be real numbers; got "
                                  f"dtype {arr.dtype}")
    return arr.astype(float, copy=False)


def _check_proximal(rho):
    if rho is None or rho == 0:
        return None
    if not isinstance(rho, (int, float)) or isinstance(rho, bool) or not rho > 0 \
            or not np.isfinite(rho):
        raise ValueError(f"proximal must be a positive finite number (ρ in ρ/2·‖x‖²), got "
                         f"{rho!r}")
    return float(rho)


def with_proximal_term(problem, rho):
    """The problem with ρ/2·Σ‖v‖² added to a minimized objective (subtracted from a
    maximized one), or the problem itself when ρ is None."""
    if rho is None:
        return problem
    from .atoms import sum_squares
    from .problem import Maximize, Minimize, Problem
    term = sum(sum_squares(v) for v in problem.variables()) * (rho / 2)
    objective = problem.objective
    if objective.sense == "minimize":
        return Problem(Minimize(objective.expr + term), problem.constraints)
    return Problem(Maximize(objective.expr - term), problem.constraints)


AUTO_NATIVE_SIZE = 400      # n + m up to which solver="auto" picks the dense native method
AUTO_XSPACE_SIZE = 150      # without a definite P: n + (equality rows) up to which it does
AUTO_SUBSTITUTED_SIZE = 600  # n + m up to which it does on a slack substitution's bound space
AUTO_FALLBACK = "clarabel"


def choose_solver(program) -> tuple[str, str]:
    """solver="auto": (solver, why). The native batched method where it measured faster
    (docs/performance.md): zero, nonnegative and second-order cones, n + m ≤
    AUTO_NATIVE_SIZE, and either a P with a diagonal entry for every variable (so its
    Newton systems can go to row space) or at most AUTO_XSPACE_SIZE unknowns in its
    x-space Newton systems (n plus the equality rows: small LPs), or, with a slack
    substitution (``solvers.slacks``: the lasso), n + m ≤ AUTO_SUBSTITUTED_SIZE and at most
    AUTO_XSPACE_SIZE rows left after its bounds; Clarabel otherwise."""
    adapter = get_adapter("native")
    kinds = program.cones.kinds() - adapter.cone_kinds
    size = program.n + program.m
    unknowns = program.n + program.cones.zero
    if kinds:
        return AUTO_FALLBACK, f"clarabel: {', '.join(sorted(kinds))} cones"
    substitution = native.substitution(program)
    others = None if substitution is None else program.m - len(substitution.bounds[0])
    if (others is not None and others <= AUTO_XSPACE_SIZE
            and size <= AUTO_SUBSTITUTED_SIZE):
        return "native", (f"native: LP/QP/SOCP with n + m = {size} ≤ {AUTO_SUBSTITUTED_SIZE} "
                          f"whose slack substitution leaves {others} ≤ {AUTO_XSPACE_SIZE} rows "
                          "in its Newton systems; elements it does not solve are solved again "
                          "by clarabel")
    if size > AUTO_NATIVE_SIZE:
        return AUTO_FALLBACK, f"clarabel: n + m = {size} > {AUTO_NATIVE_SIZE}"
    if program.P.full_diagonal:
        why = "a full-diagonal P"
    elif unknowns <= AUTO_XSPACE_SIZE:
        why = f"{unknowns} ≤ {AUTO_XSPACE_SIZE} unknowns in its Newton systems"
    else:
        return AUTO_FALLBACK, (f"clarabel: P is not definite (variables without a quadratic "
                               f"term) and its Newton systems would have {unknowns} > "
                               f"{AUTO_XSPACE_SIZE} unknowns")
    return "native", (f"native: LP/QP/SOCP with n + m = {size} ≤ {AUTO_NATIVE_SIZE} and "
                      f"{why}; elements it does not solve are solved again by clarabel")


def solve_instance(adapter_name: str, data: ConeProgramData, options: dict,
                   warm: RawSolution | None) -> RawSolution:
    """Solve one instance (a module-level function, so process pools can pickle it)."""
    started = time.perf_counter()
    raw = get_adapter(adapter_name).solve(data, options, warm)
    raw.wall_time = time.perf_counter() - started
    return raw


def solve_sequence(adapter_name: str, instances: list, options: dict,
                   warm: list) -> list[RawSolution]:
    """Solve instances sharing P and A in one reused workspace (module-level: picklable)."""
    started = time.perf_counter()
    raws = get_adapter(adapter_name).solve_sequence(instances, options, warm)
    for raw in raws:
        raw.wall_time = (time.perf_counter() - started) / len(raws)
    return raws


def _workers(pool) -> int:
    """How many tasks ``pool`` runs at once (its max_workers; Dask and others: the CPUs)."""
    return int(getattr(pool, "_max_workers", 0) or cores())


class Solution:
    """Solutions of a (batch of) compiled problem(s).

    ``solution[var]`` is the variable's value (with a leading batch dimension when the call
    was batched); ``dual(constraint)`` the constraint's dual value (CVXPY's conventions);
    ``status``, ``iterations``, ``primal_residual`` (‖Ax + s − b‖∞), ``dual_residual``
    (‖Px + Aᵀy + c‖∞), ``gap`` (|xᵀPx + cᵀx + bᵀy|), ``solve_time`` and ``objective`` are
    per element. Elements that were not solved to optimality have NaN values and duals.
    """

    def __init__(self, compiled: CompiledProblem, raws: list[RawSolution],
                 data: ProgramValues, batch: int | None, options: dict | None = None) -> None:
        self.compiled = compiled
        self.data = data
        self.rule = compiled.rule
        self.tolerances = dict(compiled.options if options is None else options)
        #: relative KKT residual above which an "optimal" answer is reported inaccurate
        self.accuracy_threshold = max(1e-6, 100 * compiled.adapter.accuracy(self.tolerances))
        self._derivatives: dict = {}
        self._batch_tried = False             # _polish_together's one attempt
        self.is_refined = False               # set by refine()
        self.batched = batch is not None
        self.raw = raws
        self.status = [r.status for r in raws]
        self.iterations = np.array([r.iterations for r in raws])
        self.solve_time = np.array([r.solve_time for r in raws])
        self.solver_wall_time = np.array([r.wall_time for r in raws])
        #: a batched derivative the solver left (native: factored at its polished points)
        shared = raws[0].derivative if raws else None
        self._batch_derivative = shared if shared is not None and all(
            r.derivative is shared for r in raws) else None
        self._check_certificates()
        self._statistics(np.array([r.x for r in raws]).T, np.array([r.y for r in raws]).T,
                         np.array([r.s for r in raws]).T)
        self._check_accuracy()

    def _check_accuracy(self, refined=()) -> None:
        """Our own KKT check of every answer: an element the solver calls optimal whose
        relative KKT residual exceeds ``accuracy_threshold`` is reported optimal_inaccurate;
        a ``refined`` element that passes it is reported optimal."""
        for i, status in enumerate(self.status):
            if status.is_optimal:
                if self.kkt_residual[i] > self.accuracy_threshold:
                    self.status[i] = SolveStatus.OPTIMAL_INACCURATE
                elif i in refined:
                    self.status[i] = SolveStatus.OPTIMAL

    def _statistics(self, X: np.ndarray, Y: np.ndarray, S: np.ndarray) -> None:
        """Residuals, gap, objective and values from (n, B), (m, B), (m, B) solutions."""
        compiled, data = self.compiled, self.data
        prog = compiled.program
        A_vals, P_vals, b, c, d = data.full("A"), data.full("P"), data.b, data.c, data.d
        Px = prog.P.symmetric_matvec(P_vals, X)
        Ax, ATy = prog.A.matvec(A_vals, X), prog.A.rmatvec(A_vals, Y)
        self.primal_residual = max_abs(Ax + S - b)
        self.dual_residual = max_abs(Px + ATy + c)
        self.gap = np.abs(np.sum(X * Px + c * X, axis=0) + np.sum(b * Y, axis=0))
        with np.errstate(invalid="ignore", over="ignore"):
            self.kkt_residual = np.maximum.reduce([
                self.primal_residual / (1 + np.maximum.reduce([max_abs(b), max_abs(Ax),
                                                               max_abs(S)])),
                self.dual_residual / (1 + np.maximum.reduce([max_abs(c), max_abs(Px),
                                                             max_abs(ATy)])),
                np.abs(np.sum(S * Y, axis=0)) / (1 + np.abs(np.sum(X * Px, axis=0))
                                                 + np.abs(np.sum(c * X, axis=0))
                                                 + np.abs(np.sum(b * Y, axis=0)))])
        value = compiled.sense * (np.sum(0.5 * X * Px + c * X, axis=0) + d)
        optimal = np.array([s.is_optimal for s in self.status])
        infeasible = np.array([s is SolveStatus.INFEASIBLE for s in self.status])
        unbounded = np.array([s is SolveStatus.UNBOUNDED for s in self.status])
        self.objective = np.where(optimal, value, np.nan)
        self.objective[infeasible] = compiled.sense * np.inf
        self.objective[unbounded] = -compiled.sense * np.inf
        self.x, self.y, self.s = (np.where(optimal[:, None], M.T, np.nan) for M in (X, Y, S))

    # failures --------------------------------------------------------------------------
    def failures(self) -> list[int]:
        """Indices of the elements not solved to optimality."""
        return [i for i, st in enumerate(self.status) if not st.is_optimal]

    def raise_failures(self) -> None:
        """Raise ``SolverError`` naming every failed element with its status, residuals and
        what to try; do nothing when all are optimal."""
        bad = self.failures()
        if not bad:
            return
        lines = [f"{len(bad)} of {len(self.status)} problem(s) not solved to optimality:"]
        for i in bad[:10]:
            st = self.status[i]
            lines.append(f"  element {i}: {st.value} (primal residual "
                         f"{self.primal_residual[i]:.1e}, dual residual "
                         f"{self.dual_residual[i]:.1e}) — {st.hint}")
        if len(bad) > 10:
            lines.append(f"  ... and {len(bad) - 10} more")
        from .solvers import SolverError
        raise SolverError("\n".join(lines))

    def certificate(self, i: int = 0) -> dict | None:
        """The solver's certificate for an element it reported infeasible or unbounded,
        normalized and checked, or None when it reported neither or gave no usable one.

        infeasible: y with Aᵀy = 0, bᵀy = −1, y ∈ K* (no x satisfies Ax + s = b, s ∈ K);
        unbounded: x with Px = 0, Ax + s = 0 (s ∈ K), cᵀx = −1 (a descent ray).
        ``residual`` and ``cone_distance`` are relative: ‖Aᵀy‖∞ against ‖|A|ᵀ|y|‖∞ (how
        completely the combination cancels; likewise for Px and the slack's cone distance),
        so they do not depend on how y is scaled; ``verified`` says both are at most
        ``CERTIFICATE_TOL``."""
        from .cones import projections
        raw, prog = self.raw[i], self.compiled.program
        status = raw.status                    # the solver's claim (self.status may be
        #                                        solver_error when this does not verify)
        P_vals, A_vals, b, c = self.data.element(i)
        A, P = prog.A.matrix(A_vals), prog.P.symmetric_matrix(P_vals)
        if status is SolveStatus.INFEASIBLE:
            kind, v, scale = "infeasible", np.asarray(raw.y, float), -float(b @ raw.y)
        elif status is SolveStatus.UNBOUNDED:
            kind, v, scale = "unbounded", np.asarray(raw.x, float), -float(c @ raw.x)
        else:
            return None
        if not np.all(np.isfinite(v)) or not scale > 0:
            return None
        v = v / scale
        absA, absP = abs(A), abs(P)
        if kind == "infeasible":           # cancellation: ‖Aᵀy‖ against ‖|A|ᵀ|y|‖
            residual = _ratio(A.T @ v, absA.T @ np.abs(v))
            distance = _ratio(v - projections.project(v, prog.cones, dual=True), np.abs(v))
        else:
            slack = -(A @ v)
            residual = _ratio(P @ v, absP @ np.abs(v))
            distance = _ratio(slack - projections.project(slack, prog.cones),
                              absA @ np.abs(v))
        out = {"kind": kind, "y" if kind == "infeasible" else "x": v,
               "residual": float(residual), "cone_distance": float(distance)}
        out["verified"] = max(out["residual"], out["cone_distance"]) <= CERTIFICATE_TOL
        return out

    def _check_certificates(self) -> None:
        """An infeasible/unbounded report whose certificate exists but does not verify is
        reported as a solver error (the data are likely too badly scaled)."""
        for i, status in enumerate(self.status):
            if status in (SolveStatus.INFEASIBLE, SolveStatus.UNBOUNDED):
                cert = self.certificate(i)
                if cert is not None and not cert["verified"]:
                    self.status[i] = SolveStatus.SOLVER_ERROR

    def refine(self) -> "Solution":
        """Newton-refine every optimal element on the embedding's residual map (see
        ``diff.hsde``): solutions become accurate to ~1e-15 where the solution map is
        differentiable, and the factorization is kept for the derivative. Small LPs, QPs
        and SOCPs with a definite P or a slack substitution (the lasso) are refined as one
        batch first (``native.polish_batch``: one batched factorization, whose derivative
        then serves the batch); the elements it leaves inexact are refined one by one.
        (The native solver's answers come polished, with their batch's derivative: its
        exact elements are refined already.)"""
        X, Y, S = self.x.T.copy(), self.y.T.copy(), self.s.T.copy()
        own, self._batch_derivative = self._batch_derivative, None
        refined = set()
        optimal = [i for i, status in enumerate(self.status) if status.is_optimal]
        batch = ((X.T, Y.T, S.T), own) if own is not None else self._polish_together(
            X.T, Y.T, S.T)
        if batch is not None:
            (x, y, s), self._batch_derivative = batch
            exact = [i for i in optimal if self._batch_derivative.exact[i]]
            X[:, exact], Y[:, exact], S[:, exact] = x[exact].T, y[exact].T, s[exact].T
            refined.update(exact)
            optimal = [i for i in optimal if i not in refined]
        with single_threaded_blas():
            self._derivatives_together(optimal)
            for i in optimal:
                d = self.derivative(i)
                if d.refined:                       # else the solver's answer is kept
                    X[:, i], Y[:, i], S[:, i] = d.x, d.y, d.s
                    refined.add(i)
        self._statistics(X, Y, S)
        self._check_accuracy(refined)
        self.is_refined = True
        return self

    def exact(self, i: int) -> bool:
        """Whether element i is optimal and its refined point is a KKT point to rounding
        (False when not refined)."""
        if not self.status[i].is_optimal:
            return False
        batch = self._batch_derivative
        if self.is_refined and batch is not None and batch.exact[i]:
            return True
        d = self._derivatives.get(self._default_key(i))
        return d is not None and d.exact

    def _default_key(self, i: int) -> tuple:
        """``derivative(i)``'s cache key with its default arguments."""
        return (i, "auto", self.rule.reg, True)

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
            self._derivatives[key] = SolutionDerivative(
                **self._derivative_arguments(i, solver, reg, refine),
                cones=self.compiled.program.cones)
        return self._derivatives[key]

    def _derivative_arguments(self, i: int, solver: str, reg: float, refine: bool) -> dict:
        if not self.status[i].is_optimal:
            raise ValueError(f"element {i} has status {self.status[i].value}; its "
                             "derivative is not defined")
        prog = self.compiled.program
        P, A, b, c = self.data.element(i)
        return dict(P_pattern=prog.P, P_values=P, A_pattern=prog.A, A_values=A, b=b, c=c,
                    x=self.x[i], y=self.y[i], s=self.s[i], solver=solver, reg=reg,
                    refine=refine)

    def _derivatives_together(self, elements: list[int]) -> None:
        """The default derivatives (``derivative(i)``) of ``elements`` not built yet,
        refined in lockstep (``SolutionDerivative.together``, ``projections.LOCKSTEP``
        elements at a time): the batch's cone projections are computed together, starting
        from the solver's own slacks, and its factorizations run on the CPU's cores."""
        from .diff.hsde import SolutionDerivative
        cones, reg = self.compiled.program.cones, self.rule.reg
        elements = [i for i in elements if self._default_key(i) not in self._derivatives]
        for start in range(0, len(elements), projections.LOCKSTEP):
            chunk = elements[start:start + projections.LOCKSTEP]
            projections.remember_dual_projections((self.y - self.s)[chunk], cones,
                                                  self.s[chunk])
            built = SolutionDerivative.together(
                [self._derivative_arguments(i, "auto", reg, True) for i in chunk], cones)
            for i, d in zip(chunk, built, strict=True):
                self._derivatives[self._default_key(i)] = d

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
        (``hsde.DataCotangent``); gx (B, n), gy (B, m). Failed elements get zero."""
        from .diff.hsde import DataCotangent
        self._refuse_unrolled()
        batch = self._batch_for(rule)
        if batch is not None:
            grads = batch.vjp(gx, gy)
            out = [DataCotangent(grads[0][i], grads[1][i], grads[2][i], grads[3][i])
                   if batch.usable[i] or not self.status[i].is_optimal else None
                   for i in range(len(self.status))]
            for i, g in enumerate(out):
                if not self.status[i].is_optimal:
                    out[i] = DataCotangent(*(np.zeros_like(a) for a in (
                        g.P_values, g.c, g.A_values, g.b)))
                elif g is None:                     # an element the batch cannot take
                    out[i] = self.derivative(i).vjp(gx[i], gy[i], np.zeros(gy.shape[1]))
            self._warn_flagged([i for i in range(len(out)) if self.status[i].is_optimal
                                and not batch.usable[i]])
            return out
        self._check_derivatives(**rule)
        zero = np.zeros(gy.shape[1])
        out = []
        with single_threaded_blas():
            for i in range(len(self.status)):
                if not self.status[i].is_optimal:
                    P, A, b, c = self.data.element(i)
                    out.append(DataCotangent(np.zeros_like(P), np.zeros_like(c),
                                             np.zeros_like(A), np.zeros_like(b)))
                elif self.rule.name == "perturbed":
                    out.append(self._perturbed(i, gx[i]))
                else:
                    out.append(self.derivative(i, **rule).vjp(gx[i], gy[i], zero))
        return out

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
        (dx (B, n), dy (B, m)). Failed elements get zero."""
        if self.rule.name == "perturbed":
            raise ValueError("the perturbed (LPGD) rule has no forward mode; use 'implicit'")
        self._refuse_unrolled()
        batch = self._batch_for(rule)
        if batch is not None:
            stacked = [np.array([t[k] for t in tangents]) for k in range(4)]
            dx, dy = batch.jvp(*stacked)
            for i, st in enumerate(self.status):
                if not st.is_optimal:
                    dx[i], dy[i] = 0.0, 0.0
                elif not batch.usable[i]:           # an element the batch cannot take
                    dx[i], dy[i], _ = self.derivative(i).jvp(*tangents[i])
            self._warn_flagged([i for i, st in enumerate(self.status)
                                if st.is_optimal and not batch.usable[i]])
            return dx, dy
        self._check_derivatives(**rule)
        prog = self.compiled.program
        dx, dy = np.zeros((len(self.status), prog.n)), np.zeros((len(self.status), prog.m))
        with single_threaded_blas():
            for i, t in enumerate(tangents):
                if self.status[i].is_optimal:
                    dx[i], dy[i], _ = self.derivative(i, **rule).jvp(*t)
        return dx, dy

    def _refuse_unrolled(self) -> None:
        if self.rule.name == "unrolled":
            raise ValueError("rule='unrolled' needs a framework's autodiff: use TorchLayer or "
                             "JaxLayer with solver='native' (Solution differentiates by "
                             "'implicit' or 'perturbed')")

    def _batch_for(self, rule: dict):
        """The batch's own derivative where it answers ``rule`` (the implicit rule without
        damping, no per-call options), else None: the native solver's, the one ``refine``
        factored, or — for another solver's unrefined answers — one factored here at their
        polished points (``_polish_together``)."""
        if rule or self.rule.name != "implicit" or self.rule.reg:
            return None
        if self._batch_derivative is None and not self._batch_tried:
            batch = self._polish_together(self.x, self.y, self.s)
            self._batch_derivative = None if batch is None else batch[1]
        return self._batch_derivative

    def _polish_together(self, X, Y, S):
        """The points X (B, n), Y, S (B, m) polished as one batch (``native.polish_batch``:
        ((x, y, s), its derivative)) where that derivative would serve the compiled rule
        (implicit, undamped) and some element is optimal, else None; tried once per
        solution (``refine`` or the first ``vjp``/``jvp``)."""
        self._batch_tried = True
        if (self.rule.name != "implicit" or self.rule.reg
                or not any(status.is_optimal for status in self.status)):
            return None
        return native.polish_batch(self.compiled.program, self.data, X, Y, S)

    def derivative_flags(self, i: int = 0, **rule) -> list[str]:
        """Why element i's derivative should not be trusted (empty when it can be):
        failed solve, degenerate (strict complementarity fails), singular or ill-conditioned
        backward system, not converged."""
        if not self.status[i].is_optimal:
            return [f"not solved: {self.status[i].value} (zero derivative)"]
        if self.rule.name == "perturbed":
            return []
        return self.derivative(i, **rule).flags()

    def _check_derivatives(self, **rule) -> None:
        """Build the default derivatives of the optimal elements together (lockstep), and
        warn once per solution about elements whose derivative is flagged, and about a
        problem whose solution need not be unique."""
        optimal = [i for i, status in enumerate(self.status) if status.is_optimal]
        if not rule:                       # the default derivatives: built together
            with single_threaded_blas():
                self._derivatives_together(optimal)
        self._warn_flagged(optimal, **rule)

    def _warn_flagged(self, elements: list[int], **rule) -> None:
        """Warn once per solution about those of ``elements`` whose derivative is flagged,
        and about a problem whose solution need not be unique."""
        if getattr(self, "_warned", False) or not elements:
            return
        self._warned = True
        with single_threaded_blas():
            flagged = {i: f for i in elements if (f := self.derivative_flags(i, **rule))}
        self.compiled.warn_if_not_unique([i for i, f in flagged.items()
                                          if any(x.startswith("singular") for x in f)])
        if flagged:
            shown = "; ".join(f"element {i}: {', '.join(f)}" for i, f in
                              list(flagged.items())[:5])
            warnings.warn(f"derivatives of {len(flagged)} element(s) are not reliable — "
                          f"{shown}. See Solution.derivative_flags(i).",
                          DegenerateDerivativeWarning, stacklevel=4)

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
