"""Derivatives of the solution map against references nobody here tuned: closed forms,
central finite differences of tight solves, and the adjoint identity ⟨vjp(u), v⟩ = ⟨u, jvp(v)⟩."""
import numpy as np
import pytest

import diffdsl as dd
from diffdsl.diff.rules import DerivativeRule

rng = np.random.default_rng(11)
TIGHT = {"clarabel": dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12,
                          tol_ktratio=1e-10),
         "scs": dict(eps_abs=1e-12, eps_rel=1e-12), "ecos": {}}


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b).max() / max(1.0, np.abs(b).max())


# ------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("solver", ["clarabel", "scs", "ecos"])
def test_softmax_jacobian(solver):
    """argmax θᵀy + Σ entr(y) s.t. 1ᵀy = 1 is softmax(θ), with Jacobian diag(y) − yyᵀ."""
    n = 6
    theta, y = dd.Parameter(n, value=rng.normal(size=n)), dd.Variable(n)
    prob = dd.Problem(dd.Maximize(theta @ y + dd.sum(dd.entr(y))), [dd.sum(y) == 1])
    sol = prob.compile(solver=solver, fast_paths=False).solve()
    s = np.exp(theta.value) / np.exp(theta.value).sum()
    J = np.diag(s) - np.outer(s, s)
    d, g = rng.normal(size=n), rng.normal(size=n)
    assert rel(sol.jvp({theta: d})[0][y], J @ d) <= 1e-7
    assert rel(sol.vjp({y: g})[theta], J.T @ g) <= 1e-7
    assert rel(sol.jacobian(), J) <= 1e-7


QP_SOLVERS = ["clarabel", "scs", "ecos", "osqp", "native"]


@pytest.mark.parametrize("solver", QP_SOLVERS)
def test_sparsemax_jacobian(solver):
    """Projection onto the simplex: J = diag(1_S) − 1_S 1_Sᵀ / |S| on the support S."""
    n = 8
    theta, y = dd.Parameter(n, value=rng.normal(size=n)), dd.Variable(n)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(y - theta)), [dd.sum(y) == 1, y >= 0])
    sol = prob.compile(solver=solver, fast_paths=False, **TIGHT.get(solver, {})).solve()
    u = np.sort(theta.value)[::-1]                       # closed-form support (by sorting)
    k = np.flatnonzero(u - (np.cumsum(u) - 1) / np.arange(1, n + 1) > 0)[-1]
    support = (theta.value > u[k] - 1e-12).astype(float)
    J = np.diag(support) - np.outer(support, support) / support.sum()
    assert rel(sol.jacobian(), J) <= 1e-7
    assert sol.derivative_diagnostics()["differentiable"]


@pytest.mark.parametrize("solver", QP_SOLVERS)
def test_ridge_regression_gradients(solver):
    m, n, lam = 12, 5, 0.3
    A, b, x = dd.Parameter((m, n)), dd.Parameter(m), dd.Variable(n)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(A @ x - b) + lam * dd.sum_squares(x)))
    A_val, b_val = rng.normal(size=(m, n)), rng.normal(size=m)
    sol = prob.compile(solver=solver, **TIGHT.get(solver, {})).solve(A_val, b_val)
    H = A_val.T @ A_val + lam * np.eye(n)
    xs = np.linalg.solve(H, A_val.T @ b_val)
    g = rng.normal(size=n)
    w = np.linalg.solve(H, g)
    grads = sol.vjp({x: g})
    assert rel(grads[b], A_val @ w) <= 1e-9
    assert rel(grads[A], np.outer(b_val - A_val @ xs, w) - np.outer(A_val @ w, xs)) <= 1e-9


@pytest.mark.parametrize("solver", ["clarabel", "scs", "ecos"])
def test_l2_ball_projection_jacobian(solver):
    """Π(v) = v/‖v‖ outside the ball: J = (I − uuᵀ)/‖v‖, u = v/‖v‖."""
    n = 5
    v, y = dd.Parameter(n, value=3 * rng.normal(size=n)), dd.Variable(n)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(y - v)), [dd.norm(y) <= 1])
    sol = prob.compile(solver=solver, fast_paths=False, **TIGHT.get(solver, {})).solve()
    r = np.linalg.norm(v.value)
    u = v.value / r
    assert rel(sol.jacobian(), (np.eye(n) - np.outer(u, u)) / r) <= 1e-8


