"""Projection layers as activations: sparsemax (projection onto the simplex), a box and an
L2 ball, each inside a small classifier trained on three interleaved spirals.

Each activation is a Euclidean projection  y = argmin ‖y − v‖²  s.t.  y ∈ C,  written as a
diffdsl problem and used as a TorchLayer between two linear maps.

    python examples/projection_layers.py [--fast]
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

import diffdsl as dd
from _common import Progress, arguments, save
from diffdsl.backends.torch import TorchLayer


def projection(kind: str, width: int) -> TorchLayer:
    v, y = dd.Parameter(width, name="v"), dd.Variable(width, name="y")
    sets = {"sparsemax (simplex)": [dd.sum(y) == 1, y >= 0],
            "box [0, 1]": [y >= 0, y <= 1],
            "L2 ball": [dd.norm(y) <= 1]}
    return TorchLayer(dd.Problem(dd.Minimize(dd.sum_squares(y - v)), sets[kind]),
                      parameters=[v], variables=[y])


def spirals(points: int, rng) -> tuple[torch.Tensor, torch.Tensor]:
    labels = rng.integers(0, 3, size=points)
    radius = rng.uniform(0.1, 1.0, size=points)
    angle = 3.0 * radius + labels * 2 * np.pi / 3 + 0.15 * rng.normal(size=points)
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return torch.tensor(X), torch.tensor(labels)


class Classifier(torch.nn.Module):
    def __init__(self, activation: TorchLayer, width: int) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(2, width).double()
        self.activation = activation
        self.outer = torch.nn.Linear(width, 3).double()

    def forward(self, x):
        hidden, = self.activation(3 * self.inner(x))
        return self.outer(hidden)


def main(argv=None) -> dict:
    args = arguments(__doc__, argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    width, points, steps = (8, 64, 4) if args.fast else (12, 192, 60)
    X, labels = spirals(points, rng)
    curves = {}
    for kind in ("sparsemax (simplex)", "box [0, 1]", "L2 ball"):
        model = Classifier(projection(kind, width), width)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        accuracy = []
        progress = Progress(range(steps), f"{kind:<20}")
        for _ in progress:
            optimizer.zero_grad()
            logits = model(X)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            loss.backward()
            optimizer.step()
            accuracy.append((logits.argmax(1) == labels).double().mean().item())
            progress.note(loss=loss.item(), accuracy=accuracy[-1])
        curves[kind] = accuracy
    for kind, acc in curves.items():
        print(f"{kind:<20} training accuracy {acc[0]:.2f} → {acc[-1]:.2f}")
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for kind, acc in curves.items():
        axis.plot(acc, label=kind)
    axis.set(xlabel="step", ylabel="training accuracy", title="projection activations")
    axis.legend()
    save(figure, args.out, "projection_layers")
    return {kind: acc[-1] for kind, acc in curves.items()}


if __name__ == "__main__":
    main()
