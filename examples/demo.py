"""diffdsl demo: write convex problems, print them as math, and read their curvature analysis.

Run with `make demo`. Until the compiler lands, this shows the modeling language and its
DCP/DPP analysis, including the errors a user sees for common mistakes.
"""
import numpy as np

import diffdsl as dd

rng = np.random.default_rng(0)


def show(title: str, problem: dd.Problem) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))
    print(problem)
    print(f"\nDCP: {problem.is_dcp()}   DPP: {problem.is_dpp()}   "
          f"variables: {[v.name for v in problem.variables()]}   "
          f"parameters: {[p.name for p in problem.parameters()]}")
    print("\nobjective, node by node (shape, sign, curvature):")
    print(dd.curvature_report(problem.objective.expr))
    err = problem.first_violation(dpp=False) or problem.first_violation(dpp=True)
    if err is not None:
        print(f"\n{type(err).__name__}: {err}")


def main() -> None:
    n, m = 8, 20
    # Lasso with a learnable regularization weight.
    A, b = dd.Parameter((m, n), name="A"), dd.Parameter(m, name="b")
    lam = dd.Parameter(nonneg=True, name="lam")
    x = dd.Variable(n, name="x")
    show("lasso", dd.Problem(dd.Minimize(dd.sum_squares(A @ x - b) + lam * dd.norm1(x))))

    # Mean-variance portfolio with a risk (second-order cone) constraint.
    mu, F = dd.Parameter(n, name="mu"), dd.Parameter((3, n), name="F")
    w = dd.Variable(n, name="w")
    show("portfolio", dd.Problem(dd.Maximize(mu @ w),
                                 [dd.sum(w) == 1, w >= 0, dd.norm(F @ w) <= 0.2]))

    # Softmax as an entropy-regularized argmax over the simplex.
    theta = dd.Parameter(n, name="theta")
    y = dd.Variable(n, name="y")
    show("softmax layer", dd.Problem(dd.Maximize(theta @ y + dd.sum(dd.entr(y))),
                                     [dd.sum(y) == 1]))

    # Maximum-volume ellipsoid inscribed in a polyhedron (log_det, PSD cone).
    B = dd.Variable((2, 2), PSD=True, name="B")
    c = dd.Variable(2, name="c")
    G = rng.normal(size=(6, 2))
    h = np.ones(6)
    cons = [dd.norm(B @ G[i]) + G[i] @ c <= h[i] for i in range(3)]
    show("max-volume ellipsoid", dd.Problem(dd.Maximize(dd.log_det(B)), cons))

    # Common mistakes, with what diffdsl says about them.
    show("mistake: sqrt of a sum of squares",
         dd.Problem(dd.Minimize(dd.sqrt(dd.sum_squares(A @ x - b)))))
    p, q = dd.Parameter(name="p"), dd.Parameter(name="q")
    show("mistake: a product of parameters times a variable (not DPP)",
         dd.Problem(dd.Minimize(p * q * dd.sum(x) + dd.sum_squares(x))))


if __name__ == "__main__":
    main()