@pytest.mark.parametrize("solver", ["clarabel", "scs"])
def test_psd_projection_derivative(solver):
    """argmin ‖X − S‖_F s.t. X ⪰ 0 is V max(Λ, 0) Vᵀ; its JVP against finite differences of
    that NumPy formula."""
    n = 4
    B = rng.normal(size=(n, n))
    S = dd.Parameter((n, n), symmetric=True, value=(B + B.T) / 2)
    X = dd.Variable((n, n), symmetric=True)
    sol = dd.Problem(dd.Minimize(dd.sum_squares(X - S)), [X >> 0]).compile(solver=solver).solve()

    def proj(M):
        lam, V = np.linalg.eigh(M)
        return (V * np.maximum(lam, 0)) @ V.T

    D = rng.normal(size=(n, n))
    D = (D + D.T) / 2
    eps = 1e-6
    fd = (proj(S.value + eps * D) - proj(S.value - eps * D)) / (2 * eps)
    assert rel(sol.jvp({S: D})[0][X], fd) <= 1e-6


@pytest.mark.parametrize("solver", QP_SOLVERS)
def test_equality_constrained_qp_matches_its_kkt_solve(solver):
    n, p = 6, 2
    B = rng.normal(size=(n, n))
    Q = B @ B.T + np.eye(n)
    F = rng.normal(size=(p, n))
    q, h = dd.Parameter(n, value=rng.normal(size=n)), dd.Parameter(p, value=rng.normal(size=p))
    x = dd.Variable(n)
    con = F @ x == h
    sol = dd.Problem(dd.Minimize(0.5 * dd.quad_form(x, Q) + q @ x), [con]).compile(
        solver=solver, **TIGHT.get(solver, {})).solve()
    K = np.block([[Q, F.T], [F, np.zeros((p, p))]])
    dq, dh = rng.normal(size=n), rng.normal(size=p)
    expected = np.linalg.solve(K, np.concatenate([-dq, dh]))
    dvars, dduals = sol.jvp({q: dq, h: dh})
    assert rel(dvars[x], expected[:n]) <= 1e-9
    assert rel(dduals[con], expected[n:]) <= 1e-9     # CVXPY's sign: + ν (Fx − h)


# ------------------------------------------------------------------------- finite differences
def family_problems():
    """(name, problem, parameters) across the atom families and cones (strictly convex)."""
    n = 4
    x = dd.Variable(n, name="x")
    a = dd.Parameter(n, name="a", value=rng.normal(size=n))
    c = dd.Parameter(n, name="c", nonneg=True, value=rng.uniform(0.5, 1.5, n))
    reg = dd.sum_squares(x - a)
    yield "exp: log_sum_exp, logistic", dd.Problem(
        dd.Minimize(dd.log_sum_exp(x) + dd.sum(dd.logistic(x)) + reg)), [a]
    yield "exp: kl_div, log", dd.Problem(
        dd.Minimize(dd.sum(dd.kl_div(x, c)) - dd.sum(dd.log(x)) + reg), [x >= 0.1]), [a, c]
    yield "power: power 1.5, inv_pos, pnorm 3", dd.Problem(
        dd.Minimize(dd.sum(dd.power(x, 1.5)) + dd.sum(dd.inv_pos(x)) + dd.pnorm(x, 3) + reg),
        [x >= 0.1]), [a]
    yield "power: geo_mean, sqrt", dd.Problem(
        dd.Maximize(dd.geo_mean(x, [1, 2, 3, 4]) + dd.sum(dd.sqrt(x)) - reg), [c @ x <= 3]), \
        [a, c]
    yield "soc: norm, huber, quad_over_lin", dd.Problem(
        dd.Minimize(dd.norm(x - 2 * a) + dd.sum(dd.huber(x, 0.5)) + dd.quad_over_lin(x, 2)
                    + reg)), [a]
    X = dd.Variable((3, 3), symmetric=True, name="X")
    S = dd.Parameter((3, 3), symmetric=True, name="S", value=np.diag([1.0, 2.0, 3.0]) + 0.3)
    yield "psd: lambda_max, log_det", dd.Problem(
        dd.Minimize(dd.lambda_max(X) - dd.log_det(X) + dd.sum_squares(X - S)),
        [dd.trace(X) <= 6]), [S]
    b = dd.Parameter(n, name="b", value=np.array([2.0, -1.5, 0.8, 3.0]))
    yield "lp pieces: norm1, max", dd.Problem(
        dd.Minimize(dd.norm1(x) + dd.max(x) + dd.sum_squares(x - b))), [b]


