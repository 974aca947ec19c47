"""Benchmark: QP layers end to end (forward, and forward + backward of a scalar loss) in
PyTorch — diffdsl with Clarabel, diffdsl with its batched native solver, cvxpylayers and
qpth — on the same instances, with each tool's gradient error against an exact reference
(the KKT system of the active set at the exact solution). Writes a PNG chart.

Issue 8 targets (2 cores): dense QP n=50, m=50, p=10, B=64 — ≥10× faster than cvxpylayers
and no slower than qpth; OptNet QP n=100, m=100, B=128 — no slower than qpth. The last two
columns are forward + backward time ratios (cvxpylayers' time / this tool's, qpth's / this
tool's): above 1 means faster than that tool.
"""
from __future__ import annotations

import pathlib
import time

import numpy as np
import torch

import diffdsl as dd
from diffdsl.backends.torch import TorchLayer

OUT = pathlib.Path(__file__).resolve().parent / "out"


def instance(n, m, p, batch, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(n, n))
    Q = B @ B.T / n + np.eye(n)
    G, F = rng.normal(size=(m, n)), rng.normal(size=(p, n))
    q = rng.normal(size=(batch, n))
    h = np.abs(rng.normal(size=(batch, m))) + 0.5
    return Q, G, F, q, h


def reference_gradient(Q, G, F, q, h, g):
    """dL/dq for L = Σ⟨g, x*⟩ by the KKT system of each element's active set."""
    n = len(Q)
    x, qp, hp = dd.Variable(n), dd.Parameter(n), dd.Parameter(len(G))
    cons = [G @ x <= hp] + ([F @ x == 0] if len(F) else [])
    sol = dd.Problem(dd.Minimize(0.5 * dd.quad_form(x, Q) + qp @ x), cons).compile(
        fast_paths=False).solve(q, h, refine=True)
    out = []
    for i in range(len(q)):
        active = np.abs(G @ sol[x][i] - h[i]) <= 1e-8
        C = np.vstack([G[active], F])
        K = np.block([[Q, C.T], [C, np.zeros((len(C), len(C)))]])
        out.append(-np.linalg.solve(K, np.concatenate([g[i], np.zeros(len(C))]))[:n])
    return np.array(out)


def diffdsl_layer(Q, G, F, solver):
    n = len(Q)
    x, qp, hp = dd.Variable(n), dd.Parameter(n), dd.Parameter(len(G))
    cons = [G @ x <= hp] + ([F @ x == 0] if len(F) else [])
    layer = TorchLayer(dd.Problem(dd.Minimize(0.5 * dd.quad_form(x, Q) + qp @ x), cons),
                       [qp, hp], [x], solver=solver)
    return lambda q, h: layer(q, h)[0]


def cvxpylayers_layer(Q, G, F):
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer
    n = len(Q)
    x, qp, hp = cp.Variable(n), cp.Parameter(n), cp.Parameter(len(G))
    cons = [G @ x <= hp] + ([F @ x == 0] if len(F) else [])
    layer = CvxpyLayer(cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, Q) + qp @ x), cons),
                       parameters=[qp, hp], variables=[x])
    return lambda q, h: layer(q, h)[0]


def qpth_layer(Q, G, F, device="cpu"):
    from qpth.qp import QPFunction
    Qt, Gt = torch.tensor(Q, device=device), torch.tensor(G, device=device)
    Ft = torch.tensor(F, device=device) if len(F) else torch.empty(
        0, dtype=torch.float64, device=device)
    zero = torch.zeros(len(F), dtype=torch.float64, device=device)
    return lambda q, h: QPFunction(verbose=-1)(Qt, q, Gt, h, Ft, zero)


def measure(layer, q, h, g, repeats=4, device="cpu"):
    best_f, best_fb, grad = np.inf, np.inf, None
    for _ in range(repeats):
        qt = torch.tensor(q, requires_grad=True, device=device)
        ht, gt = torch.tensor(h, device=device), torch.tensor(g, device=device)
        _sync(device)
        start = time.perf_counter()
        out = layer(qt, ht)
        _sync(device)
        middle = time.perf_counter()
        (out * gt).sum().backward()
        _sync(device)
        end = time.perf_counter()
        best_f, best_fb = min(best_f, middle - start), min(best_fb, end - start)
        grad = qt.grad.cpu().numpy()
    return best_f, best_fb, grad


def _sync(device) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


