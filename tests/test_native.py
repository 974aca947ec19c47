"""solver="native": the batched interior-point method against Clarabel (refined) on LPs and
QPs, batched against one-by-one, failures reported, and derivatives at its solutions."""
import contextlib
import types

import numpy as np
import pytest

import diffdsl as dd
from problem_corpus import random_problems

rng = np.random.default_rng(31)


# the references are Clarabel's answers refined one element at a time (conftest)
pytestmark = pytest.mark.usefixtures("one_by_one_references")


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
    for seed, prob, _ in random_problems():
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


# ------------------------------------------------------------------ second-order cones
def portfolio_socp(n=8, B=6):
    """max μᵀw − γ‖Lᵀw‖ s.t. 1ᵀw = 1, w ≥ 0 (risk as a norm: a second-order cone)."""
    L = rng.normal(size=(n, n)) / np.sqrt(n)
    w, mu = dd.Variable(n), dd.Parameter(n)
    prob = dd.Problem(dd.Maximize(mu @ w - 0.5 * dd.norm(L.T @ w) - 0.05 * dd.sum_squares(w)),
                      [dd.sum(w) == 1, w >= 0])
    return prob, w, mu, 0.3 * rng.normal(size=(B, n))


def test_socp_batch_matches_clarabel_and_its_derivative_matches_the_hsde_one():
    prob, w, mu, values = portfolio_socp()
    native = prob.compile(solver="native").solve(values)
    exact = prob.compile().solve(values, refine=True)
    assert prob.compile(solver="native").program.cones.soc
    assert all(s is dd.SolveStatus.OPTIMAL for s in native.status)
    np.testing.assert_allclose(native[w], exact[w], atol=1e-6)
    np.testing.assert_allclose(native.objective, exact.objective, rtol=1e-8, atol=1e-8)
    batch = native._batch_derivative
    assert batch is not None and batch.usable.any()
    g = rng.normal(size=values.shape)
    np.testing.assert_allclose(native.vjp({w: g})[mu], exact.vjp({w: g})[mu], atol=1e-8)
    np.testing.assert_allclose(native.jvp({mu: g})[0][w], exact.jvp({mu: g})[0][w], atol=1e-8)


@pytest.mark.parametrize("name", ["numpy", "torch", "jax"])
def test_bound_space_solves_the_newton_system_exactly(name):
    """BoundSpace's solve of P dx + Aᵀu = a, A dx − Hu = c (bound rows eliminated) against a
    dense solve of the whole system: diagonal P with zeros on bounded variables, an
    equality row, bounds, a general inequality and a second-order cone, H the NT scaling's
    W² (zero on the equality row but for the shift)."""
    pytest.importorskip(name)
    if name == "jax":
        import jax
        with jax.enable_x64(True):
            _bound_space_case(name)
    else:
        _bound_space_case(name)


def _bound_space_case(name):
    from diffdsl.solvers import arrays, ipm
    ops = arrays.namespace(name)
    r = np.random.default_rng(40)
    n, B = 5, 3
    cones = ipm.Cones(ops, 1, 6, (3,))
    A = np.zeros((B, 10, n))
    A[:, 0] = r.normal(size=(B, n))                                  # equality
    A[:, 1, 0], A[:, 2, 1], A[:, 3, 1], A[:, 5, 3] = 1.0, -2.0, 1.5, -1.0   # bounds
    A[:, 4] = r.normal(size=(B, n))                                  # a general row
    A[:, 6, 4] = 0.5                                                 # a bound among them
    A[:, 7:] = r.normal(size=(B, 3, n))                              # the cone
    p = np.array([0.0, 0.0, 2.0, 0.0, 1.0])                          # x₀, x₁, x₃ bounded
    P = np.broadcast_to(np.diag(p), (B, n, n)).copy()
    bounds = ipm.bound_rows(*np.nonzero(A[0]), cones)
    np.testing.assert_array_equal(bounds[0], [1, 2, 3, 5, 6])
    interior = np.abs(r.normal(size=(B, 9))) + 0.5
    interior[:, 6] = np.linalg.norm(interior[:, 7:], axis=1) + 0.5
    W = ipm.Scaling.at(cones, ops.constant(interior), ops.constant(interior + 0.1))
    diag, block = (np.array(ops.to_numpy(a)) for a in W.squared(1))
    diag[:, 0] = ipm.REGULARIZATION
    space = ipm.BoundSpace.of(ops, ops.constant(P), ops.constant(A), 1, bounds, rivals=6)
    assert space is not None and space.size == 5
    a, c = r.normal(size=(B, n)), r.normal(size=(B, 10))
    factors = space.factor(ops, ops.constant(diag), ops.constant(block))
    dx, u = (ops.to_numpy(v) for v in space.solve(ops, factors, ops.constant(a),
                                                    ops.constant(c)))
    H = np.zeros((B, 10, 10))
    H[:, np.arange(10), np.arange(10)] = diag
    H[:, 7:, 7:] += block
    K = np.block([[P, A.transpose(0, 2, 1)], [A, -H]])
    expected = np.linalg.solve(K, np.concatenate([a, c], 1)[..., None])[..., 0]
    np.testing.assert_allclose(np.concatenate([dx, u], 1), expected, rtol=1e-9, atol=1e-9)
    # the method's systems: c zero off the equality row, only that row's u wanted
    c[:, 1:] = 0.0
    expected = np.linalg.solve(K, np.concatenate([a, c], 1)[..., None])[..., 0]
    dx, u_e = (ops.to_numpy(v) for v in space.solve_equalities(
        ops, factors, ops.constant(a), ops.constant(c[:, :1])))
    np.testing.assert_allclose(np.concatenate([dx, u_e], 1), expected[:, :n + 1], rtol=1e-9,
                               atol=1e-9)
    # where a variable has neither a quadratic term nor a bound there is no bound space
    assert ipm.BoundSpace.of(ops, ops.constant(0 * P), ops.constant(A), 1, bounds, 6) is None