@pytest.mark.parametrize("name, problem, params", list(family_problems()),
                         ids=[f[0] for f in family_problems()])
def test_jvp_and_vjp_match_central_differences(name, problem, params):
    compiled = problem.compile()
    values = {p: p.value for p in params}
    sol = compiled.solve(values, refine=True)         # refined: finite differences need it
    assert sol.status[0].is_optimal and sol.derivative_diagnostics()["differentiable"]
    eps = 1e-5
    for p in params:
        d = rng.normal(size=p.shape)
        if p.attributes.get("symmetric"):
            d = (d + d.T) / 2
        plus, minus = dict(values), dict(values)
        plus[p], minus[p] = p.value + eps * d, p.value - eps * d
        sp_, sm = compiled.solve(plus, refine=True), compiled.solve(minus, refine=True)
        dvars, _ = sol.jvp({p: d})
        for v in problem.variables():
            fd = (sp_[v] - sm[v]) / (2 * eps)
            assert rel(dvars[v], fd) <= 1e-6, (name, p.name, v.name)
            g = rng.normal(size=v.shape)
            assert np.sum(sol.vjp({v: g})[p] * d) == pytest.approx(np.sum(g * fd), abs=1e-6)


@pytest.mark.parametrize("name, problem, params", list(family_problems()),
                         ids=[f[0] for f in family_problems()])
def test_vjp_is_the_adjoint_of_jvp(name, problem, params):
    sol = problem.compile().solve()
    d_params = {p: rng.normal(size=p.shape) for p in params}
    for p in params:
        if p.attributes.get("symmetric"):
            d_params[p] = (d_params[p] + d_params[p].T) / 2
    d_vars = {v: rng.normal(size=v.shape) for v in problem.variables()}
    d_duals = {c: (rng.normal(size=c.shape) if hasattr(c, "shape") and c.shape else rng.normal())
               for c in problem.constraints if isinstance(c, (dd.Inequality, dd.Equality))}
    tangent_vars, tangent_duals = sol.jvp(d_params)
    lhs = sum(np.sum(g * sol.vjp(d_vars, d_duals)[p]) for p, g in d_params.items())
    rhs = sum(np.sum(d_vars[v] * tangent_vars[v]) for v in d_vars) + \
        sum(np.sum(d_duals[c] * tangent_duals[c]) for c in d_duals)
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_batched_vjp_equals_elementwise():
    n = 5
    theta, y = dd.Parameter(n), dd.Variable(n)
    compiled = dd.Problem(dd.Minimize(dd.sum_squares(y - theta)),
                          [dd.sum(y) == 1, y >= 0]).compile(fast_paths=False)
    values = rng.normal(size=(4, n))
    g = rng.normal(size=(4, n))
    batch = compiled.solve(values).vjp({y: g})[theta]
    assert batch.shape == (4, n)
    for i in range(4):
        np.testing.assert_allclose(batch[i], compiled.solve(values[i]).vjp({y: g[i]})[theta],
                                   atol=1e-12)


