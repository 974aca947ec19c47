"""Benchmark: backward (VJP) time against forward (solve) time, and the gradient's error
against an exact reference (the QP's KKT system), on the anchor problems of DESIGN.md.
Target (issue 4): backward ≤ 0.5× forward."""
from __future__ import annotations

import time

import numpy as np

import diffdsl as dd


def dense_qp(n=50, m=50, p=10, batch=64, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(n, n))
    Q = B @ B.T / n + np.eye(n)
    G, F = rng.normal(size=(m, n)), rng.normal(size=(p, n))
    x, q, h = dd.Variable(n), dd.Parameter(n), dd.Parameter(m)
    prob = dd.Problem(dd.Minimize(0.5 * dd.quad_form(x, Q) + q @ x), [G @ x <= h, F @ x == 0])
    values = (rng.normal(size=(batch, n)), np.abs(rng.normal(size=(batch, m))) + 0.5)
    return prob, x, values, (Q, G, F)


def sparsemax(n=100, batch=128, seed=1):
    rng = np.random.default_rng(seed)
    theta, y = dd.Parameter(n), dd.Variable(n)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(y - theta)), [dd.sum(y) == 1, y >= 0])
    return prob, y, (rng.normal(size=(batch, n)),), None


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def kkt_gradient_error(solution, x, values, data, g):
    """Relative error of dL/dq against the KKT solve of the active set."""
    Q, G, F = data
    errors = []
    grads = solution.vjp({x: g})
    q_param = solution.compiled.parameters[0]
    for i in range(len(solution.status)):
        xs = solution.derivative(i).x[:len(g[i])]        # the refined point
        active = np.abs(G @ xs - values[1][i]) <= 1e-7
        C = np.vstack([G[active], F])
        K = np.block([[Q, C.T], [C, np.zeros((len(C), len(C)))]])
        w = np.linalg.solve(K, np.concatenate([g[i], np.zeros(len(C))]))
        exact = -w[:len(xs)]
        errors.append(np.abs(grads[q_param][i] - exact).max() / np.abs(exact).max())
    return max(errors)


def main() -> None:
    print(f"{'problem':<34} {'forward':>10} {'backward':>10} {'ratio':>6} {'grad error':>11}")
    for name, (prob, var, values, data) in [
            ("dense QP n=50 m=50 p=10 B=64", dense_qp()),
            ("sparsemax n=100 B=128", sparsemax())]:
        compiled = prob.compile()
        compiled.solve(*values)                                   # warm caches
        fwd, sol = timed(lambda c=compiled, v=values: c.solve(*v))
        g = np.random.default_rng(2).normal(size=sol[var].shape)
        bwd, _ = timed(lambda s=sol, v=var, g=g: s.vjp({v: g}))
        err = kkt_gradient_error(sol, var, values, data, g) if data else float("nan")
        print(f"{name:<34} {fwd * 1e3:>7.1f} ms {bwd * 1e3:>7.1f} ms {bwd / fwd:>5.2f}× "
              f"{err:>11.1e}")


if __name__ == "__main__":
    main()
