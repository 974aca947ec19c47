"""Sparse coding: a lasso layer inside dictionary learning.

Signals x are sparse combinations of the columns of an unknown dictionary D₀. The layer
computes the sparse code

    z*(x; D) = argmin ½‖D z − x‖² + λ‖z‖₁

and the dictionary D (columns kept at unit norm) is learned by minimizing the lasso's
objective at the codes, ½‖D z*(x; D) − x‖² + λ‖z*‖₁ — differentiating through the lasso,
as in "task-driven dictionary learning" (Mairal, Bach, Ponce 2012).

    python examples/sparse_coding.py [--fast]
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

import diffdsl as dd
from _common import Progress, arguments, save
from diffdsl.backends.torch import TorchLayer

LAMBDA = 0.05


def lasso_layer(dim: int, atoms: int) -> TorchLayer:
    D, x = dd.Parameter((dim, atoms), name="D"), dd.Parameter(dim, name="x")
    z = dd.Variable(atoms, name="z")
    problem = dd.Problem(dd.Minimize(0.5 * dd.sum_squares(D @ z - x) + LAMBDA * dd.norm1(z)))
    return TorchLayer(problem, parameters=[D, x], variables=[z])


def normalized(D: torch.Tensor) -> torch.Tensor:
    return D / D.norm(dim=0, keepdim=True)


def recovery(D: np.ndarray, D_true: np.ndarray) -> float:
    """Mean over true atoms of the best |cosine| with a learned atom."""
    return float(np.abs(D_true.T @ D).max(axis=1).mean())


def main(argv=None) -> dict:
    args = arguments(__doc__, argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    dim, atoms, samples, steps = (6, 4, 32, 5) if args.fast else (8, 6, 96, 200)
    D_true = rng.normal(size=(dim, atoms))
    D_true /= np.linalg.norm(D_true, axis=0)
    codes = rng.normal(size=(samples, atoms)) * (rng.random((samples, atoms)) < 0.35)
    X = torch.tensor(codes @ D_true.T + 0.01 * rng.normal(size=(samples, dim)))

    layer = lasso_layer(dim, atoms)
    D = torch.nn.Parameter(torch.randn(dim, atoms, dtype=torch.float64))
    optimizer = torch.optim.Adam([D], lr=0.05)
    losses, matches = [], []
    progress = Progress(range(steps), "dictionary learning")
    for _ in progress:
        optimizer.zero_grad()
        Dn = normalized(D)
        z, = layer(Dn, X)                              # sparse codes of the whole batch
        residual = torch.sum((z @ Dn.T - X) ** 2, dim=1)
        loss = torch.mean(0.5 * residual + LAMBDA * z.abs().sum(dim=1))
        loss.backward()
        optimizer.step()
        losses.append(residual.mean().item() / dim)
        matches.append(recovery(normalized(D).detach().numpy(), D_true))
        progress.note(objective=loss.item(), recovered=matches[-1])
    print(f"reconstruction error {losses[0]:.3e} → {losses[-1]:.3e}; atoms recovered "
          f"(mean best |cosine|) {matches[0]:.2f} → {matches[-1]:.2f}")

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.semilogy(losses)
    left.set(xlabel="step", ylabel="reconstruction MSE", title="learning the dictionary")
    right.plot(matches)
    right.set(xlabel="step", ylabel="mean best |cosine| with D₀", ylim=(0, 1.05),
              title="recovered atoms")
    save(figure, args.out, "sparse_coding")
    return {"first": losses[0], "last": losses[-1], "recovery": matches[-1]}


if __name__ == "__main__":
    main()