# ------------------------------------------------------------------------- rules, diagnostics
def test_rules_are_recorded_and_perturbed_converges_to_implicit():
    n = 5
    x, q = dd.Variable(n), dd.Parameter(n, value=rng.normal(size=n))
    G = rng.normal(size=(3, n))
    prob = dd.Problem(dd.Minimize(dd.sum_squares(x) + q @ x), [G @ x <= 1])
    g = rng.normal(size=n)
    exact = prob.compile().solve().vjp({x: g})[q]
    lpgd = prob.compile(rule=DerivativeRule("perturbed", tau=1e-3)).solve()
    assert str(lpgd.rule).startswith("perturbed")
    assert rel(lpgd.vjp({x: g})[q], exact) <= 1e-5
    with pytest.raises(ValueError, match="no forward mode"):
        lpgd.jvp({q: g})
    damped = prob.compile(rule=DerivativeRule("implicit", reg=1e-4)).solve()
    assert "surrogate" in str(damped.rule)
    assert 0 < rel(damped.vjp({x: g})[q], exact) <= 1e-2


def test_perturbed_rule_gives_informative_lp_gradients():
    """An LP's solution is piecewise constant in c: the implicit gradient is 0, LPGD's is not."""
    x, c = dd.Variable(3), dd.Parameter(3, value=np.array([1.0, 2.0, 3.0]))
    prob = dd.Problem(dd.Minimize(c @ x), [dd.sum(x) == 1, x >= 0])
    g = np.array([1.0, 0.0, -1.0])          # the loss prefers the third vertex
    assert np.allclose(prob.compile().solve().vjp({x: g})[c], 0, atol=1e-8)
    lpgd = prob.compile(rule=DerivativeRule("perturbed", tau=5.0)).solve().vjp({x: g})[c]
    assert np.abs(lpgd).max() > 0.1


def test_degenerate_solutions_are_flagged():
    """x* = 0 with zero multiplier: strict complementarity fails for x ≥ 0."""
    x, p = dd.Variable(), dd.Parameter(value=0.0)
    sol = dd.Problem(dd.Minimize(dd.square(x - p)), [x >= 0]).compile().solve()
    diag = sol.derivative_diagnostics()
    assert diag["degenerate"] == 1 and not diag["differentiable"]
    ok = dd.Problem(dd.Minimize(dd.square(x - p)), [x >= -1]).compile().solve()
    assert ok.derivative_diagnostics()["differentiable"]
    assert ok.derivative_diagnostics()["backward_residual"] <= 1e-14


# ------------------------------------------------------------------------- linear algebra paths
@pytest.fixture
def sparse_path(monkeypatch):
    """Force the sparse assembly and SuperLU even on small systems."""
    import diffdsl.diff.hsde as hsde
    import diffdsl.diff.system as system
    monkeypatch.setattr(hsde, "DENSE_SYSTEM_LIMIT", 0)
    monkeypatch.setattr(system, "dense_preferred", lambda size, nnz: False)


def test_sparse_path_matches_closed_forms(sparse_path):
    """Sparsemax (diagonal D, inactive rows eliminated) and the L2-ball projection (an SOC
    block of D) through the sparse assembly."""
    n = 8
    theta, y = dd.Parameter(n, value=rng.normal(size=n)), dd.Variable(n)
    sol = dd.Problem(dd.Minimize(dd.sum_squares(y - theta)),
                     [dd.sum(y) == 1, y >= 0]).compile(fast_paths=False).solve()
    u = np.sort(theta.value)[::-1]                       # closed-form support (by sorting)
    k = np.flatnonzero(u - (np.cumsum(u) - 1) / np.arange(1, n + 1) > 0)[-1]
    support = (theta.value > u[k] - 1e-12).astype(float)
    J = np.diag(support) - np.outer(support, support) / support.sum()
    assert rel(sol.jacobian(), J) <= 1e-7
    d = sol.derivative(0)
    assert not d.system.linear.dense
    # kept: the n + 1 equality rows of the canonical form and the active inequalities
    assert d.system.kept.size == d.counts["active"] + d.m - n
    v, z = dd.Parameter(n, value=3 * rng.normal(size=n)), dd.Variable(n)
    ball = dd.Problem(dd.Minimize(dd.sum_squares(z - v)), [dd.norm(z) <= 1])
    ball = ball.compile(fast_paths=False).solve()
    r = np.linalg.norm(v.value)
    u = v.value / r
    assert rel(ball.jacobian(), (np.eye(n) - np.outer(u, u)) / r) <= 1e-8


