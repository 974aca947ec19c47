"""``solver="native"``: a batched primal-dual interior-point method for LPs, QPs and SOCPs
(zero, nonnegative and second-order cones, with P), run on the whole batch at once.

The method and its derivative live in ``diffdsl.solvers.ipm``, written against an array
namespace so the same code runs on NumPy, PyTorch (CPU or CUDA) and JAX (jit/vmap); the
layers run it on their own tensors (``backends``). This adapter serves ``CompiledProblem``:
it runs it on the CPU (PyTorch's batched LU when installed, NumPy otherwise), polishes the
answers by Newton steps on the solution map's residual, and leaves the factored derivative
system of the whole batch on the raw solutions (``ProgramDerivative``).

Dense, so for small and medium problems (a few hundred variables and rows), where
per-element solver calls cost more than the arithmetic. Status: optimal when the relative
primal and dual residuals and the relative gap are below ``tol``; optimal_inaccurate below
1e-6; iteration_limit above. The method has no infeasibility certificates: an infeasible or
unbounded element ends at the iteration limit (use clarabel to classify it).
"""
from __future__ import annotations

import time

import numpy as np

from ..diff.threads import single_threaded_blas, single_threaded_openmp
from . import ipm
from .arrays import fastest_cpu
from .base import RawSolution, SolverAdapter, SolveStatus, register
from .slacks import SlackSubstitution, SubstitutedDerivative

STATUS = {ipm.OPTIMAL: SolveStatus.OPTIMAL,
          ipm.OPTIMAL_INACCURATE: SolveStatus.OPTIMAL_INACCURATE,
          ipm.ITERATION_LIMIT: SolveStatus.ITERATION_LIMIT}


class NativeAdapter(SolverAdapter):
    name = "native"
    cone_kinds = frozenset({"zero", "nonneg", "soc"})
    accepts_quadratic = True
    default_options = {"tol": 1e-10, "max_iter": 50}
    tolerance_keys = ("tol",)

    def solve(self, data, opts, warm=None) -> RawSolution:
        """One instance (the batched path, ``solve_batch``, is what CompiledProblem uses)."""
        P = np.triu(data.P.toarray())
        P = P + np.triu(P, 1).T
        raws, _ = solve_dense(P[None], data.c[None], data.A.toarray()[None], data.b[None],
                              data.cones, self.options(opts))
        return raws[0]

    def solve_batch(self, program, values, opts) -> list[RawSolution]:
        """Every element of a ``ProgramValues`` batch in one run."""
        P, A = dense_data(program, values)
        raws, derivative = solve_dense(P, values.c.T, A, values.b.T, program.cones,
                                       self.options(opts), program=program)
        for raw in raws:
            raw.derivative = derivative
        return raws


def bound_rows(program):
    """The program's bound rows and their variables (``ipm.bound_rows`` of A's pattern)."""
    return ipm.bound_rows(program.A.indices, program.A.columns, program.cones)


def substitution(program) -> SlackSubstitution | None:
    """The program's ``SlackSubstitution`` (found once per program)."""
    if not hasattr(program, "_slack_substitution"):
        program._slack_substitution = SlackSubstitution.of(program)
    return program._slack_substitution


def solve_substituted(ops, cones, P, c, A, b, substitution, bounds, row_space: bool,
                      overwrite=False, **limits):
    """``ipm.solve_polished`` of the batch in the spaces ``ipm.newton_spaces`` picks, on its
    substituted program where ``substitution`` is given (there by the substitution's own
    bound rows and column classes): (x, y, s, status, iterations, derivative) for the
    original program. ``bounds``: the program's bound rows (``bound_rows``);
    ``row_space``: P's pattern may be definite; ``limits``: as for ``solve_polished``.
    ``overwrite``: A may be written over."""
    data, columns = (P, c, A, b), None
    if substitution is not None:
        *data, blocks = substitution.data(ops, P, c, A, b, overwrite)
        bounds, columns = substitution.bounds, substitution.columns
    rows, space, in_bounds = ipm.newton_spaces(ops, data[0], data[2], cones.zero, bounds,
                                               row_space, columns)
    x, y, s, status, iterations, d = ipm.solve_polished(
        ops, cones, *data, **limits, rows=rows, bounds=space, bound_iterations=in_bounds)
    if substitution is None:
        return x, y, s, status, iterations, d
    d = SubstitutedDerivative(ops, substitution, d, blocks, b)
    return d.x, y, s, status, iterations, d