def bounded_problems():
    """Problems whose native Newton systems go to the bound space: the simplex projection
    (sparsemax without its fast path: one other row), a box-bounded LP with a budget row
    (P = 0, every variable bounded; its vertex has one variable between its bounds), and
    a long-only portfolio with a risk cone."""
    n = 12
    y, th = dd.Variable(n), dd.Parameter(n)
    simplex = dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [dd.sum(y) == 1, y >= 0])
    z, c = dd.Variable(n), dd.Parameter(n)
    box_lp = dd.Problem(dd.Minimize(c @ z), [z >= -1, z <= 2, dd.sum(z) == 2.5])
    w, mu = dd.Variable(n), dd.Parameter(n)
    F = rng.normal(size=(3, n)) / np.sqrt(n)
    portfolio = dd.Problem(dd.Maximize(mu @ w - 0.1 * dd.sum_squares(w)),
                           [dd.norm(F @ w) <= 0.3, dd.sum(w) == 1, w >= 0])
    return [(simplex, y, th, rng.normal(size=(5, n))),
            (box_lp, z, c, rng.normal(size=(5, n))),
            (portfolio, w, mu, 0.3 * rng.normal(size=(5, n)))]


@pytest.mark.parametrize("case", range(3), ids=["simplex", "box LP", "portfolio"])
def test_bounded_problems_take_the_bound_space_and_match_clarabel(case, monkeypatch):
    from diffdsl.solvers import ipm
    prob, x, theta, values = bounded_problems()[case]
    taken = []
    original = ipm.BoundSpace.of

    def spy(*args, **kwargs):
        taken.append(original(*args, **kwargs))
        return taken[-1]

    monkeypatch.setattr(ipm.BoundSpace, "of", spy)
    native = prob.compile(solver="native", fast_paths=False).solve(values)
    assert taken and taken[0] is not None
    exact = prob.compile(fast_paths=False).solve(values, refine=True)
    assert all(s is dd.SolveStatus.OPTIMAL for s in native.status)
    np.testing.assert_allclose(native[x], exact[x], atol=1e-7)
    assert native._batch_derivative.usable.all()
    g = rng.normal(size=native[x].shape)
    np.testing.assert_allclose(native.vjp({x: g})[theta], exact.vjp({x: g})[theta],
                               atol=1e-8)


def test_an_lp_with_many_general_rows_iterates_in_x_space_and_differentiates_by_bounds():
    """A box-bounded LP with more general rows (20) than variables (8): its iterations'
    systems are smallest in x space, but its derivative's are in the bound space (the
    active bounds fix their variables: at most 20 + 8 unknowns instead of n + m = 44), and
    the gradients there match the HSDE derivative at Clarabel's solutions."""
    from diffdsl.solvers import arrays, ipm
    from diffdsl.solvers import native as adapter
    n, m = 8, 20
    G = rng.normal(size=(m, n))
    x, c, h = dd.Variable(n), dd.Parameter(n), dd.Parameter(m)
    prob = dd.Problem(dd.Minimize(c @ x), [G @ x <= h, x >= -1, x <= 1])
    values = (rng.normal(size=(6, n)), np.abs(rng.normal(size=(6, m))) + 0.5)
    compiled = prob.compile(solver="native", fast_paths=False)
    program, native = compiled.program, compiled.solve(*values)
    P, A = adapter.dense_data(program, native.data)
    _, bounds, in_bounds = ipm.newton_spaces(arrays.namespace("numpy"), P, A, 0,
                                             adapter.bound_rows(program))
    assert bounds is not None and not in_bounds
    derivative = native._batch_derivative.derivative
    assert derivative.reduced is not None
    assert derivative.system.shape[-1] <= m + n < program.n + program.m
    exact = prob.compile(fast_paths=False).solve(*values, refine=True)
    assert all(s is dd.SolveStatus.OPTIMAL for s in native.status)
    np.testing.assert_allclose(native[x], exact[x], atol=1e-7)
    g = rng.normal(size=native[x].shape)
    ours, theirs = native.vjp({x: g}), exact.vjp({x: g})
    for p in (c, h):
        np.testing.assert_allclose(ours[p], theirs[p], atol=1e-8)


def test_a_box_projection_has_no_other_rows_in_the_bound_space():
    """min ‖y − θ‖² s.t. −1 ≤ y ≤ 1: every row is a bound, so the bound space's reduced
    systems are empty (0 × 0) — in the iterations and in the derivative; the answer is
    clip(θ, −1, 1) with Jacobian diag(|θ| < 1)."""
    y, th = dd.Variable(5), dd.Parameter(5)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [y >= -1, y <= 1])
    theta = np.array([[-2.0, -0.5, 0.0, 0.7, 3.0], [0.2, 1.5, -1.3, 0.9, -0.1]])
    sol = prob.compile(solver="native", fast_paths=False).solve(theta)
    derivative = sol._batch_derivative.derivative
    assert derivative.reduced is not None and derivative.bounds.size == 0
    np.testing.assert_allclose(sol[y], np.clip(theta, -1, 1), atol=1e-12)
    g = rng.normal(size=theta.shape)
    np.testing.assert_allclose(sol.vjp({y: g})[th], g * (np.abs(theta) < 1), atol=1e-12)