@pytest.mark.parametrize("method", ["lsmr", "gmres"])
def test_iterative_solvers_agree_with_direct_and_report_residual(method):
    n, m = 12, 20
    G = rng.normal(size=(m, n))
    x, q = dd.Variable(n), dd.Parameter(n, value=rng.normal(size=n))
    sol = dd.Problem(dd.Minimize(dd.sum_squares(x) + q @ x), [G @ x <= 1]).compile().solve()
    g = rng.normal(size=n)
    exact = sol.vjp({x: g})[q]
    d = sol.derivative(0, solver=method)
    cot = d.vjp(g, np.zeros(d.m), np.zeros(d.m))
    theta_grad = sol.compiled.program.c.T @ cot.c
    assert rel(theta_grad[1:], exact) <= 1e-9
    assert d.system.linear.last_residual <= 1e-10
    with pytest.raises(ValueError, match="unknown derivative solver"):
        sol.derivative(0, solver="cholesky")


def test_refinement_recovers_exact_gradients_from_a_loose_interior_point_answer():
    """A 1e-4-accurate Clarabel answer (complementary pairs both still positive) is refined
    by damped Newton to the exact KKT point; the gradient matches the active-set KKT solve."""
    n, m = 30, 60
    r = np.random.default_rng(5)
    B = r.normal(size=(n, n))
    Q, G = B @ B.T / n + np.eye(n), r.normal(size=(m, n))
    q, h = r.normal(size=n), np.abs(r.normal(size=m))
    x, qp = dd.Variable(n), dd.Parameter(n, value=q)
    loose = dict(tol_gap_abs=1e-4, tol_gap_rel=1e-4, tol_feas=1e-4, tol_ktratio=1e-3)
    sol = dd.Problem(dd.Minimize(0.5 * dd.quad_form(x, Q) + qp @ x),
                     [G @ x <= h]).compile(**loose).solve()
    diag = sol.derivative_diagnostics()
    assert diag["kkt_residual_before_refinement"] > 1e-8
    assert diag["kkt_residual"] <= 1e-12
    xs = sol.derivative(0).x
    active = np.abs(G @ xs - h) <= 1e-9
    K = np.block([[Q, G[active].T], [G[active], np.zeros((active.sum(),) * 2)]])
    x_kkt = np.linalg.solve(K, np.concatenate([-q, h[active]]))[:n]
    assert rel(xs, x_kkt) <= 1e-10
    g = r.normal(size=n)
    exact = -np.linalg.solve(K, np.concatenate([g, np.zeros(active.sum())]))[:n]
    assert rel(sol.vjp({x: g})[qp], exact) <= 1e-9


def test_epigraph_variables_free_in_an_interval_do_not_make_the_system_singular():
    """|u| ≤ t ≤ 1 with |u| < 1 leaves t anywhere in [|u|, 1]: t is set aside (derivative 0)
    and the projection onto the box [−1, 1] keeps its exact Jacobian diag(1, 0, 1)."""
    u, p = dd.Variable(3), dd.Parameter(3)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(u - p)), [dd.abs(u) <= 1])
    sol = prob.compile().solve(np.array([0.3, -2.0, 0.5]))
    assert sol.derivative_flags(0) == []
    assert sol.derivative(0).system.free.size == 2          # t₂ = |u₂| = 1 is pinned
    assert rel(sol.jacobian(), np.diag([1.0, 0.0, 1.0])) <= 1e-9


