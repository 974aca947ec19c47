"""The grid of problems every layer test runs on: one per cone family (LP, QP, SOCP,
exponential, PSD). Each builder returns a ``LayerCase``: a DPP problem, its parameters in
call order, the variables to return, a constraint whose dual is also requested, and
parameter values at which the solution map is differentiable (strict complementarity
holds with margin, so finite differences with steps ~1e-6 stay on one smooth piece)."""
from __future__ import annotations

import dataclasses

import numpy as np

import diffdsl as dd


@dataclasses.dataclass
class LayerCase:
    name: str
    problem: dd.Problem
    parameters: list
    variables: list
    dual: object
    values: list                     # one unbatched value per parameter

    def batched_values(self, batch: int, seed: int = 0) -> list:
        """A batch around ``values`` (small perturbations keep the active sets)."""
        r = np.random.default_rng(seed)
        return [v + 0.01 * r.normal(size=(batch,) + np.shape(v)) for v in self.values]


def lp() -> LayerCase:
    """min cᵀx s.t. Gx ≤ h, −2 ≤ x ≤ 2: a nondegenerate vertex moving linearly with h."""
    r = np.random.default_rng(10)
    n, m = 3, 5
    G = r.normal(size=(m, n))
    x, c, h = dd.Variable(n, name="x"), dd.Parameter(n, name="c"), dd.Parameter(m, name="h")
    con = G @ x <= h
    prob = dd.Problem(dd.Minimize(c @ x), [con, x >= -2, x <= 2])
    return LayerCase("LP", prob, [c, h], [x], con,
                     [np.array([1.0, -0.5, 0.3]), np.abs(r.normal(size=m)) + 0.5])


def qp() -> LayerCase:
    r = np.random.default_rng(11)
    n, m = 4, 6
    G = r.normal(size=(m, n))
    x, q, h = dd.Variable(n, name="x"), dd.Parameter(n, name="q"), dd.Parameter(m, name="h")
    con = G @ x <= h
    prob = dd.Problem(dd.Minimize(dd.sum_squares(x) + q @ x), [con])
    return LayerCase("QP", prob, [q, h], [x], con,
                     [3 * r.normal(size=n), np.abs(r.normal(size=m)) + 0.1])


def socp() -> LayerCase:
    """Projection of a onto the ball ‖x‖ ≤ t, with a outside it."""
    n = 4
    x, a, t = dd.Variable(n, name="x"), dd.Parameter(n, name="a"), dd.Parameter(name="t")
    con = dd.norm(x) <= t
    prob = dd.Problem(dd.Minimize(dd.sum_squares(x - a)), [con])
    return LayerCase("SOCP", prob, [a, t], [x], con,
                     [np.array([2.0, -1.0, 0.5, 1.5]), np.array(1.2)])


def exponential() -> LayerCase:
    """Softmax as argmax θᵀy + Σ entr(y) s.t. 1ᵀy = 1."""
    n = 4
    y, theta = dd.Variable(n, name="y"), dd.Parameter(n, name="theta")
    con = dd.sum(y) == 1
    prob = dd.Problem(dd.Maximize(theta @ y + dd.sum(dd.entr(y))), [con])
    return LayerCase("exponential", prob, [theta], [y], con,
                     [np.array([0.5, -1.0, 1.5, 0.0])])


def psd() -> LayerCase:
    """Projection of S onto the PSD cone (S with eigenvalues of both signs)."""
    n = 3
    X, S = dd.Variable((n, n), symmetric=True, name="X"), dd.Parameter((n, n), name="S")
    con = X >> 0
    prob = dd.Problem(dd.Minimize(dd.sum_squares(X - S)), [con])
    value = np.array([[1.0, 0.5, -0.3], [0.5, -0.8, 0.2], [-0.3, 0.2, 0.6]])
    return LayerCase("PSD", prob, [S], [X], con, [value])


CASES = [lp, qp, socp, exponential, psd]
IDS = ["LP", "QP", "SOCP", "exponential", "PSD"]