def dense_data(program, values):
    """P (B, n, n) and A (B, m, n) of a ``ProgramValues`` batch as dense arrays; (1, ·, ·)
    when θ does not move them (the method shares them across the batch)."""
    Pv, Av = (v if pattern.depends_on_parameters else v[:1] for pattern, v in
              ((program.P, values.P.T), (program.A, values.A.T)))
    return program.P.symmetric_dense(Pv), program.A.dense(Av)


POLISH_SIZE = 400     # n + m up to which another solver's batch is polished together
POLISH_SUBSTITUTED_SIZE = 600   # ... where it has a slack substitution (the bound space)


def polish_batch(program, values, X, Y, S):
    """Another solver's solutions X (B, n), Y, S (B, m) polished together by the native
    method's Newton steps on the solution map's residual (``ipm.Derivative.polish``), its
    derivative factored for the whole batch: ((x, y, s) as (B, ·) arrays, its
    ``ProgramDerivative``), or None where this does not apply — cones other than zero,
    nonnegative and second-order, n + m above ``POLISH_SIZE`` (dense), or P not definite
    somewhere (the batch's derivative then has no row space, and one element at a time,
    on its reduced sparse system, is cheaper). A program with a slack substitution (the
    lasso) is polished in its substituted form, its derivative in the bound space, up to
    n + m = ``POLISH_SUBSTITUTED_SIZE`` (None where that derivative's system falls back
    to x space). Elements whose polished point is not exact keep their own point and are
    marked so (``derivative.exact``)."""
    sub = substitution(program)
    size = POLISH_SIZE if sub is None else POLISH_SUBSTITUTED_SIZE
    if (program.cones.kinds() - NativeAdapter.cone_kinds or program.n + program.m > size
            or (sub is None and not program.P.full_diagonal)):
        return None
    ops = fastest_cpu()
    P, A = dense_data(program, values)
    # one OpenMP thread: this runs between a solver pool's batches (see the threads module)
    with single_threaded_blas(), single_threaded_openmp(), np.errstate(
            over="ignore", invalid="ignore", divide="ignore"):
        data = [ops.constant(np.ascontiguousarray(a)) for a in (P, values.c.T, A, values.b.T)]
        x, y, s = (ops.constant(np.nan_to_num(a)) for a in (X, Y, S))   # failed: NaN
        cones = ipm.Cones.of(ops, program.cones)
        if sub is not None:
            return _polish_substituted(ops, cones, program, sub, data, x, y, s)
        rows = ipm.RowSpace.of(ops, data[0], data[2], program.cones.zero, limit=False)
        if rows is None:
            return None
        bounds = ipm.BoundSpace.of(ops, data[0], data[2], program.cones.zero,
                                   bound_rows(program))
        d = ipm.Derivative(ops, cones, data[0], data[2], x, y, s, rows, bounds)
        polished = d.polish(data[1], data[3],
                            bar=ipm.solver_residual(ops, *data, x, y, s))
        return (tuple(np.array(ops.to_numpy(a)) for a in polished),
                ProgramDerivative(ops, program, d))


def _polish_substituted(ops, cones, program, sub, data, x, y, s):
    """``polish_batch`` on the substituted program (x' = b_R − C x_V on the groups'
    variables; y and s unchanged), its derivative mapped back (``SubstitutedDerivative``)."""
    b = data[3]
    *sub_data, blocks = sub.data(ops, *data, overwrite=True)    # A: this call's own copy
    bounds = ipm.BoundSpace.of(ops, sub_data[0], sub_data[2], program.cones.zero,
                               sub.bounds, columns=sub.columns)
    if bounds is None:
        return None
    x = sub.substituted(ops, x, b)
    d = ipm.Derivative(ops, cones, sub_data[0], sub_data[2], x, y, s, None, bounds)
    if d.reduced is None:                       # the bound space refused: x space, dense
        return None
    _, y, s = d.polish(sub_data[1], sub_data[3],
                       bar=ipm.solver_residual(ops, *sub_data, x, y, s, bounds))
    d = SubstitutedDerivative(ops, sub, d, blocks, b)
    return (tuple(np.array(ops.to_numpy(a)) for a in (d.x, y, s)),
            ProgramDerivative(ops, program, d))