def test_sparse_ldl_backward_agrees_with_lu_and_the_active_set_kkt():
    """A sparse QP large enough for the sparse path: the derivative through the
    quasi-definite LDLᵀ (QDLDL) equals the one through sparse LU to 1e-10, and both equal
    the active set's KKT solve (an independent reference)."""
    import scipy.sparse as sp

    from diffdsl.diff import linear, system
    rng = np.random.default_rng(12)
    n, m = 400, 300
    G = sp.random(m, n, density=0.02, random_state=3, format="csr") + sp.eye(m, n)
    x, q, h = dd.Variable(n), dd.Parameter(n), dd.Parameter(m)
    prob = dd.Problem(dd.Minimize(0.5 * dd.sum_squares(x) + q @ x), [G @ x <= h])
    qv, hv = rng.normal(size=n), 0.1 * np.abs(rng.normal(size=m))
    g = rng.normal(size=n)
    grads = []
    for ldl in (True, False):
        system.LDL_SOLVER = ldl
        try:
            sol = prob.compile().solve(qv, hv, refine=True)
            d = sol.derivative(0)
            assert isinstance(d.system.linear, linear.QuasiDefiniteSolver) == ldl
            grads.append(sol.vjp({x: g})[q])
        finally:
            system.LDL_SOLVER = True
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-10)
    active = np.abs(G @ sol[x] - hv) <= 1e-9
    Ga = G[active].toarray()
    K = np.block([[np.eye(n), Ga.T], [Ga, np.zeros((active.sum(), active.sum()))]])
    w = np.linalg.solve(K, np.concatenate([g, np.zeros(active.sum())]))[:n]
    np.testing.assert_allclose(grads[0], -w, atol=1e-8)


def test_lp_systems_go_to_lu_directly_and_match_the_active_set_kkt():
    """With a zero diagonal in P (an LP) the quasi-definite LDLᵀ would meet a pivot of the
    shift's size and hand over to LU: the sparse path takes LU directly. Its gradient with
    respect to h equals the active set's solve (A_act dx = dh_act, an independent
    reference)."""
    import scipy.sparse as sp

    from diffdsl.diff import linear
    rng = np.random.default_rng(13)
    n, m = 300, 200
    G = sp.random(m, n, density=0.03, random_state=4, format="csr")
    c, h, x = dd.Parameter(n), dd.Parameter(m), dd.Variable(n)
    prob = dd.Problem(dd.Minimize(c @ x), [G @ x <= h, x >= -1, x <= 1])
    cv, hv = rng.normal(size=n), np.abs(rng.normal(size=m)) + 0.5
    sol = prob.compile().solve(cv, hv, refine=True)
    assert type(sol.derivative(0).system.linear) is linear.DirectSolver
    g = rng.normal(size=n)
    grad = sol.vjp({x: g})[h]
    xs = sol[x]
    rows = np.flatnonzero(np.abs(G @ xs - hv) <= 1e-9)
    lower, upper = np.flatnonzero(np.abs(xs + 1) <= 1e-9), np.flatnonzero(np.abs(xs - 1) <= 1e-9)
    A_act = np.vstack([G[rows].toarray(), -np.eye(n)[lower], np.eye(n)[upper]])
    assert A_act.shape == (n, n)                    # a vertex: x is A_act⁻¹ (h_act, 1, 1)
    w = np.linalg.solve(A_act.T, g)                 # d⟨g, x⟩/d(h_act) = A_act⁻ᵀ g
    expected = np.zeros(m)
    expected[rows] = w[:rows.size]
    np.testing.assert_allclose(grad, expected, atol=1e-8)


def test_quasi_definite_solver_hands_singular_systems_to_lu():
    """Two identical active rows: S is singular; the solver falls back to LU's flagged
    least-squares answer instead of returning the shift's artefact."""
    import scipy.sparse as sp

    from diffdsl.diff.linear import QuasiDefiniteSolver
    n = 5
    a = np.arange(1.0, n + 1)
    A = sp.csr_matrix(np.vstack([a, a]))
    M11 = sp.bmat([[sp.eye(n), A.T], [-A, None]], format="csc")
    solver = QuasiDefiniteSolver(M11, n)
    assert solver.singular and solver.fallback is not None
    rhs = np.concatenate([np.ones(n), [1.0, 1.0]])
    x = solver.solve(rhs)
    np.testing.assert_allclose(M11 @ x, rhs, atol=1e-10)      # consistent: solved exactly
    regular = QuasiDefiniteSolver(sp.bmat([[sp.eye(n), A[:1].T], [-A[:1], None]],
                                          format="csc"), n)
    assert regular.fallback is None and not regular.singular


