"""Benchmark: a batch whose P and A do not depend on θ (issue 8, deliverable 2). Per element
time of a batched solve with one solver workspace per worker, set up once and updated with
each element's b and c, against setting the solver up for every element (the adapter's
``reuses_workspace`` switched off for comparison)."""
from __future__ import annotations

import time

import numpy as np

import diffdsl as dd


def best_time(compiled, values, repeats=3) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        compiled.solve(*values)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    for n, m, B in [(50, 50, 256), (400, 400, 32)]:
        run(n, m, B)


def run(n: int, m: int, B: int) -> None:
    rng = np.random.default_rng(0)
    G, Q = rng.normal(size=(m, n)), np.eye(n) + 0.1 * np.ones((n, n))
    x, q, h = dd.Variable(n), dd.Parameter(n), dd.Parameter(m)
    prob = dd.Problem(dd.Minimize(0.5 * dd.quad_form(x, Q) + q @ x), [G @ x <= h])
    values = (rng.normal(size=(B, n)), np.abs(rng.normal(size=(B, m))) + 0.5)
    print(f"QP n={n} m={m} B={B}, per element (2 worker threads)")
    print(f"{'solver':<10} {'setup per element':>18} {'one workspace':>14} {'speed-up':>9}")
    for solver in ("clarabel", "scs", "osqp"):
        compiled = prob.compile(solver=solver)
        kind = type(compiled.adapter)
        compiled.solve(*(v[:4] for v in values))                     # warm up
        times = []
        for reuse in (False, True):
            kind.reuses_workspace = reuse
            times.append(best_time(compiled, values) / B)
        kind.reuses_workspace = True
        print(f"{solver:<10} {times[0] * 1e3:>15.3f} ms {times[1] * 1e3:>11.3f} ms "
              f"{times[0] / times[1]:>8.2f}×")


if __name__ == "__main__":
    main()
