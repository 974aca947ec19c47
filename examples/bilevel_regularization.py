"""Bilevel hyperparameter tuning in forward mode: learn ridge and lasso regularization
weights by the gradient of a validation loss.

    inner:  w*(λ) = argmin ‖A w − b‖² + λ R(w),     R = ‖w‖² (ridge) or ‖w‖₁ (lasso)
    outer:  minimize over log λ   V(λ) = ‖A_val w*(λ) − b_val‖² / N_val

One hyperparameter and many outputs is the case for forward mode: dV/dλ costs one JVP,
dw*/dλ = NumpyLayer.jvp(1), whatever the number of weights.

    python examples/bilevel_regularization.py [--fast]
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

import diffdsl as dd
from _common import Progress, arguments, save
from diffdsl.backends.numpy import NumpyLayer


def regression_layer(A: np.ndarray, b: np.ndarray, penalty: str) -> NumpyLayer:
    w, lam = dd.Variable(A.shape[1], name="w"), dd.Parameter(nonneg=True, name="lam")
    regularizer = dd.sum_squares(w) if penalty == "ridge" else dd.norm1(w)
    problem = dd.Problem(dd.Minimize(dd.sum_squares(A @ w - b) + lam * regularizer))
    return NumpyLayer(problem, parameters=[lam], variables=[w])


def validation(layer, lam: float, A_val, b_val) -> tuple[float, float]:
    """V(λ) and dV/dλ, the latter by one forward-mode derivative."""
    result = layer.solve(lam)
    w, = result.outputs
    residual = A_val @ w - b_val
    dw, = result.jvp(1.0)
    return float(residual @ residual / len(b_val)), float(2 * residual @ (A_val @ dw)
                                                          / len(b_val))


def main(argv=None) -> dict:
    args = arguments(__doc__, argv)
    rng = np.random.default_rng(0)
    features, steps = (15, 8) if args.fast else (40, 40)
    w_true = rng.normal(size=features) * (rng.random(features) < 0.3)
    A, A_val = rng.normal(size=(30, features)), rng.normal(size=(200, features))
    b = A @ w_true + 0.8 * rng.normal(size=30)
    b_val = A_val @ w_true + 0.8 * rng.normal(size=200)

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    found = {}
    for axis, penalty in zip(axes, ("ridge", "lasso"), strict=True):
        layer = regression_layer(A, b, penalty)
        log_lam = 0.0
        path = []
        progress = Progress(range(steps), f"tuning {penalty:<5}")
        for _ in progress:
            value, grad = validation(layer, np.exp(log_lam), A_val, b_val)
            path.append((np.exp(log_lam), value))
            log_lam -= 0.5 * np.clip(grad * np.exp(log_lam), -2, 2)   # chain rule: dV/dlog λ
            progress.note(lam=float(np.exp(log_lam)), validation=value)
        grid = np.exp(np.linspace(-3, 4, 12 if args.fast else 40))
        curve = [validation(layer, lam, A_val, b_val)[0] for lam in grid]
        found[penalty] = path[-1]
        print(f"{penalty}: λ {path[0][0]:.2f} → {path[-1][0]:.2f}, validation loss "
              f"{path[0][1]:.3f} → {path[-1][1]:.3f} (grid minimum {min(curve):.3f})")
        axis.semilogx(grid, curve, color="gray", label="validation loss")
        lams, values = zip(*path, strict=True)
        axis.semilogx(lams, values, "o-", markersize=3, label="gradient steps")
        axis.set(xlabel="λ", ylabel="validation MSE", title=penalty)
        axis.legend()
    save(figure, args.out, "bilevel_regularization")
    return found


if __name__ == "__main__":
    main()