@pytest.mark.parametrize("case", [0, 2], ids=["simplex", "portfolio"])
def test_bound_space_derivative_equals_the_row_space_one(case):
    """The derivative with the bound rows eliminated (``Derivative(..., bounds)``) against
    the same derivative in row space: solves with M and Mᵀ at Clarabel's points, and the
    polished points."""
    from diffdsl.solvers import arrays, ipm, native
    prob, x, theta, values = bounded_problems()[case]
    compiled = prob.compile(fast_paths=False)
    program, sol = compiled.program, compiled.solve(values)
    ops = arrays.namespace("numpy")
    P, A = native.dense_data(program, sol.data)
    cones = ipm.Cones.of(ops, program.cones)
    rows = ipm.RowSpace.of(ops, P, A, program.cones.zero)
    bounds = ipm.BoundSpace.of(ops, P, A, program.cones.zero,
                               ipm.bound_rows(program.A.indices, program.A.columns,
                                              program.cones), rows.size)
    point = (sol.x, sol.y, sol.s)
    reduced = ipm.Derivative(ops, cones, P, A, *point, rows, bounds)
    full = ipm.Derivative(ops, cones, P, A, *point, rows)
    assert reduced.reduced is not None and full.reduced is None
    assert reduced.system.shape[-1] < full.system.shape[-1]
    for _ in range(2):
        r = rng.normal(size=(len(values), program.n + program.m))
        for transpose in (False, True):
            np.testing.assert_allclose(reduced.solve(r, transpose), full.solve(r, transpose),
                                       rtol=1e-9, atol=1e-9)
        c, b = sol.data.c.T, sol.data.b.T
        np.testing.assert_allclose(reduced.polish(c, b)[0], full.polish(c, b)[0], atol=1e-12)


@pytest.mark.parametrize("radius", [0.02, 10.0], ids=["cone active", "cone inactive"])
def test_the_polished_derivative_is_the_one_at_the_polished_points(radius):
    """``polish`` leaves M factored at the points it returns — refactored where D moved
    (an active cone: D varies with v), kept where it could not have (an inactive cone's D
    is 0 on both points): its solves equal a derivative built afresh there."""
    from diffdsl.solvers import arrays, ipm, native
    n = 10
    w, mu = dd.Variable(n), dd.Parameter(n)
    F = rng.normal(size=(3, n)) / np.sqrt(n)
    prob = dd.Problem(dd.Maximize(mu @ w - 0.1 * dd.sum_squares(w)),
                      [dd.norm(F @ w) <= radius, dd.sum(w) == 1, w >= 0])
    compiled = prob.compile(fast_paths=False)
    program, sol = compiled.program, compiled.solve(0.3 * rng.normal(size=(4, n)))
    ops, k = arrays.namespace("numpy"), program.cones.zero + program.cones.nonneg
    P, A = native.dense_data(program, sol.data)
    cones = ipm.Cones.of(ops, program.cones)
    rows, bounds, _ = ipm.newton_spaces(ops, P, A, program.cones.zero,
                                     native.bound_rows(program))
    d = ipm.Derivative(ops, cones, P, A, sol.x, sol.y, sol.s, rows, bounds)
    x, y, s = d.polish(sol.data.c.T, sol.data.b.T)
    assert d.exact.all()
    inside, polar = ipm._soc_branches(*ipm._cone_parts(cones, (y - s)[:, k:, None]))
    assert (~(inside | polar)).all() if radius < 1 else polar.all()   # the branch meant
    fresh = ipm.Derivative(ops, cones, P, A, x, y, s, rows, bounds)
    r = rng.normal(size=(4, program.n + program.m))
    for transpose in (False, True):
        np.testing.assert_allclose(d.solve(r, transpose), fresh.solve(r, transpose),
                                   rtol=1e-12, atol=1e-12)


def test_bound_space_derivative_refuses_a_variable_with_two_active_bounds():
    """Both bounds of y₀ active (a point where 0 ≤ y₀ ≤ u has u = 0 and both multipliers
    positive): M is singular there, and the derivative keeps its row-space system."""
    from diffdsl.solvers import arrays, ipm
    ops = arrays.namespace("numpy")
    cones = ipm.Cones(ops, 0, 4, ())
    P = 2.0 * np.eye(2)[None]
    A = np.array([[[-1.0, 0.0], [0.0, -1.0], [1.0, 0.0], [0.0, 1.0]]])   # −y ≤ 0, y ≤ u
    bounds = ipm.BoundSpace.of(ops, P, A, 0, ipm.bound_rows(*np.nonzero(A[0]), cones), 4)
    rows = ipm.RowSpace.of(ops, P, A, 0)
    x = np.array([[0.0, 0.5]])
    y = np.array([[1.0, 0.0, 1.0, 0.0]])          # both bounds of y₀ with a positive dual
    s = np.array([[0.0, 0.5, 0.0, 0.5]])
    assert ipm.Derivative(ops, cones, P, A, x, y, s, rows, bounds).reduced is None
    y_one = np.array([[1.0, 0.0, 0.0, 0.0]])
    assert ipm.Derivative(ops, cones, P, A, x, y_one, s, rows, bounds).reduced is not None


