"""Benchmark: structure fast paths (closed-form solution maps) against the cone solver on the
same problems, forward + backward, through the NumPy and PyTorch layers.
Target (issue 8): simplex projection with n = 10⁴, forward + backward ≤ 10 ms."""
from __future__ import annotations

import numpy as np

import diffdsl as dd
from diffdsl.backends.numpy import NumpyLayer


def problems(n):
    th, y = dd.Parameter(n), dd.Variable(n)
    yield "simplex (sparsemax)", dd.Problem(dd.Minimize(dd.sum_squares(y - th)),
                                            [dd.sum(y) == 1, y >= 0]), th, y
    yield "L2 ball", dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [dd.norm(y) <= 1]), th, y
    yield "box", dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [y >= 0, y <= 1]), th, y


def best(fn, repeats=5):
    from bench_analysis import best_of            # the benchmarks run from benchmarks/
    return best_of(fn, repeats)


def main() -> None:
    import torch
    from diffdsl.backends.torch import TorchLayer
    print(f"{'problem':<22} {'n':>6} {'B':>4} | {'closed form (numpy)':>20} "
          f"{'closed form (torch)':>20} {'cone solver (numpy)':>20}")
    for n, batch in [(100, 128), (10_000, 1)]:
        rng = np.random.default_rng(0)
        theta = rng.normal(size=(batch, n))
        g = rng.normal(size=(batch, n))
        for name, prob, th, y in problems(n):
            fast = NumpyLayer(prob, [th], [y])
            t_fast = best(lambda f=fast, v=theta, w=g: f.solve(v).vjp(w))
            layer = TorchLayer(prob, [th], [y])

            def torch_step(layer=layer, v=theta, w=g):
                t = torch.tensor(v, requires_grad=True)
                (layer(t)[0] * torch.as_tensor(w)).sum().backward()
            t_torch = best(torch_step)
            if n <= 1000:
                general = NumpyLayer(prob, [th], [y], fast_paths=False)
                t_general = best(lambda s=general, v=theta, w=g: s.solve(v).vjp(w), repeats=1)
                general_text = f"{t_general * 1e3:>17.1f} ms"
            else:
                general_text = f"{'(skipped)':>20}"
            print(f"{name:<22} {n:>6} {batch:>4} | {t_fast * 1e3:>17.2f} ms "
                  f"{t_torch * 1e3:>17.2f} ms {general_text}")


if __name__ == "__main__":
    main()