def solve_dense(P, c, A, b, dims, opts, program=None):
    """The batched method on dense NumPy data P (B, n, n), c (B, n), A (B, m, n), b (B, m)
    (P and A may be (1, ·, ·), shared by the batch):
    (raw solutions, their ``ProgramDerivative`` when ``program`` is given, else None).
    Given the ``program``, its bound rows serve the Newton systems (``BoundSpace``), on
    its ``SlackSubstitution`` where it has one.
    (An infeasible or unbounded element diverges; its overflow is expected, not reported.)"""
    ops = fastest_cpu()
    started = time.perf_counter()
    with single_threaded_blas(), np.errstate(over="ignore", invalid="ignore",
                                             divide="ignore"):
        cones = ipm.Cones.of(ops, dims)
        data = [ops.constant(np.ascontiguousarray(a)) for a in (P, c, A, b)]
        limits = dict(tol=float(opts["tol"]), max_iter=int(opts["max_iter"]))
        derivative = None
        if program is None:
            x, y, s, status, iterations, _ = ipm.interior_point(
                ops, cones, *data, **limits, rows=ipm.RowSpace.of(ops, data[0], data[2],
                                                                  dims.zero))
        else:
            x, y, s, status, iterations, d = solve_substituted(
                ops, cones, *data, substitution(program), bound_rows(program),
                program.P.full_diagonal, overwrite=True, **limits, bar=True)
            derivative = ProgramDerivative(ops, program, d)
        x, y, s, status, iterations = (ops.to_numpy(a) for a in (x, y, s, status, iterations))
    elapsed = time.perf_counter() - started
    B = x.shape[0]
    return [RawSolution(x[i].copy(), y[i].copy(), s[i].copy(), STATUS[int(status[i])],
                        int(iterations[i]), elapsed / B) for i in range(B)], derivative


class ProgramDerivative:
    """The batch's derivative (``ipm.Derivative``, at the points ``ipm.solve_polished`` or
    ``polish_batch`` polished) in the terms ``Solution`` uses: NumPy arrays, P and A by
    their values on the program's sparsity patterns; ``usable`` marks the elements it
    answers for (the others are differentiated one by one). Its solves run on one BLAS and
    one OpenMP thread: threads left spinning after them would slow the solver pool's next
    batch."""

    def __init__(self, ops, program, derivative: ipm.Derivative) -> None:
        self.ops, self.program, self.derivative = ops, program, derivative
        self.usable = ops.to_numpy(derivative.usable).astype(bool)
        #: elements whose (polished) point is a KKT point to rounding
        self.exact = np.array(ops.to_numpy(derivative.exact), dtype=bool)

    def vjp(self, gx: np.ndarray, gy: np.ndarray):
        """(grad P values, grad c, grad A values, grad b), each (B, ·), of ⟨gx, x⟩ + ⟨gy, y⟩."""
        ops, prog, d = self.ops, self.program, self.derivative
        with single_threaded_blas(), single_threaded_openmp():
            wx, wv = (np.asarray(ops.to_numpy(w)) for w in d.adjoint(ops.constant(gx),
                                                                      ops.constant(gy)))
        x, y = (np.asarray(ops.to_numpy(a)) for a in (d.x, d.y))
        # ∂P = w_x xᵀ and ∂A = y w_xᵀ − w_v xᵀ on the patterns' entries only (P symmetric
        # from its upper triangle: an off-diagonal entry collects both of its positions)
        pr, pc, ar, ac = prog.P.indices, prog.P.columns, prog.A.indices, prog.A.columns
        grad_P = wx[:, pr] * x[:, pc] + np.where(pr != pc, wx[:, pc] * x[:, pr], 0.0)
        return grad_P, wx, ipm.pattern_gradient_A(x, y, wx, wv, ar, ac), wv

    def jvp(self, dP: np.ndarray, dc: np.ndarray, dA: np.ndarray, db: np.ndarray):
        """(dx, dy), each (B, ·), for data tangents (B, ·) (P and A by their values)."""
        prog, ops = self.program, self.ops
        P, A = prog.P.symmetric_dense(dP), prog.A.dense(dA)
        with single_threaded_blas(), single_threaded_openmp():
            dx, dy, _ = self.derivative.jvp(*(ops.constant(a) for a in (P, dc, A, db)))
        return ops.to_numpy(dx), ops.to_numpy(dy)


register(NativeAdapter())
