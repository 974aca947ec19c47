"""Benchmark: compile time and memory, diffdsl vs CVXPY's get_problem_data (the step
cvxpylayers pays for every layer), and diffdsl's per-element overhead outside the solver.

Targets (issue 3): compile ≤ 20 ms for problems with ≤ 1,000 scalar variables; compile time
and memory linear in nnz(T) — a 1000×1000 dense Parameter matrix compiles in ≤ 3 s and
≤ 2 GB; overhead outside the solver ≤ 50 µs per batch element.

CVXPY runs in a subprocess with a time limit (CVXPY_LIMIT_S) and an address-space limit
(CVXPY_LIMIT_GB) so that its slow cases report a bound instead of stalling the table.
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
import tracemalloc

import numpy as np

CVXPY_LIMIT_S = 120
CVXPY_LIMIT_GB = 12


def problems(lib, rng):
    """(name, scalar variables, builder) for each benchmark problem, in library ``lib``."""

    def qp_box(n=1000):
        x = lib.Variable(n)
        q = lib.Parameter(n)
        return lib.Problem(lib.Minimize(0.5 * lib.sum_squares(x) + q @ x), [x >= -1, x <= 1])

    def lasso(m=100, n=1000):
        A, b = lib.Parameter((m, n)), lib.Parameter(m)
        x = lib.Variable(n)
        return lib.Problem(lib.Minimize(lib.sum_squares(A @ x - b) + 0.1 * lib.norm1(x)))

    def portfolio(n=1000, k=20):
        F = rng.normal(size=(n, k)) / np.sqrt(n)
        mu = lib.Parameter(n)
        w = lib.Variable(n)
        risk = lib.sum_squares(F.T @ w) + lib.sum_squares(0.1 * w)
        return lib.Problem(lib.Maximize(mu @ w - risk), [lib.sum(w) == 1, w >= 0])

    def least_squares(n):
        A, b = lib.Parameter((n, n)), lib.Parameter(n)
        x = lib.Variable(n)
        return lib.Problem(lib.Minimize(lib.sum_squares(A @ x - b)))

    return [("box QP, q parameter", 1000, qp_box),
            ("lasso 100×1000, A and b parameters", 1000, lasso),
            ("portfolio, 1000 assets, 20 factors", 1000, portfolio),
            ("least squares 100×100 Parameter", 100, lambda: least_squares(100)),
            ("least squares 300×300 Parameter", 300, lambda: least_squares(300)),
            ("least squares 1000×1000 Parameter", 1000, lambda: least_squares(1000))]


def measure(build, compile_fn) -> tuple[float, float]:
    """(seconds, peak traced MB) of compiling a freshly built problem (CVXPY caches compiled
    data on the problem object), best time of up to 3 runs, stopping after a run over 2 s."""
    best, peak = np.inf, 0.0
    for _ in range(3):
        problem = build()
        tracemalloc.start()
        started = time.perf_counter()
        compile_fn(problem)
        elapsed = time.perf_counter() - started
        peak = max(peak, tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
        best = min(best, elapsed)
        if elapsed > 2.0:
            break
    return best, peak


def ours(index: int) -> tuple[float, float, int]:
    import diffdsl as dd
    name, _, build = problems(dd, np.random.default_rng(0))[index]
    seconds, mb = measure(build, lambda problem: problem.compile())
    compiled = build().compile()
    return seconds, mb, compiled.program.A.T.nnz + compiled.program.P.T.nnz


def cvxpy_child(index: int, queue) -> None:
    import cvxpy as cp
    resource.setrlimit(resource.RLIMIT_AS, (CVXPY_LIMIT_GB << 30, CVXPY_LIMIT_GB << 30))
    _, _, build = problems(cp, np.random.default_rng(0))[index]
    try:
        queue.put(measure(build, lambda problem: problem.get_problem_data(cp.CLARABEL)))
    except MemoryError:
        queue.put("out of memory")


def theirs(index: int) -> str | tuple[float, float]:
    queue = mp.get_context("fork").Queue()
    child = mp.get_context("fork").Process(target=cvxpy_child, args=(index, queue))
    child.start()
    child.join(CVXPY_LIMIT_S)
    if child.is_alive():
        child.kill()
        return f"> {CVXPY_LIMIT_S} s"
    return queue.get() if not queue.empty() else f"failed (exit {child.exitcode})"


def compile_table() -> None:
    import diffdsl as dd
    print("\nCompile: diffdsl prob.compile() vs CVXPY get_problem_data(CLARABEL), DPP path")
    header = (f"{'problem':<38} {'vars':>5} {'nnz(T)':>9} | {'diffdsl':>9} {'MB':>7} | "
              f"{'CVXPY':>12} {'MB':>7} | {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for index, (name, nvars, _) in enumerate(problems(dd, np.random.default_rng(0))):
        seconds, mb, nnz = ours(index)
        ref = theirs(index)
        if isinstance(ref, tuple):
            cell = f"{ref[0] * 1e3:>9.1f} ms {ref[1]:>7.1f} | {ref[0] / seconds:>5.1f}×"
        else:
            cell = f"{ref:>12} {'':>7} | {'':>6}"
        print(f"{name:<38} {nvars:>5} {nnz:>9} | {seconds * 1e3:>6.1f} ms {mb:>7.1f} | {cell}")


def overhead_table() -> None:
    import diffdsl as dd
    rng = np.random.default_rng(1)
    n, m = 20, 10
    x, q, h = dd.Variable(n), dd.Parameter(n), dd.Parameter(m)
    G = rng.normal(size=(m, n))
    compiled = dd.Problem(dd.Minimize(0.5 * dd.sum_squares(x) + q @ x), [G @ x <= h]).compile()
    print("\nPer-element overhead outside the solver (QP, 20 variables, 10 inequalities)")
    print(f"{'batch':>6} | {'total / element':>16} | {'in solver':>10} | {'overhead':>9}")
    for B in (16, 256, 1024):
        qv, hv = rng.normal(size=(B, n)), np.abs(rng.normal(size=(B, m))) + 1
        compiled.solve(qv, hv, executor=None)
        started = time.perf_counter()
        solution = compiled.solve(qv, hv, executor=_inline())
        total = time.perf_counter() - started
        inside = solution.solver_wall_time.sum()
        print(f"{B:>6} | {total / B * 1e6:>13.1f} µs | {inside / B * 1e6:>7.1f} µs | "
              f"{(total - inside) / B * 1e6:>6.1f} µs")


class _inline:
    """An executor that runs tasks in the calling thread (so solver time is not overlapped)."""

    def map(self, fn, *iterables):
        return map(fn, *iterables)


if __name__ == "__main__":
    compile_table()
    overhead_table()
    sys.exit(0)
