"""Predict-then-optimize portfolio: a second-order cone program as a layer.

Each period, features f predict the assets' returns μ̂ = W f, and the layer picks the
portfolio with the best predicted return under a risk limit:

    w*(μ̂) = argmax μ̂ᵀw − γ‖w‖²   s.t.  ‖L w‖ ≤ σ_max,  1ᵀw = 1,  w ≥ 0     (Σ = LᵀL)

("decision-focused learning", Donti, Amos & Kolter 2017; Elmachtoub & Grigas 2022). The
prediction model W is trained end to end on the realized return r·w*, and compared with
the same linear model trained two-stage, by least squares on the returns themselves (the
true returns are nonlinear in the features).

    python examples/portfolio.py [--fast]
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

import diffdsl as dd
from _common import Progress, arguments, save
from diffdsl.backends.torch import TorchLayer


def portfolio_layer(assets: int, L: np.ndarray, sigma: float) -> TorchLayer:
    mu, w = dd.Parameter(assets, name="mu"), dd.Variable(assets, name="w")
    problem = dd.Problem(dd.Maximize(mu @ w - 0.05 * dd.sum_squares(w)),
                         [dd.norm(L @ w) <= sigma, dd.sum(w) == 1, w >= 0])
    return TorchLayer(problem, parameters=[mu], variables=[w])


def main(argv=None) -> dict:
    args = arguments(__doc__, argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    assets, features = 8, 4
    periods, steps = (32, 5) if args.fast else (128, 60)
    L = rng.normal(size=(assets, assets)) * 0.1 / np.sqrt(assets)
    layer = portfolio_layer(assets, L, sigma=0.08)

    W_true = rng.normal(size=(assets, features)) * 0.05
    F = torch.tensor(rng.normal(size=(2 * periods, features)))
    noise = 0.05 * rng.normal(size=(2 * periods, assets))
    # realized returns: a nonlinear function of the features, so no linear model is right
    # everywhere and what the decision needs (the ranking near the top) differs from the
    # least-squares fit
    R = 0.1 * torch.tanh(4 * F @ torch.tensor(W_true.T)) + torch.tensor(noise)
    train, test = slice(0, periods), slice(periods, 2 * periods)

    def realized(W, rows) -> torch.Tensor:
        w, = layer(F[rows] @ W.T)
        return torch.mean(torch.sum(w * R[rows], dim=1))

    W_two_stage = torch.linalg.lstsq(F[train], R[train]).solution.T     # fit the returns
    W = torch.nn.Parameter(W_two_stage.clone())
    optimizer = torch.optim.Adam([W], lr=0.01)
    history = []
    progress = Progress(range(steps), "decision-focused training")
    for _ in progress:
        optimizer.zero_grad()
        loss = -realized(W, train)                    # maximize the realized return
        loss.backward()
        optimizer.step()
        history.append(-loss.item())
        progress.note(train_return=-loss.item())
    with torch.no_grad():
        two_stage = realized(W_two_stage, test).item()
        end_to_end = realized(W, test).item()
    print(f"mean realized return on held-out periods: two-stage {two_stage:.4f}, "
          f"end-to-end {end_to_end:.4f}")

    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot(history, label="end-to-end (training periods)")
    axis.axhline(two_stage, color="gray", linestyle="--", label="two-stage (held out)")
    axis.axhline(end_to_end, color="tab:green", linestyle=":", label="end-to-end (held out)")
    axis.set(xlabel="step", ylabel="mean realized return", title="predict-then-optimize")
    axis.legend()
    save(figure, args.out, "portfolio")
    return {"two_stage": two_stage, "end_to_end": end_to_end}


if __name__ == "__main__":
    main()