def test_a_nearby_factorization_solves_the_new_system_exactly():
    """M at a point moved by a short step (an exponential-cone problem: D changes with
    every step) solved with the previous point's factorization, refined against the new
    M: equal to a fresh factorization's solves; from a far point it factors after all."""
    from diffdsl.cones.projections import derivative
    from diffdsl.diff.system import DerivativeSystem
    r = np.random.default_rng(21)
    y, theta = dd.Variable(6), dd.Parameter(6)
    prob = dd.Problem(dd.Maximize(theta @ y + dd.sum(dd.entr(y))), [dd.sum(y) == 1])
    d = prob.compile(fast_paths=False).solve(r.normal(size=6)).derivative(0)
    cones, n = d.cones, d.n
    v = d.z[n:]
    D0 = derivative(v, cones, dual=True)
    assert d.system.condition_estimate() < 1e8            # a well-posed system
    for shift, reused in ((1e-7, True), (0.3, False)):
        D1 = derivative(v + shift * np.abs(v) * r.normal(size=v.size), cones, dual=True)
        near, fresh = DerivativeSystem(d.P, d.A, D0), DerivativeSystem(d.P, d.A, D1)
        system = DerivativeSystem(d.P, d.A, D1, near=near)
        assert system.near is near                      # same pattern: not factored
        rhs = r.normal(size=n + v.size)
        for transpose in (False, True):
            np.testing.assert_allclose(system.solve(rhs, transpose),
                                       fresh.solve(rhs, transpose), rtol=1e-9, atol=1e-12)
        assert (system.near is near) == reused          # the far one factored after all


def test_lockstep_refinement_equals_one_by_one_and_projects_the_batch_together(monkeypatch):
    """``SolutionDerivative.together`` (Solution.refine's path) refines a batch of
    exponential-cone solutions in lockstep: the same refined points and derivatives as
    refining each alone, with each round's cone projections done in one call for the
    batch (not one per element) and its factorizations in one parallel round."""
    from diffdsl.cones import projections
    from diffdsl.diff.hsde import SolutionDerivative
    r = np.random.default_rng(22)
    y, theta = dd.Variable(6), dd.Parameter(6)
    prob = dd.Problem(dd.Maximize(theta @ y + dd.sum(dd.entr(y))), [dd.sum(y) == 1])
    compiled = prob.compile(fast_paths=False)
    batch = 6
    solution = compiled.solve(r.normal(size=(batch, 6)))
    arguments = [solution._derivative_arguments(i, "auto", 0.0, True) for i in range(batch)]
    cones = compiled.program.cones
    projections.clear_exp_memo()
    alone = [SolutionDerivative(**a, cones=cones) for a in arguments]
    projections.clear_exp_memo()
    calls = []
    project = projections.exp_project
    monkeypatch.setattr(projections, "exp_project",
                        lambda V, guess=None: calls.append(len(V)) or project(V, guess))
    from diffdsl.diff import hsde
    factored, factor_together = [], hsde._factor_together
    monkeypatch.setattr(hsde, "_factor_together", lambda systems: (
        factored.append(sum(s.unfactored for s in systems)) or factor_together(systems)))
    together = SolutionDerivative.together(arguments, cones)
    assert 0 < len(calls) < batch and max(calls) > 3 * cones.exp   # batched rounds
    assert max(factored) == batch          # the batch's systems factored in one round
    for a, b in zip(alone, together, strict=True):
        g = r.normal(size=a.n)
        assert b.refined_residual <= 1e-13 * (1 + np.linalg.norm(b.z))
        np.testing.assert_allclose(b.z, a.z, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b.vjp(g, 0 * b.y, 0 * b.s).c, a.vjp(g, 0 * a.y, 0 * a.s).c,
                                   rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ batched refinement
def small_qp_batch(B=12, n=8, m=10):
    """A batch of dense QPs with a definite P, inequality and equality rows."""
    r = np.random.default_rng(21)
    L = r.normal(size=(n, n))
    G, F = r.normal(size=(m, n)), r.normal(size=(2, n))
    x, q, h = dd.Variable(n), dd.Parameter(n), dd.Parameter(m)
    prob = dd.Problem(dd.Minimize(0.5 * dd.quad_form(x, L @ L.T / n + np.eye(n)) + q @ x),
                      [G @ x <= h, F @ x == 0])
    return prob, x, q, h, (r.normal(size=(B, n)), np.abs(r.normal(size=(B, m))) + 0.2)


@pytest.mark.parametrize("refine", [True, False])
def test_small_batches_from_clarabel_are_refined_and_differentiated_together(refine,
                                                                             monkeypatch):
    """Clarabel's answers to small QPs with a definite P are polished as one batch and
    differentiated by one batched factorization (``native.polish_batch``): refined answers
    exact, vjp and jvp equal to the one-by-one HSDE derivatives (the batch path off)."""
    from diffdsl.solvers import native
    prob, x, q, h, values = small_qp_batch()
    compiled = prob.compile()
    sol = compiled.solve(*values, refine=refine)
    g, dq = rng.normal(size=values[0].shape), rng.normal(size=values[0].shape)
    grads, (tangents, _) = sol.vjp({x: g}), sol.jvp({q: dq})
    assert sol._batch_derivative is not None and sol._batch_derivative.usable.all()
    if refine:
        assert all(sol.exact(i) for i in range(len(values[0])))
    monkeypatch.setattr(native, "POLISH_SIZE", 0)                   # one by one
    alone = compiled.solve(*values, refine=refine)
    assert alone._batch_derivative is None
    np.testing.assert_allclose(grads[q], alone.vjp({x: g})[q], atol=1e-10)
    np.testing.assert_allclose(grads[h], alone.vjp({x: g})[h], atol=1e-10)
    np.testing.assert_allclose(tangents[x], alone.jvp({q: dq})[0][x], atol=1e-10)
    np.testing.assert_allclose(sol[x], alone[x], atol=1e-8 if not refine else 1e-12)


def test_batch_refinement_leaves_degenerate_elements_to_the_one_by_one_derivative():
    """An element at a kink (x* = 0 with a zero multiplier) is not the batch's: it is
    differentiated alone, flagged and warned about; the others come from the batch."""
    x, p = dd.Variable(2), dd.Parameter(2)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(x - p)), [x >= 0])
    values = np.array([[0.5, -1.0], [0.0, 2.0], [1.0, 1.0]])       # element 1 degenerate
    sol = prob.compile(fast_paths=False).solve(values, refine=True)
    batch = sol._batch_derivative
    assert batch is not None and list(batch.usable) == [True, False, True]
    with pytest.warns(dd.DegenerateDerivativeWarning, match="element 1"):
        grad = sol.vjp({x: np.ones((3, 2))})[p]
    np.testing.assert_allclose(grad[[0, 2]], [[1.0, 0.0], [1.0, 1.0]], atol=1e-12)


