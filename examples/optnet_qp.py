"""OptNet-style QP layer: learn the constraints of a quadratic program from its solutions.

Data come from an unknown QP  z*(p) = argmin ½‖z‖² + pᵀz  s.t.  G₀z ≤ h₀.  A TorchLayer with
the same form but learnable G and h is trained on pairs (p, z*) by the mean squared error of
its solutions, as in Amos & Kolter (2017), "OptNet", section 5. ``solver="auto"`` picks the
batched native solver here (a QP with a definite P), which runs the whole batch at once.

    python examples/optnet_qp.py [--fast]
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

import diffdsl as dd
from _common import Progress, arguments, save
from diffdsl.backends.torch import TorchLayer


def qp_layer(n: int, m: int) -> TorchLayer:
    z = dd.Variable(n, name="z")
    p, G, h = dd.Parameter(n, name="p"), dd.Parameter((m, n), name="G"), dd.Parameter(m, name="h")
    problem = dd.Problem(dd.Minimize(0.5 * dd.sum_squares(z) + p @ z), [G @ z <= h])
    return TorchLayer(problem, parameters=[p, G, h], variables=[z], solver="auto")


def main(argv=None) -> dict:
    args = arguments(__doc__, argv)
    torch.manual_seed(0)
    n, m = 4, 6
    samples, steps = (64, 15) if args.fast else (256, 150)
    layer = qp_layer(n, m)

    G_true = torch.randn(m, n, dtype=torch.float64)
    h_true = torch.rand(m, dtype=torch.float64) + 0.2
    p_data = 2 * torch.randn(samples, n, dtype=torch.float64)
    with torch.no_grad():
        z_data, = layer(p_data, G_true, h_true)

    G = torch.nn.Parameter(torch.randn(m, n, dtype=torch.float64))
    h = torch.nn.Parameter(torch.ones(m, dtype=torch.float64))
    optimizer = torch.optim.Adam([G, h], lr=0.05)
    losses = []
    progress = Progress(range(steps), "training")
    for _ in progress:
        optimizer.zero_grad()
        z, = layer(p_data, G, h)          # one batched solve and one batched backward
        loss = torch.mean((z - z_data) ** 2)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        progress.note(loss=loss.item())

    print(f"mean squared error of the layer's solutions: {losses[0]:.3e} → {losses[-1]:.3e}")
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.semilogy(losses)
    axis.set(xlabel="step", ylabel="MSE of z*(p)", title="OptNet: learning G and h")
    save(figure, args.out, "optnet_qp")
    return {"first": losses[0], "last": losses[-1]}


if __name__ == "__main__":
    main()