def main() -> None:
    tools = [("diffdsl clarabel", lambda Q, G, F: diffdsl_layer(Q, G, F, "clarabel")),
             ("diffdsl native", lambda Q, G, F: diffdsl_layer(Q, G, F, "native"))]
    for name, maker, module in [("cvxpylayers", cvxpylayers_layer, "cvxpylayers"),
                                ("qpth", qpth_layer, "qpth")]:
        try:
            __import__(module)
            tools.append((name, maker))
        except ImportError:
            print(f"({module} not installed: `make bench` installs it)")
    rows = []
    print(f"{'problem':<30} {'tool':<17} {'forward':>9} {'fwd+bwd':>10} {'grad error':>10} "
          f"{'vs cvxpylayers':>14} {'vs qpth':>8}")
    for label, dims in [("dense QP n=50 m=50 p=10 B=64", (50, 50, 10, 64)),
                        ("OptNet QP n=100 m=100 B=128", (100, 100, 0, 128))]:
        Q, G, F, q, h = instance(*dims)
        g = np.random.default_rng(1).normal(size=q.shape)
        exact = reference_gradient(Q, G, F, q, h, g)
        results = {}
        for tool, maker in tools:
            layer = maker(Q, G, F)
            layer(torch.tensor(q[:2]), torch.tensor(h[:2]))            # warm up
            f, fb, grad = measure(layer, q, h, g)
            results[tool] = (f, fb, np.abs(grad - exact).max() / np.abs(exact).max())
            rows.append((label, tool, f, fb))
        for tool, (f, fb, err) in results.items():
            # fwd+bwd ratios: how many times faster than cvxpylayers / qpth this tool is
            ratios = [f"{results[other][1] / fb:>{width - 1}.1f}×" if other in results
                      else f"{'-':>{width}}" for other, width in (("cvxpylayers", 14),
                                                                  ("qpth", 8))]
            print(f"{label:<30} {tool:<17} {f * 1e3:>6.1f} ms {fb * 1e3:>7.1f} ms "
                  f"{err:>10.1e} {ratios[0]} {ratios[1]}")
    chart(rows)
    if torch.cuda.is_available():
        gpu_section(tools)
    else:
        print("(no CUDA device: the GPU section is skipped)")


def gpu_section(tools) -> None:
    """OptNet QP n=100, m=100 at B=128 and B=1024 on the GPU: the native solver runs on the
    CUDA tensors (one batched LU per iteration on the device); qpth likewise."""
    print(f"\nGPU ({torch.cuda.get_device_name()})")
    print(f"{'problem':<34} {'tool':<18} {'forward':>10} {'fwd+bwd':>10} {'grad error':>11}")
    for batch in (128, 1024):
        Q, G, F, q, h = instance(100, 100, 0, batch)
        g = np.random.default_rng(1).normal(size=q.shape)
        exact = reference_gradient(Q, G, F, q, h, g) if batch <= 128 else None
        for tool, maker in tools:
            if tool not in ("diffdsl native", "qpth"):
                continue
            layer = maker(Q, G, F) if tool != "qpth" else qpth_layer(Q, G, F, "cuda")
            layer(torch.tensor(q[:2], device="cuda"), torch.tensor(h[:2], device="cuda"))
            f, fb, grad = measure(layer, q, h, g, device="cuda")
            err = (np.abs(grad - exact).max() / np.abs(exact).max()) if exact is not None \
                else np.nan
            label = f"OptNet QP n=100 m=100 B={batch}"
            print(f"{label:<34} {tool:<18} {f * 1e3:>7.1f} ms {fb * 1e3:>7.1f} ms {err:>11.1e}")


def chart(rows) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    problems = sorted({r[0] for r in rows}, key=[r[0] for r in rows].index)
    tools = sorted({r[1] for r in rows}, key=[r[1] for r in rows].index)
    figure, axis = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(tools)
    for k, tool in enumerate(tools):
        times = [next((r[3] for r in rows if r[0] == p and r[1] == tool), np.nan) * 1e3
                 for p in problems]
        axis.bar(np.arange(len(problems)) + k * width, times, width, label=tool)
    axis.set_xticks(np.arange(len(problems)) + 0.4 - width / 2, problems)
    axis.set(ylabel="forward + backward (ms)", yscale="log", title="QP layers, 2 CPU cores")
    axis.legend()
    OUT.mkdir(exist_ok=True)
    figure.tight_layout()
    figure.savefig(OUT / "bench_layers.png", dpi=100)
    print(f"wrote {OUT / 'bench_layers.png'}")


if __name__ == "__main__":
    main()