def test_batch_refinement_needs_a_definite_P_and_the_native_cones():
    """An LP (P = 0) and an exponential-cone problem are refined one by one."""
    y, c = dd.Variable(3), dd.Parameter(3)
    lp = dd.Problem(dd.Minimize(c @ y), [y >= 0, dd.sum(y) == 1])
    assert lp.compile().solve(rng.normal(size=(2, 3)), refine=True)._batch_derivative is None
    softmax = dd.Problem(dd.Maximize(c @ y + dd.sum(dd.entr(y))), [dd.sum(y) == 1])
    sol = softmax.compile(fast_paths=False).solve(rng.normal(size=(2, 3)), refine=True)
    assert sol._batch_derivative is None


def test_a_box_projection_from_clarabel_is_differentiated_as_one_batch():
    """Twice as many rows as variables (every row a bound): the batch polish still applies
    (the row space is only its fallback there), with the clip's Jacobian diag(|θ| < 1)."""
    y, th = dd.Variable(6), dd.Parameter(6)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [y >= -1, y <= 1])
    theta = 2 * rng.normal(size=(4, 6))
    theta[np.abs(np.abs(theta) - 1) < 0.05] = 0.3                 # clear of the kinks
    sol = prob.compile(fast_paths=False).solve(theta, refine=True)
    assert sol._batch_derivative is not None and sol._batch_derivative.usable.all()
    np.testing.assert_allclose(sol[y], np.clip(theta, -1, 1), atol=1e-12)
    g = rng.normal(size=theta.shape)
    np.testing.assert_allclose(sol.vjp({y: g})[th], g * (np.abs(theta) < 1), atol=1e-12)