def test_a_deferred_row_space_is_made_only_where_the_derivative_falls_back_to_it():
    """``newton_spaces`` defers the row space where the bound space serves (P⁻¹ costs a
    factorization per call): a derivative whose bound system stands never makes it; one
    that falls back to it (both bounds of y₀ active) makes it, and solves as with the row
    space given at once."""
    from diffdsl.solvers import arrays, ipm
    ops = arrays.namespace("numpy")
    cones = ipm.Cones(ops, 0, 4, ())
    P = 2.0 * np.eye(2)[None]
    A = np.array([[[-1.0, 0.0], [0.0, -1.0], [1.0, 0.0], [0.0, 1.0]]])   # −y ≤ 0, y ≤ u
    rows, bounds, _ = ipm.newton_spaces(ops, P, A, 0, ipm.bound_rows(*np.nonzero(A[0]), cones))
    assert isinstance(rows, ipm.Deferred) and bounds is not None
    x, s = np.array([[0.0, 0.5]]), np.array([[0.0, 0.5, 0.0, 0.5]])
    clear = ipm.Derivative(ops, cones, P, A, x, np.array([[1.0, 0.0, 0.0, 0.0]]), s, rows,
                           bounds)
    r = rng.normal(size=(1, 6))
    clear.solve(r)
    assert clear.reduced is not None and "value" not in vars(rows)
    y = np.array([[1.0, 0.0, 1.0, 0.0]])          # both bounds of y₀ with a positive dual
    fallback = ipm.Derivative(ops, cones, P, A, x, y, s, rows, bounds)
    assert fallback.reduced is None and "value" in vars(rows)
    eager = ipm.Derivative(ops, cones, P, A, x, y, s, ipm.RowSpace.of(ops, P, A, 0), bounds)
    for transpose in (False, True):
        np.testing.assert_allclose(fallback.solve(r, transpose), eager.solve(r, transpose),
                                   rtol=1e-14, atol=1e-14)


def _rough_hand_off_case(make):
    """(problem, variable, parameter, values) of the hand-off tests."""
    if make == "qp":
        prob, x, values = dense_qp()
        return prob, x, prob.parameters()[0], values
    if make == "socp":           # projection onto a ball and a halfspace: P definite
        x, q, G = dd.Variable(6), dd.Parameter(6), rng.normal(size=(2, 6))
        prob = dd.Problem(dd.Minimize(dd.sum_squares(x - q)), [dd.norm(x) <= 1, G @ x <= 0.2])
        return prob, x, q, (2 * rng.normal(size=(8, 6)),)
    if make == "portfolio":      # P = 0.2I, w ≥ 0: the bound space, early hand-off
        x, q, F = dd.Variable(10), dd.Parameter(10), rng.normal(size=(3, 10)) / 3
        prob = dd.Problem(dd.Maximize(q @ x - 0.1 * dd.sum_squares(x)),
                          [dd.norm(F @ x) <= 0.3, dd.sum(x) == 1, x >= 0])
        return prob, x, q, (0.3 * rng.normal(size=(8, 10)),)
    # slack-substituted: the bound space, hand-off at HANDOFF
    x, q, M = dd.Variable(12), dd.Parameter(6), rng.normal(size=(6, 12))
    prob = dd.Problem(dd.Minimize(dd.sum_squares(M @ x - q) + 0.3 * dd.norm1(x)))
    return prob, x, q, (rng.normal(size=(8, 6)),)


def _solve_handing_off_at(error, prob, values, monkeypatch):
    """The native solve with both hand-offs at ``error``, and each interior_point call's
    ``start``."""
    from diffdsl.solvers import ipm
    monkeypatch.setattr(ipm, "HANDOFF", error)
    monkeypatch.setattr(ipm, "EARLY_HANDOFF", error)
    starts, original = [], ipm.interior_point

    def spy(*args, **kwargs):
        starts.append(kwargs.get("start"))
        return original(*args, **kwargs)

    monkeypatch.setattr(ipm, "interior_point", spy)
    return prob.compile(solver="native", max_iter=40, fast_paths=False).solve(*values), starts


@pytest.mark.parametrize("make", ["qp", "socp", "portfolio", "lasso"])
def test_elements_the_polish_misses_continue_their_iterations(make, monkeypatch):
    """With the hand-offs far too early (relative error 0.3) the polish cannot finish most
    elements: they continue from where they stopped — after the early hand-off (row
    space; the bound space with a quadratic term on every variable, the portfolio) to
    ``HANDOFF`` and, still unfinished, to the method's tolerance; after the lasso's (its
    bound space keeps free slacks) to the tolerance at once — and the batch still ends
    exact, equal to Clarabel's solutions and the HSDE derivative, within the iteration
    limit."""
    from diffdsl.solvers import ipm
    prob, x, q, values = _rough_hand_off_case(make)
    monkeypatch.setattr(ipm, "POLISH_STEPS", 2)    # (from 0.3 the full polish finishes most)
    native, starts = _solve_handing_off_at(0.3, prob, values, monkeypatch)
    assert starts[0] is None and all(s is not None for s in starts[1:])
    assert len(starts) == (2 if make == "lasso" else 3)         # the continuations ran
    exact = prob.compile().solve(*values, refine=True)
    assert all(s is dd.SolveStatus.OPTIMAL for s in native.status)
    assert max(native.iterations) <= 40
    np.testing.assert_allclose(native[x], exact[x], atol=1e-6)
    assert native._batch_derivative.usable.all()
    g = rng.normal(size=native[x].shape)
    np.testing.assert_allclose(native.vjp({x: g})[q], exact.vjp({x: g})[q], atol=1e-8)


