"""diffdsl demo: write convex problems, read their curvature analysis, compile them once,
solve them for many parameter values, and train a model through an optimization layer.

Run with `make demo` (or `python examples/demo.py [--fast] [--out FOLDER]`); the training
curve is written to examples/out/demo.png.
"""
import numpy as np

import diffdsl as dd
from _common import Progress, arguments, save

rng = np.random.default_rng(0)


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def show(title: str, problem: dd.Problem) -> None:
    section(title)
    print(problem)
    print(f"\nDCP: {problem.is_dcp()}   DPP: {problem.is_dpp()}   "
          f"variables: {[v.name for v in problem.variables()]}   "
          f"parameters: {[p.name for p in problem.parameters()]}")
    print("\nobjective, node by node:")
    print(dd.curvature_report(problem.objective.expr))
    err = problem.first_violation(dpp=False) or problem.first_violation(dpp=True)
    if err is not None:
        print(f"\n{type(err).__name__}: {err}")


def main() -> None:
    n, m = 8, 20
    # Lasso with a regularization weight that is a parameter.
    A, b = dd.Parameter((m, n), name="A"), dd.Parameter(m, name="b")
    lam = dd.Parameter(nonneg=True, name="lam")
    x = dd.Variable(n, name="x")
    lasso = dd.Problem(dd.Minimize(dd.sum_squares(A @ x - b) + lam * dd.norm1(x)))
    show("lasso", lasso)

    section("lasso: compile once, solve a batch of 5 regularization weights")
    compiled = lasso.compile()
    print(compiled.program.sizes())
    print("blocks that depend on θ:", compiled.program.depends_on_parameters())
    A_val, b_val = rng.normal(size=(m, n)), rng.normal(size=m)
    weights = np.array([0.0, 0.5, 2.0, 8.0, 32.0])
    solution = compiled.solve(A_val, b_val, weights)      # A, b shared; λ batched
    for w, xs, status in zip(weights, solution[x], solution.status, strict=True):
        print(f"λ = {w:5.1f}  {status.value:8s}  nonzeros {np.sum(np.abs(xs) > 1e-6)}  "
              f"‖x‖₁ = {np.abs(xs).sum():.4f}")

    # Mean-variance portfolio with a risk (second-order cone) constraint.
    mu, F = dd.Parameter(n, name="mu"), dd.Parameter((3, n), name="F")
    w = dd.Variable(n, name="w")
    budget = dd.sum(w) == 1
    portfolio = dd.Problem(dd.Maximize(mu @ w), [budget, w >= 0, dd.norm(F @ w) <= 0.2])
    show("portfolio", portfolio)
    mu.value, F.value = rng.normal(0.05, 0.02, n), rng.normal(size=(3, n)) * 0.1
    value = portfolio.solve()
    print(f"\nsolve(): status {portfolio.status}, expected return {value:.4f}, "
          f"weights {np.round(w.value, 3)}, budget dual {budget.dual_value:.4f}")

    # Softmax as an entropy-regularized argmax over the simplex.
    theta = dd.Parameter(n, name="theta", value=rng.normal(size=n))
    y = dd.Variable(n, name="y")
    softmax = dd.Problem(dd.Maximize(theta @ y + dd.sum(dd.entr(y))), [dd.sum(y) == 1])
    show("softmax layer", softmax)
    softmax.solve()
    exact = np.exp(theta.value) / np.exp(theta.value).sum()
    print(f"\nmax |y − softmax(θ)| = {np.abs(y.value - exact).max():.2e}")

    # Common mistakes, with what diffdsl says about them.
    show("mistake: sqrt of a sum of squares",
         dd.Problem(dd.Minimize(dd.sqrt(dd.sum_squares(A @ x - b)))))
    p, q = dd.Parameter(name="p"), dd.Parameter(name="q")
    show("mistake: a product of parameters times a variable (not DPP)",
         dd.Problem(dd.Minimize(p * q * dd.sum(x) + dd.sum_squares(x))))


def train_through_a_layer(steps: int = 60, out: str | None = None) -> tuple[float, float]:
    """Learn a linear model whose output is the cost vector of a QP layer, so that the QP's
    solutions match those of an unknown true model (predict-then-optimize, end to end).
    Returns the first and last training losses; writes the training curve to out/demo.png."""
    import matplotlib.pyplot as plt
    import torch

    from diffdsl.backends.torch import TorchLayer

    section("training a model through a QP layer (PyTorch)")
    torch.manual_seed(0)
    features, n, batch = 5, 4, 64
    G = rng.normal(size=(6, n))
    x, q = dd.Variable(n, name="x"), dd.Parameter(n, name="q")
    qp = dd.Problem(dd.Minimize(0.5 * dd.sum_squares(x) + q @ x), [G @ x <= 1])
    layer = TorchLayer(qp, parameters=[q], variables=[x])
    print(repr(layer))

    truth = torch.nn.Linear(features, n).double()
    inputs = torch.randn(batch, features, dtype=torch.float64)
    with torch.no_grad():
        targets, = layer(truth(inputs))

    model = torch.nn.Linear(features, n).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    progress = Progress(range(steps), "training")
    for _ in progress:
        optimizer.zero_grad()
        predicted, = layer(model(inputs))          # a batch of 64 QPs, solved and differentiated
        loss = torch.mean((predicted - targets) ** 2)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        progress.note(loss=loss.item())
    print(f"loss fell from {losses[0]:.3e} to {losses[-1]:.3e} in {steps} steps")
    if out is not None:
        figure, axis = plt.subplots(figsize=(5, 3.5))
        axis.semilogy(losses)
        axis.set(xlabel="step", ylabel="MSE of the QP solutions", title="training through a layer")
        save(figure, out, "demo")
    return losses[0], losses[-1]


if __name__ == "__main__":
    args = arguments(__doc__)
    main()
    train_through_a_layer(steps=15 if args.fast else 100, out=args.out)
