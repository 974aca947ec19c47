"""Differentiable control: learn the cost of a constrained MPC controller from demonstrations.

A double integrator (position, velocity) is steered to the origin by model predictive control
with bounded force |u| ≤ 1:

    minimize  Σₜ qᵀ(xₜ ∘ xₜ) + r uₜ²   s.t.  xₜ₊₁ = A xₜ + B uₜ,  |uₜ| ≤ 1,  x₀ given.

An expert's weights (q, r) are unknown; we see its planned controls from several start states
and learn (q, r) — as exp(θ), so they stay positive — by differentiating the MPC layer.

    python examples/mpc_control.py [--fast]
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

import diffdsl as dd
from _common import Progress, arguments, save
from diffdsl.backends.torch import TorchLayer

DT = 0.2
A = np.array([[1.0, DT], [0.0, 1.0]])
B = np.array([[0.0], [DT]])


def mpc_layer(horizon: int) -> TorchLayer:
    x = dd.Variable((horizon + 1, 2), name="x")
    u = dd.Variable((horizon, 1), name="u")
    x0 = dd.Parameter(2, name="x0")
    q = dd.Parameter(2, nonneg=True, name="q")
    r = dd.Parameter(nonneg=True, name="r")
    cost = dd.sum(dd.square(x) @ q) + r * dd.sum_squares(u)
    constraints = [x[0] == x0, x[1:] == x[:-1] @ A.T + u @ B.T, dd.abs(u) <= 1]
    return TorchLayer(dd.Problem(dd.Minimize(cost), constraints),
                      parameters=[x0, q, r], variables=[x, u])


def main(argv=None) -> dict:
    args = arguments(__doc__, argv)
    torch.manual_seed(0)
    horizon, starts, steps = (8, 8, 10) if args.fast else (15, 32, 80)
    layer = mpc_layer(horizon)
    q_true, r_true = torch.tensor([4.0, 0.5], dtype=torch.float64), torch.tensor(0.3,
                                                                                 dtype=torch.float64)
    x0 = 3 * torch.randn(starts, 2, dtype=torch.float64)
    with torch.no_grad():
        x_demo, u_demo = layer(x0, q_true, r_true)

    theta = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))     # log q, log r
    optimizer = torch.optim.Adam([theta], lr=0.1)
    losses = []
    progress = Progress(range(steps), "learning the cost")
    for _ in progress:
        optimizer.zero_grad()
        weights = torch.exp(theta)
        _, u = layer(x0, weights[:2], weights[2])
        loss = torch.mean((u - u_demo) ** 2)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        progress.note(loss=loss.item())

    learned = torch.exp(theta).detach()
    ratio_true = (q_true / r_true).numpy()
    ratio_learned = (learned[:2] / learned[2]).numpy()
    print(f"q/r true {np.round(ratio_true, 2)}, learned {np.round(ratio_learned, 2)} "
          "(the plan depends on the weights only through these ratios)")
    with torch.no_grad():
        x_fit, _ = layer(x0[:1], learned[:2], learned[2])
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.semilogy(losses)
    left.set(xlabel="step", ylabel="MSE of planned controls", title="learning (q, r)")
    right.plot(x_demo[0, :, 0], x_demo[0, :, 1], "o-", label="expert")
    right.plot(x_fit[0, :, 0], x_fit[0, :, 1], "x--", label="learned cost")
    right.set(xlabel="position", ylabel="velocity", title="a planned trajectory")
    right.legend()
    save(figure, args.out, "mpc_control")
    return {"first": losses[0], "last": losses[-1]}


if __name__ == "__main__":
    main()
