"""Benchmark: more of issue 8's layer rows — lasso (A and b parameters), logistic regression
(exponential cones), a portfolio SOCP, and a small LP — forward + backward in PyTorch,
diffdsl against cvxpylayers on the same instances, diffdsl with Clarabel and (where the
cones allow) its native batched solver. The last column is the largest difference between the
two tools' gradients, relative to ours (ours are refined to ~1e-15; cvxpylayers' carry
SCS's default accuracy). Each layer is warmed up by one full-batch forward + backward, then
timed as the best of five (the steady state of a training loop: the first full-size calls
of a process also pay the allocator's growth)."""
from __future__ import annotations

import time

import numpy as np
import torch

import diffdsl as dd
from diffdsl.backends.torch import TorchLayer


def lasso(lib, m=50, n=100):
    A, b, x = lib.Parameter((m, n)), lib.Parameter(m), lib.Variable(n)
    prob = lib.Problem(lib.Minimize(lib.sum_squares(A @ x - b) + 0.1 * lib.norm1(x)))
    return prob, [A, b], x


def logistic(lib, N=100, d=10):
    """The labels are folded into the features (Z = diag(y) X) so the problem is DPP."""
    Z, lam = lib.Parameter((N, d)), lib.Parameter(nonneg=True)
    w = lib.Variable(d)
    prob = lib.Problem(lib.Minimize(lib.sum(lib.logistic(-(Z @ w))) / N
                                    + lam * lib.sum_squares(w)))
    return prob, [Z, lam], w


def portfolio(lib, n=50, k=5):
    mu, F = lib.Parameter(n), lib.Parameter((k, n))
    w = lib.Variable(n)
    prob = lib.Problem(lib.Maximize(mu @ w - 0.1 * lib.sum_squares(w)),
                       [lib.norm(F @ w) <= 0.5, lib.sum(w) == 1, w >= 0])
    return prob, [mu, F], w


def lp(lib, n=50, m=100):
    """A box-bounded LP with random inequalities (h and c parameters; h first, since an
    LP's solution moves with h but is locally constant in c): P = 0, so the native solver
    works in x space (50 unknowns); what solver="auto" picks for it."""
    G = np.random.default_rng(3).normal(size=(m, n))
    c, h, x = lib.Parameter(n), lib.Parameter(m), lib.Variable(n)
    prob = lib.Problem(lib.Minimize(c @ x), [G @ x <= h, x >= -1, x <= 1])
    return prob, [h, c], x


def values(name, batch, rng):
    if name == "lp":
        return [np.abs(rng.normal(size=(batch, 100))) + 0.5, rng.normal(size=(batch, 50))]
    if name == "lasso":
        return [rng.normal(size=(batch, 50, 100)), rng.normal(size=(batch, 50))]
    if name == "logistic":
        X = rng.normal(size=(batch, 100, 10))
        y = np.sign(X @ rng.normal(size=10) + 0.5 * rng.normal(size=(batch, 100)))
        return [y[..., None] * X, np.full(batch, 0.01)]
    return [0.1 * rng.normal(size=(batch, 50)), 0.2 * rng.normal(size=(batch, 5, 50))]


def timed(layer, vals, weights, repeats=5):
    """Best time of forward + backward of Σ weights ⊙ output, and the first gradient."""
    from diffdsl.cones import projections
    best, grad = np.inf, None
    for _ in range(repeats):
        projections.clear_exp_memo()           # no answers carried over between repeats
        tensors = [torch.tensor(v, requires_grad=True) for v in vals]
        start = time.perf_counter()
        out = layer(*tensors)
        ((out[0] if isinstance(out, tuple) else out) * weights).sum().backward()
        best = min(best, time.perf_counter() - start)
        grad = tensors[0].grad.numpy()
    return best, grad


def main() -> None:
    import warnings

    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer
    # the LP batch has an element with a non-unique solution: flagged each repeat, not news
    warnings.simplefilter("ignore", dd.DegenerateDerivativeWarning)
    warnings.simplefilter("ignore", dd.NonUniqueSolutionWarning)
    rng = np.random.default_rng(0)
    print(f"{'problem':<16} {'solver':<10} {'diffdsl':>10} {'cvxpylayers':>12} {'ratio':>7} "
          f"{'grad diff':>10}")
    for name, build, batch in [("lasso", lasso, 32), ("logistic", logistic, 8),
                               ("portfolio", portfolio, 32), ("lp", lp, 64)]:
        vals = values(name, batch, rng)
        weights = None
        cprob, cparams, cvar = build(cp)
        theirs = CvxpyLayer(cprob, parameters=cparams, variables=[cvar])
        t_theirs = None
        for solver in ("clarabel", "native"):
            prob, params, var = build(dd)
            try:
                ours = TorchLayer(prob, params, [var], solver=solver)
            except dd.SolverError:                       # cones the native solver lacks
                print(f"{name + f' B={batch}':<16} {solver:<10} {'(cones not taken)':>10}")
                continue
            if weights is None:
                weights = torch.tensor(rng.normal(size=(batch,) + tuple(var.shape)))
                timed(theirs, vals, weights, repeats=1)                  # warm up
                t_theirs, g_theirs = timed(theirs, vals, weights)
            timed(ours, vals, weights, repeats=1)                        # warm up
            t_ours, g_ours = timed(ours, vals, weights)
            diff = np.abs(g_ours - g_theirs).max() / max(np.abs(g_ours).max(), 1e-300)
            print(f"{name + f' B={batch}':<16} {solver:<10} {t_ours * 1e3:>7.1f} ms "
                  f"{t_theirs * 1e3:>9.1f} ms {t_theirs / t_ours:>6.1f}× {diff:>10.1e}")


if __name__ == "__main__":
    main()