def test_socp_iterations_reach_the_tolerance_where_the_scaling_grows_ill_conditioned(
        monkeypatch):
    """A risk limit ‖Fw‖ ≤ 0.3 active at the solution: near the cone's boundary the NT
    scaling's conditioning grows like 1/μ. The Newton directions' multipliers (dye, dz)
    are the whole system's own unknowns, so the dual residual holds and every element's
    iterations — no hand-off, no polish — reach the tolerance. (With dz formed from dx,
    W⁻¹(rt + W⁻¹A dx), the dual residual grew from 1e-10 to 0.2 after the sixth iteration
    and four of these eight elements ended at the iteration limit with errors ~1e-6.)"""
    from diffdsl.solvers import ipm
    local = np.random.default_rng(0)
    w, mu, F = dd.Variable(10), dd.Parameter(10), local.normal(size=(3, 10)) / 3
    prob = dd.Problem(dd.Maximize(mu @ w - 0.1 * dd.sum_squares(w)),
                      [dd.norm(F @ w) <= 0.3, dd.sum(w) == 1, w >= 0])
    values = 0.3 * local.normal(size=(8, 10))
    monkeypatch.setattr(ipm, "HANDOFF", 0.0)
    monkeypatch.setattr(ipm, "EARLY_HANDOFF", 0.0)
    runs, original = [], ipm.interior_point

    def spy(*args, **kwargs):
        runs.append(original(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(ipm, "interior_point", spy)
    native = prob.compile(solver="native", max_iter=40, fast_paths=False).solve(values)
    (_, _, _, status, iterations, error), = runs
    assert (status == ipm.OPTIMAL).all() and (error <= 1e-10).all()
    assert iterations.max() <= 25
    exact = prob.compile().solve(values, refine=True)
    np.testing.assert_allclose(native[w], exact[w], atol=1e-8)


@pytest.mark.parametrize("soc", [(3, 4), (4,)], ids=["two cones", "one cone"])
@pytest.mark.parametrize("dense_rows", [128, 0], ids=["dense blocks", "rank-one form"])
def test_nesterov_todd_scaling_and_jordan_algebra_identities(dense_rows, soc, monkeypatch):
    """(One cone: its per-cone values broadcast over its rows instead of being gathered.)"""
    from diffdsl.solvers import arrays, ipm
    monkeypatch.setattr(ipm, "DENSE_CONE_ROWS", dense_rows)
    ops = arrays.namespace("numpy")
    cones = ipm.Cones(ops, 0, 2, soc)
    m, heads = 2 + sum(soc), 2 + np.cumsum((0,) + soc)[:-1]
    r = np.random.default_rng(5)

    def interior(B):
        v = r.normal(size=(B, m))
        v[:, :2] = np.abs(v[:, :2]) + 0.1
        for lo, size in zip(heads, soc, strict=True):
            v[:, lo] = np.linalg.norm(v[:, lo + 1:lo + size], axis=1) + 0.4
        return v

    s, z, u = interior(5), interior(5), r.normal(size=(5, m))
    W = ipm.Scaling.at(cones, s, z)
    lam = W.vec(z)
    np.testing.assert_allclose(lam, W.vec(s, inverse=True), atol=1e-12)     # Wz = W⁻¹s
    np.testing.assert_allclose(W.vec(W.vec(u), inverse=True), u, atol=1e-12)
    np.testing.assert_allclose(np.sum(lam * lam, 1), np.sum(s * z, 1), rtol=1e-12)
    np.testing.assert_allclose(cones.circ(lam, cones.inv_circ(lam, u)), u, atol=1e-12)
    # W from its definition, cone by cone: η(−J + uuᵀ/(1 + w̄₀)) with W = Wᵀ, W J W = η² J
    diag, block = W.squared(0)
    for lo, size in zip(heads, soc, strict=True):
        hi = lo + size
        Wk = np.array([W.vec(np.eye(m)[j][None].repeat(5, 0))[:, lo:hi]
                       for j in range(lo, hi)]).transpose(1, 2, 0)
        Jk = np.diag([1.0] + [-1.0] * (hi - lo - 1))
        eta = (np.einsum("bi,ij,bj->b", s[:, lo:hi], Jk, s[:, lo:hi])
               / np.einsum("bi,ij,bj->b", z[:, lo:hi], Jk, z[:, lo:hi])) ** 0.25
        np.testing.assert_allclose(Wk, Wk.transpose(0, 2, 1), atol=1e-12)
        np.testing.assert_allclose(Wk @ Jk @ Wk, eta[:, None, None] ** 2 * Jk, atol=1e-10)
        np.testing.assert_allclose(block[:, lo - 2:hi - 2, lo - 2:hi - 2], Wk @ Wk, atol=1e-10)
    np.testing.assert_allclose(diag[:, :2], s[:, :2] / z[:, :2], rtol=1e-12)
    alpha = cones.max_step(s, u)                     # the ray leaves K exactly at alpha
    assert (cones.min_eigenvalue(s + 0.999 * alpha[:, None] * u) > 0).all()
    assert (cones.min_eigenvalue(s + 1.001 * alpha[:, None] * u) < 0).all()


@pytest.mark.parametrize("zero, nonneg, soc", [(0, 2, (3, 4)), (1, 0, (5,)), (2, 3, (1, 4, 2)),
                                            (0, 4, (6,)), (1, 5, ())])
def test_compiled_cone_kernels_equal_the_array_code(zero, nonneg, soc):
    """numba's loops (``diffdsl.solvers.fused``) against the generic array code, on the
    same cone layouts: products, inverses, step lengths, the NT scaling and projections
    (points inside the cones, in their polars and on neither), read through strided
    views as the method hands them over."""
    pytest.importorskip("numba")
    from diffdsl.solvers import arrays, ipm
    ops = arrays.namespace("hybrid")
    compiled = ipm.Cones(ops, zero, nonneg, soc)
    generic = ipm.Cones(ops, zero, nonneg, soc)
    generic.kernels = None
    assert compiled.kernels is not None
    r = np.random.default_rng(11)
    mi, B = nonneg + sum(soc), 7
    heads = nonneg + np.cumsum(soc) - np.asarray(soc)

    def interior():
        v = r.normal(size=(B, zero + mi + 3))[:, 3:]          # a strided view
        v[:, zero:zero + nonneg] = np.abs(v[:, zero:zero + nonneg]) + 0.1
        for lo, size in zip(zero + heads, soc, strict=True):
            v[:, lo] = np.linalg.norm(v[:, lo + 1:lo + size], axis=1) + r.uniform(0.1, 1)
        return v[:, zero:]

    s, z, u = interior(), interior(), r.normal(size=(B, mi))
    for name, args in [("circ", (s, u)), ("inv_circ", (s, u)), ("max_step", (s, u)),
                       ("max_step", (s, np.abs(u))), ("max_step_pair", (s, u, z, -u))]:
        np.testing.assert_allclose(getattr(compiled, name)(*args),
                                   getattr(generic, name)(*args), rtol=1e-13, atol=1e-14)
    W, V = ipm.Scaling.at(compiled, s, z), ipm.Scaling.at(generic, s, z)
    for a, b in [(W.d, V.d), (W.block, V.block), (W.inverse_block, V.inverse_block)]:
        if b is not None:                                # (no cones: no blocks)
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for inverse in (False, True):
        np.testing.assert_allclose(W.vec(u, inverse), V.vec(u, inverse), rtol=1e-12,
                                   atol=1e-14)
    v = r.normal(size=(3 * B, zero + mi))
    for lo, size in zip(zero + heads, soc, strict=True):
        norm = np.linalg.norm(v[:, lo + 1:lo + size], axis=1)
        v[0::3, lo], v[1::3, lo] = 1.5 * norm[0::3], -1.5 * norm[1::3]   # inside, polar
    np.testing.assert_allclose(ipm.project_dual(compiled, v), ipm.project_dual(generic, v),
                               rtol=1e-13, atol=1e-14)
    jacobians = [ipm.Derivative._soc_jacobian(types.SimpleNamespace(ops=ops, cones=c),
                                              v[:, zero + nonneg:, None])
                 for c in (compiled, generic)]
    np.testing.assert_allclose(*jacobians, rtol=1e-13, atol=1e-14)
    n = 6                                  # the stopping error, NaN where a residual is
    x, Px, c, rd = (r.normal(size=(B, n)) for _ in range(4))
    re, ri, scales = r.normal(size=(B, zero)), r.normal(size=(B, mi)), r.uniform(1, 2, (2, B))
    rd[2, 1] = np.nan
    errors = [ipm.stopping_error(k, c, *scales, x, s, z, rd, re, ri, Px)
              for k in (compiled, generic)]
    np.testing.assert_allclose(*errors, rtol=1e-13)
    assert np.isnan(errors[0][2])


def test_soc_projection_jacobian_matches_central_differences():
    from diffdsl.solvers import arrays, ipm
    ops = arrays.namespace("numpy")
    cones = ipm.Cones(ops, 1, 2, (3, 4))
    r = np.random.default_rng(6)
    for _ in range(20):
        v = r.normal(size=(1, 10))
        P, A = np.eye(1)[None], r.normal(size=(1, 10, 1))
        d = ipm.Derivative(ops, cones, P, A, np.zeros((1, 1)), ipm.project_dual(cones, v),
                           ipm.project_dual(cones, v) - v)
        J = np.zeros((10, 10))
        for k in range(10):
            e = np.zeros((1, 10))
            e[0, k] = 1e-6
            J[:, k] = (ipm.project_dual(cones, v + e) - ipm.project_dual(cones, v - e))[0] / 2e-6
        D = np.array([d.D(np.eye(10)[k][None])[0] for k in range(10)]).T
        np.testing.assert_allclose(D, J, atol=1e-6)


@pytest.mark.parametrize("shared", [False, True], ids=["per element", "shared P, A"])
@pytest.mark.parametrize("name", ["numpy", "torch", "jax"])
def test_every_array_namespace_solves_the_batch(name, shared):
    """The kernel (unpolished) in each namespace against Clarabel's refined solutions, to the
    accuracy its stopping rule implies (relative residuals and gap ≤ 1e-10); with P and A
    given once for the whole batch ((1, ·, ·)) as with per-element copies."""
    pytest.importorskip(name)
    from diffdsl.solvers import arrays, ipm
    ops = arrays.namespace(name)
    prob, w, mu, values = portfolio_socp(B=4)
    compiled = prob.compile(solver="native")
    prog = compiled.program
    data = compiled.solve(values).data
    P = np.zeros((4, prog.n, prog.n))
    A = np.zeros((4, prog.m, prog.n))
    Pv, Av = data.full("P").T, data.full("A").T
    P[:, prog.P.indices, prog.P.columns] = Pv
    P[:, prog.P.columns, prog.P.indices] = Pv
    A[:, prog.A.indices, prog.A.columns] = Av
    reference = dd.CompiledProblem(prob).solve(values, refine=True)

    def run():
        arrays_ = [ops.constant(a) for a in (P[:1] if shared else P, data.c.T,
                                             A[:1] if shared else A, data.b.T)]
        cones = ipm.Cones.of(ops, prog.cones)
        x, *_ = ipm.interior_point(ops, cones, *arrays_)
        return ops.to_numpy(x)

    if name == "jax":
        import jax
        with jax.enable_x64(True):
            x = run()
    else:
        x = run()
    offset = prog.variable_offsets[w.id]
    np.testing.assert_allclose(x[:, offset:offset + w.size], reference[w], atol=1e-5)


@pytest.mark.parametrize("name", ["numpy", "torch", "jax"])
def test_column_gathers_equal_the_dense_products(name):
    """``ColumnGather``'s v M (from M and from its entries) against the dense product: one
    entry per column (a scatter), weighted classes with empty columns, columns past
    ``MAX_DEPTH`` (the dense fallback) and an M without entries."""
    pytest.importorskip(name)
    from diffdsl.solvers import arrays, gathers
    ops = arrays.namespace(name)
    scatter = np.zeros((6, 9))
    scatter[np.arange(6), [0, 2, 2, 5, 7, 8]] = 1.0
    classes = np.zeros((9, 4))
    classes[np.arange(9), [0, 0, 1, 1, 1, 3, 3, 3, 3]] = rng.normal(size=9)
    deep = rng.normal(size=(12, 3))
    precision = contextlib.nullcontext()
    if name == "jax":
        import jax
        precision = jax.enable_x64(True)
    with precision:
        for M in (scatter, classes, classes.T, deep, np.zeros((5, 3))):
            v = rng.normal(size=(7, M.shape[0]))
            rows, cols = np.nonzero(M)
            for gather in (gathers.ColumnGather(ops, M), gathers.ColumnGather.of_entries(
                    ops, rows, cols, M[rows, cols], M.shape)):
                assert (gather.dense is not None) == (M is deep)
                got = ops.to_numpy(gather(ops.constant(v)))
                np.testing.assert_allclose(got, v @ M, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("name", ["numpy", "hybrid", "torch", "jax"])
@pytest.mark.parametrize("k", [6, 64], ids=["compiled loops", "LAPACK"])
def test_definite_factorizations_solve_like_lu(name, k):
    """``factor_definite`` (Cholesky where the whole batch is definite, else LU; on NumPy
    arrays small systems by compiled loops) solves a definite batch and an indefinite one
    like a dense solve."""
    pytest.importorskip("jax" if name == "jax" else "torch" if name != "numpy" else name)
    from diffdsl.solvers import arrays, fused
    ops = arrays.namespace(name)
    X = rng.normal(size=(5, k, k))
    definite = X @ X.swapaxes(1, 2) + np.eye(k)
    indefinite = definite - 4.0 * k * np.eye(k) * (np.arange(5) == 2)[:, None, None]
    rhs = rng.normal(size=(5, k))
    precision = contextlib.nullcontext()
    if name == "jax":
        import jax
        precision = jax.enable_x64(True)
    cholesky = name in ("hybrid", "torch") or (
        name == "numpy" and k <= arrays.SMALL_CHOLESKY and fused.available())
    with precision:
        for K in (definite, indefinite):
            if K is indefinite:
                assert np.linalg.eigvalsh(K).min() < 0
            factors = ops.factor_definite(ops.constant(K))
            if cholesky:
                assert isinstance(factors, arrays.Cholesky) == (K is definite)
            got = ops.to_numpy(ops.solve(factors, ops.constant(rhs)))
            np.testing.assert_allclose(got, np.linalg.solve(K, rhs[..., None])[..., 0],
                                       rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["numpy", "hybrid", "torch"])
@pytest.mark.parametrize("k", [6, 30], ids=["compiled loops", "LAPACK"])
def test_lu_factorizations_solve_both_ways_and_flag_singular_elements(name, k):
    """``factor`` (on NumPy arrays small systems by compiled loops, ``fused.lu``): solves
    with K and Kᵀ like a dense solve, from one factorization per element or one for the
    whole batch, and ``pivots_ok`` flags the singular element."""
    pytest.importorskip("torch" if name != "numpy" else name)
    from diffdsl.solvers import arrays
    ops = arrays.namespace(name)
    K = rng.normal(size=(5, k, k))
    K[3, :, -1] = K[3, :, 0]                              # element 3 singular
    rhs = rng.normal(size=(5, k))
    factors = ops.factor(ops.constant(K))
    np.testing.assert_array_equal(ops.to_numpy(ops.pivots_ok(factors)), np.arange(5) != 3)
    fine = np.arange(5) != 3
    for transpose in (False, True):
        M = K.swapaxes(1, 2) if transpose else K
        got = ops.to_numpy(ops.solve(factors, ops.constant(rhs), transpose))
        np.testing.assert_allclose(got[fine], np.linalg.solve(M[fine], rhs[fine, :, None])[..., 0],
                                   rtol=1e-9, atol=1e-10)
        shared = ops.to_numpy(ops.solve(ops.factor(ops.constant(K[:1])), ops.constant(rhs),
                                        transpose))
        np.testing.assert_allclose(shared, np.linalg.solve(M[:1], rhs[..., None])[..., 0],
                                   rtol=1e-9, atol=1e-10)


def test_torch_takes_a_constant_numpy_index_to_the_device_once():
    """PyTorch indexing with a NumPy array copies it to the tensor's device on every call;
    ``take`` converts each constant index once per device and reuses it."""
    torch = pytest.importorskip("torch")
    from diffdsl.solvers import arrays
    ops = arrays.namespace("torch")
    a = torch.as_tensor(rng.normal(size=(3, 7)))
    index = np.array([4, 0, 4, 6])
    arrays._device_index.cache_clear()
    first, second = ops.take(a, index), ops.take(a, index.copy())
    np.testing.assert_array_equal(first.numpy(), a.numpy()[:, index])
    np.testing.assert_array_equal(second.numpy(), first.numpy())
    info = arrays._device_index.cache_info()
    assert (info.misses, info.hits) == (1, 1)


@pytest.mark.parametrize("name", ["numpy", "hybrid"])
def test_batches_split_across_two_threads_give_the_whole_batchs_answers(name, monkeypatch):
    """With every operation split in halves (``PARALLEL_WORK`` = 0; on two cores), gram
    matrices (X shared or per element), LU and Cholesky solves equal the dense references,
    and a half that is not definite still falls back to LU for the whole batch."""
    pytest.importorskip("torch" if name == "hybrid" else name)
    from diffdsl.solvers import arrays
    monkeypatch.setattr(arrays, "PARALLEL_WORK", 0.0)
    monkeypatch.setattr(arrays, "cores", lambda: 2)
    ops = arrays.namespace(name)
    X, w = rng.normal(size=(7, 5, 8)), rng.random((7, 8))
    for shared in (X[:1], X):
        np.testing.assert_allclose(ops.weighted_gram(shared, w),
                                   np.einsum("bik,bk,bjk->bij", np.broadcast_to(shared, X.shape),
                                             w, np.broadcast_to(shared, X.shape)), rtol=1e-12)
    definite = X @ X.swapaxes(1, 2) + np.eye(5)
    indefinite = definite - 40.0 * np.eye(5) * (np.arange(7) == 6)[:, None, None]
    rhs = rng.normal(size=(7, 5))
    for K in (definite, indefinite):
        for factors in (ops.factor(K), ops.factor_definite(K)):
            np.testing.assert_allclose(ops.solve(factors, rhs),
                                       np.linalg.solve(K, rhs[..., None])[..., 0], rtol=1e-9)
    if name == "hybrid":
        assert isinstance(ops.factor_definite(definite), arrays.Cholesky)
        assert not isinstance(ops.factor_definite(indefinite), arrays.Cholesky)
        import torch                    # the helper's PyTorch kernels run on its thread only
        assert arrays._helper_thread().submit(torch.get_num_threads).result() == 1


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_take_columns_gathers_each_elements_columns(name):
    """``take_columns``: M[b][:, index[b]] per element, M per element or shared (1, r, c)."""
    pytest.importorskip(name)
    from diffdsl.solvers import arrays
    ops = arrays.namespace(name)
    M, index = rng.normal(size=(4, 3, 7)), rng.integers(0, 7, size=(4, 5))
    indices = np.asarray
    if name == "torch":
        import torch
        indices = torch.as_tensor
    for shared in (M[:1], M):
        got = ops.to_numpy(ops.take_columns(ops.constant(shared), indices(index)))
        expected = np.stack([shared[b % len(shared)][:, index[b]] for b in range(4)])
        np.testing.assert_array_equal(got, expected)


def test_the_openmp_limit_reaches_pytorch_imported_after_a_first_limit():
    """``single_threaded_openmp`` limits PyTorch's threads even when a limit was set before
    PyTorch was imported (its OpenMP library loads with it): in a fresh interpreter."""
    pytest.importorskip("torch")
    import subprocess
    import sys
    code = ("from diffdsl.diff.threads import single_threaded_blas, single_threaded_openmp\n"
            "with single_threaded_blas():\n    pass\n"
            "import torch\n"
            "with single_threaded_openmp():\n    print(torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "1"


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")    # JAX's, for its own threads
def test_a_forked_child_gets_its_own_helper_thread(monkeypatch):
    """Work split in halves in a child forked after the parent started its helper thread
    (a DataLoader worker's situation) completes: the child makes its own pool."""
    import multiprocessing
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    from diffdsl.solvers import arrays
    monkeypatch.setattr(arrays, "PARALLEL_WORK", 0.0)
    monkeypatch.setattr(arrays, "cores", lambda: 2)
    ops = arrays.namespace("numpy")
    X, w = rng.normal(size=(8, 5, 6)), rng.random((8, 6))
    expected = ops.weighted_gram(X, w)                     # the parent's helper starts
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=lambda: queue.put(ops.weighted_gram(X, w)))
    child.start()
    child.join(20)
    if child.is_alive():
        child.terminate()
        pytest.fail("the forked child's half-batch work never ran")
    np.testing.assert_allclose(queue.get(timeout=5), expected)


def test_unrolled_rule_is_refused_where_there_is_no_autodiff():
    prob, x, values = dense_qp()
    with pytest.raises(ValueError, match="native"):
        prob.compile(rule="unrolled")
    sol = prob.compile(solver="native", rule="unrolled").solve(*values)
    with pytest.raises(ValueError, match="TorchLayer or JaxLayer"):
        sol.vjp({x: np.ones_like(sol[x])})


def test_auto_picks_native_where_it_is_faster_and_says_so():
    prob, x, values = dense_qp()
    auto = prob.compile(solver="auto")
    assert auto.adapter.name == "native" and "native" in str(auto.contract())
    np.testing.assert_allclose(auto.solve(*values)[x],
                               prob.compile().solve(*values, refine=True)[x], atol=1e-6)
    y, c = dd.Variable(5), dd.Parameter(5)
    entropic = dd.Problem(dd.Maximize(c @ y + dd.sum(dd.entr(y))), [dd.sum(y) == 1, y <= 0.5])
    assert entropic.compile(solver="auto").adapter.name == "clarabel"      # exp cones
    lp = dd.Problem(dd.Minimize(c @ y), [y >= 0, dd.sum(y) == 1])
    assert lp.compile(solver="auto").adapter.name == "native"        # a small LP
    z, d = dd.Variable(160), dd.Parameter(160)                        # a larger one
    big_lp = dd.Problem(dd.Minimize(d @ z), [z >= 0, dd.sum(z) == 1])
    assert "not definite" in big_lp.compile(solver="auto").auto_choice


def test_auto_resolves_what_native_cannot_with_clarabel():
    """An infeasible element: native ends at its iteration limit; auto asks Clarabel, which
    certifies infeasibility; the other element keeps the native answer and derivative."""
    x, h = dd.Variable(), dd.Parameter()
    prob = dd.Problem(dd.Minimize(dd.square(x) + x), [x >= 1, x <= h])
    sol = prob.compile(solver="auto").solve(np.array([2.0, 0.0]))
    assert sol.status[0] is dd.SolveStatus.OPTIMAL
    assert sol.status[1] is dd.SolveStatus.INFEASIBLE
    assert sol[x][0] == pytest.approx(1.0, abs=1e-9)
    assert sol.vjp({x: np.ones(2)})[h][0] == pytest.approx(0.0, abs=1e-9)
