"""solver="native": the batched interior-point method against Clarabel (refined) on LPs and
QPs, batched against one-by-one, failures reported, and derivatives at its solutions."""
import numpy as np
import pytest

import diffdsl as dd
from problem_corpus import random_problem

rng = np.random.default_rng(31)


def dense_qp(n=20, m=25, p=4):
    B = rng.normal(size=(n, n))
    Q = B @ B.T / n + np.eye(n)
    G, F = rng.normal(size=(m, n)), rng.normal(size=(p, n))
    x, q, h = dd.Variable(n), dd.Parameter(n), dd.Parameter(m)
    prob = dd.Problem(dd.Minimize(0.5 * dd.quad_form(x, Q) + q @ x), [G @ x <= h, F @ x == 0])
    return prob, x, (rng.normal(size=(16, n)), np.abs(rng.normal(size=(16, m))) + 0.5)


def test_qp_batch_matches_clarabel():
    prob, x, values = dense_qp()
    native = prob.compile(solver="native").solve(*values)
    exact = prob.compile().solve(*values, refine=True)
    assert all(s is dd.SolveStatus.OPTIMAL for s in native.status)
    np.testing.assert_allclose(native[x], exact[x], atol=1e-6)
    np.testing.assert_allclose(native.objective, exact.objective, rtol=1e-7, atol=1e-7)
    for i in (0, 7):
        single = prob.compile(solver="native").solve(values[0][i], values[1][i])
        np.testing.assert_allclose(single[x], native[x][i], atol=1e-8)


def test_lp_vertex_matches_clarabel():
    n, m = 6, 10
    x, c = dd.Variable(n), dd.Parameter(n)
    G = rng.normal(size=(m, n))
    prob = dd.Problem(dd.Minimize(c @ x), [G @ x <= 1, x >= -3, x <= 3])
    costs = rng.normal(size=(8, n))
    native = prob.compile(solver="native").solve(costs)
    exact = prob.compile().solve(costs, refine=True)
    np.testing.assert_allclose(native.objective, exact.objective, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(native[x], exact[x], atol=1e-5)


def test_random_lp_qp_corpus_matches_clarabel():
    compared = 0
    for seed in range(400):
        made = random_problem(seed)
        if made is None:
            continue
        prob, _ = made
        dpp = prob.is_dpp()
        try:
            native = dd.CompiledProblem(prob, solver="native", parameters_as_constants=not dpp)
        except dd.SolverError:
            continue                                    # cones other than zero / nonneg
        reference = dd.CompiledProblem(prob, parameters_as_constants=not dpp)
        values = {p: p.value for p in native.parameters}
        a, b = native.solve(values), reference.solve(values, refine=True)
        if b.status[0] is not dd.SolveStatus.OPTIMAL:
            continue
        assert a.status[0].is_optimal, (seed, str(prob), a.status[0])
        assert abs(a.objective[0] - b.objective[0]) <= 1e-6 * max(1.0, abs(b.objective[0]))
        compared += 1
    assert compared >= 20


def test_infeasible_elements_are_reported_not_crashed():
    x, h = dd.Variable(), dd.Parameter()
    prob = dd.Problem(dd.Minimize(dd.square(x)), [x >= 1, x <= h])
    sol = prob.compile(solver="native", max_iter=30).solve(np.array([2.0, 0.0]))
    assert sol.status[0] is dd.SolveStatus.OPTIMAL
    assert not sol.status[1].is_optimal and np.isnan(sol[x][1])
    assert sol[x][0] == pytest.approx(1.0, abs=1e-7)


def test_batched_derivative_at_native_solutions_matches_the_hsde_one():
    """The native solver's one-LU-per-batch derivative (reverse and forward) against the
    per-element HSDE derivative at Clarabel's solutions."""
    prob, x, values = dense_qp()
    q, h = prob.parameters()
    native = prob.compile(solver="native").solve(*values)
    assert native._batch_derivative is not None and native._batch_derivative.usable.all()
    reference = prob.compile().solve(*values)
    g = rng.normal(size=values[0].shape)
    a, b = native.vjp({x: g}), reference.vjp({x: g})
    np.testing.assert_allclose(a[q], b[q], atol=1e-8)
    np.testing.assert_allclose(a[h], b[h], atol=1e-8)
    dh = rng.normal(size=values[1].shape)
    np.testing.assert_allclose(native.jvp({h: dh})[0][x], reference.jvp({h: dh})[0][x],
                               atol=1e-8)


def test_torch_layer_with_the_native_solver():
    torch = pytest.importorskip("torch")
    from diffdsl.backends.torch import TorchLayer
    prob, x, values = dense_qp()
    q, h = prob.parameters()
    grads = []
    for solver in ("native", "clarabel"):
        layer = TorchLayer(prob, [q, h], [x], solver=solver)
        qt = torch.tensor(values[0], requires_grad=True)
        out, = layer(qt, torch.tensor(values[1]))
        out.square().sum().backward()
        grads.append(qt.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-8)
