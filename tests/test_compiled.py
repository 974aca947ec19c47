"""Compiled problems: the parametric map, batching, executors, pickling, KKT conditions."""
import concurrent.futures
import pickle
import warnings

import cvxpy as cp
import numpy as np
import pytest

import diffdsl as dd
from cone_membership import violations
from cvxpy_twin import Twin
from problem_corpus import random_problems

rng = np.random.default_rng(3)


def lasso(n=6, m=10):
    A, b = dd.Parameter((m, n), name="A"), dd.Parameter(m, name="b")
    lam = dd.Parameter(nonneg=True, name="lam")
    x = dd.Variable(n, name="x")
    prob = dd.Problem(dd.Minimize(dd.sum_squares(A @ x - b) + lam * dd.norm1(x)), [x >= -1])
    return prob, (A, b, lam), x


def test_parametric_map_matches_cvxpy_at_new_parameter_values():
    """Compile once; at fresh θ the solution matches CVXPY re-solving the twin."""
    checked = 0
    for seed, problem, corpus in random_problems():
        if not problem.parameters() or not problem.is_dpp():
            continue
        compiled = problem.compile()
        for _ in range(2):
            corpus.randomize_values()
            twin = Twin().problem(problem)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    reference = twin.solve(solver="CLARABEL",
                                           canon_backend=cp.SCIPY_CANON_BACKEND)
                except Exception:   # noqa: BLE001 - CVXPY fails on a few twins
                    continue
            if twin.status != "optimal":
                continue
            solution = compiled.solve()
            assert solution.status[0].is_optimal
            assert solution.value == pytest.approx(reference, rel=1e-5, abs=1e-5), seed
            checked += 1
    assert checked >= 60


def test_solve_positional_dict_and_batched_values():
    prob, (A, b, lam), x = lasso()
    compiled = prob.compile()
    A_val, b_val = rng.normal(size=A.shape), rng.normal(size=(4,) + b.shape)
    single = compiled.solve(A_val, b_val[0], 0.1)
    by_dict = compiled.solve({A: A_val, b: b_val[0], lam: 0.1})
    np.testing.assert_allclose(single[x], by_dict[x], atol=1e-12)
    assert single[x].shape == x.shape and not single.batched
    batch = compiled.solve(A_val, b_val, 0.1)           # batched b, shared A and λ
    assert batch.batched and batch[x].shape == (4,) + x.shape
    for i in range(4):
        one = compiled.solve(A_val, b_val[i], 0.1)
        np.testing.assert_allclose(batch[x][i], one[x], atol=1e-10)
        assert batch.value[i] == pytest.approx(one.value, abs=1e-10)
        for c in prob.constraints:
            np.testing.assert_allclose(batch.dual(c)[i], one.dual(c), atol=1e-8)
    assert len(batch.status) == 4 and batch.iterations.shape == (4,)
    assert np.all(batch.solve_time > 0)


def test_batch_validation_errors():
    prob, (A, b, lam), _ = lasso()
    compiled = prob.compile()
    A_val = rng.normal(size=A.shape)
    with pytest.raises(dd.ParameterValueError, match="inconsistent batch sizes"):
        compiled.solve(np.stack([A_val] * 3), rng.normal(size=(2, 10)), 0.1)
    with pytest.raises(dd.ParameterValueError, match=r"'b': value has shape \(9,\)"):
        compiled.solve(A_val, np.ones(9), 0.1)
    with pytest.raises(dd.ParameterValueError, match="expected 3 parameter values"):
        compiled.solve(A_val, np.ones(10))
    with pytest.raises(dd.ParameterValueError,
                       match=r"'lam': declared nonneg.*batch elements \[1\]"):
        compiled.solve(A_val, np.ones(10), np.array([0.1, -0.1]))
    with pytest.raises(dd.ParameterValueError, match="NaN"):
        compiled.solve(A_val, np.full(10, np.nan), 0.1)


def test_compile_requires_dpp_and_every_parameter():
    x = dd.Variable(name="x")
    p, q = dd.Parameter(name="p"), dd.Parameter(name="q")
    with pytest.raises(dd.DPPError):
        dd.Problem(dd.Minimize(p * q * x), [x >= 0]).compile()
    prob = dd.Problem(dd.Minimize(p * x + q), [x >= 0])
    with pytest.raises(dd.ParameterValueError, match="missing"):
        prob.compile(parameters=[p])


def test_solve_non_dpp_problem_uses_parameter_values():
    x = dd.Variable(name="x")
    p, q = dd.Parameter(name="p", value=2.0), dd.Parameter(name="q", value=3.0)
    prob = dd.Problem(dd.Minimize(dd.square(x - p * q)))
    assert not prob.is_dpp()
    assert prob.solve() == pytest.approx(0.0, abs=1e-8)
    assert x.value == pytest.approx(6.0, abs=1e-5)


def test_which_blocks_depend_on_parameters():
    prob, _, _ = lasso()
    deps = prob.compile().program.depends_on_parameters()
    assert deps["A"] and deps["b"] and not deps["P"]
    x = dd.Variable(3)
    c = dd.Parameter(3)
    deps = dd.Problem(dd.Minimize(c @ x + dd.sum_squares(x)), [x >= 0]).compile()\
        .program.depends_on_parameters()
    assert deps == {"P": False, "A": False, "b": False, "c": True, "d": False}


def test_pickled_compiled_problem_solves_the_same():
    prob, (A, b, lam), x = lasso()
    compiled = prob.compile()
    clone = pickle.loads(pickle.dumps(compiled))
    A_val, b_val = rng.normal(size=A.shape), rng.normal(size=b.shape)
    np.testing.assert_allclose(clone.solve(A_val, b_val, 0.2).x,
                               compiled.solve(A_val, b_val, 0.2).x, atol=1e-12)


def test_user_executor_and_process_pool():
    prob, (A, b, lam), x = lasso()
    compiled = prob.compile()
    A_val, b_val = rng.normal(size=(3,) + A.shape), rng.normal(size=(3,) + b.shape)
    default = compiled.solve(A_val, b_val, 0.1)
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        theirs = compiled.solve(A_val, b_val, 0.1, executor=pool)
    np.testing.assert_allclose(theirs[x], default[x], atol=1e-12)


@pytest.mark.slow
def test_dask_distributed_cluster_of_worker_processes():
    distributed = pytest.importorskip("distributed")
    prob, (A, b, lam), x = lasso()
    compiled = prob.compile()
    A_val, b_val = rng.normal(size=(4,) + A.shape), rng.normal(size=(4,) + b.shape)
    local = compiled.solve(A_val, b_val, 0.1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = compiled.solve(A_val, b_val, 0.1, executor=client.get_executor())
    np.testing.assert_allclose(remote[x], local[x], atol=1e-12)
    assert [s.value for s in remote.status] == ["optimal"] * 4


def cone_problems():
    x, t = dd.Variable(3, name="x"), dd.Variable(name="t")
    X = dd.Variable((2, 2), PSD=True, name="X")
    yield dd.Problem(dd.Minimize(dd.sum_squares(x - 1) + dd.norm1(x)), [dd.sum(x) == 1])
    yield dd.Problem(dd.Minimize(dd.norm(x - [1, 2, 3]) + t), [t >= dd.norm_inf(x), x >= 0])
    yield dd.Problem(dd.Maximize(dd.sum(dd.log(x)) + dd.sum(dd.entr(x))), [dd.sum(x) <= 2])
    yield dd.Problem(dd.Maximize(dd.geo_mean(x, [1, 2, 3])), [dd.norm(x) <= 1])
    yield dd.Problem(dd.Minimize(dd.trace(X @ [[2.0, 1.0], [1.0, 2.0]])), [X[0, 0] + X[1, 1] == 1])
    yield dd.Problem(dd.Minimize(dd.lambda_max(X) - dd.log_det(X)), [dd.trace(X) == 2])
    yield dd.Problem(dd.Minimize(dd.power(x[0], 1.5) + dd.inv_pos(x[1]) + dd.pnorm(x, 3)),
                     [x >= 0.5])


@pytest.mark.parametrize("index", range(7))
@pytest.mark.parametrize("solver", ["clarabel", "scs"])
def test_kkt_conditions_of_returned_solutions(index, solver):
    """Ax + s = b, Px + Aᵀy + c = 0, s ∈ K, y ∈ K*, sᵀy = 0 at the returned (x, y, s)."""
    prob = list(cone_problems())[index]
    compiled = prob.compile(solver=solver)
    solution = compiled.solve()
    tol = 1e-7 if solver == "clarabel" else 1e-5
    assert solution.status[0] is dd.SolveStatus.OPTIMAL
    assert solution.primal_residual[0] <= tol and solution.dual_residual[0] <= tol
    assert solution.gap[0] <= tol * max(1.0, abs(solution.value))
    cones = compiled.program.cones
    assert violations(solution.s[0], cones, dual=False) <= tol
    assert violations(solution.y[0], cones, dual=True) <= tol
    assert abs(solution.s[0] @ solution.y[0]) <= tol * max(1.0, abs(solution.value))


@pytest.mark.parametrize("solver", ["scs", "osqp"])
def test_warm_start_reuses_the_previous_solution(solver):
    """Warm-started solves give the cold-start answer in fewer iterations."""
    prob, (A, b, lam), x = lasso(n=30, m=60)
    compiled = prob.compile(solver=solver, **({"eps_abs": 1e-7, "eps_rel": 1e-7}))
    A_val, b_val = rng.normal(size=(4,) + A.shape), rng.normal(size=(4,) + b.shape)
    first = compiled.solve(A_val, b_val, 0.5)
    nudged = b_val + 1e-4 * rng.normal(size=b_val.shape)
    cold = compiled.solve(A_val, nudged, 0.5)
    compiled.solve(A_val, b_val, 0.5)
    warm = compiled.solve(A_val, nudged, 0.5, warm_start=True)
    np.testing.assert_allclose(warm[x], cold[x], atol=1e-4)
    assert warm.iterations.sum() < cold.iterations.sum()
    assert first.iterations.sum() > 0


def test_huber_goes_to_the_quadratic_objective():
    x = dd.Variable(5, name="x")
    a = np.array([3.0, -0.2, 0.5, -4.0, 1.0])
    prob = dd.Problem(dd.Minimize(dd.sum(dd.huber(x - a, 1.5)) + 0.3 * dd.norm1(x)))
    assert prob.compile().program.P.T.nnz == 5                 # Σ s_i² in P
    assert prob.compile(solver="ecos").program.P.T.nnz == 0    # lifted for ECOS
    X = cp.Variable(5)
    expected = cp.Problem(cp.Minimize(cp.sum(cp.huber(X - a, 1.5)) + 0.3 * cp.norm1(X))).solve()
    assert prob.solve() == pytest.approx(expected, rel=1e-7)
    assert prob.solve(solver="ecos") == pytest.approx(expected, rel=1e-6)


def _shifted_squares(lib, n=6):
    """Squares of a variable shifted by data: (problem, y, parameters, the cone program's
    equality rows: the problem's own where the square is expanded on y)."""
    y, th, lam = lib.Variable(n), lib.Parameter(n), lib.Parameter(nonneg=True)
    a = np.linspace(-1, 1, n)
    L = np.tril(np.ones((n, n))) / n
    Q = L @ L.T + np.eye(n)
    return [
        (lib.Problem(lib.Minimize(lib.sum_squares(y - th)), [lib.sum(y) == 1, y >= 0]),
         y, [th], 1),
        (lib.Problem(lib.Minimize(0.5 * lib.quad_form(y - th, Q) + a @ y), [y <= 1]),
         y, [th], 0),
        (lib.Problem(lib.Minimize(lam * lib.sum_squares(y - a) + th @ y), [y >= -2]),
         y, [lam, th], 0),
        (lib.Problem(lib.Maximize(th @ y - 2 * lib.sum_squares(y + th)), [lib.sum(y) == 0]),
         y, [th], 1),
        # not a unit variable block: a fresh r = 2y − θ carries the square (n equality rows)
        (lib.Problem(lib.Minimize(lib.sum_squares(2 * y - th)), [y >= 0]), y, [th], n),
        # squares weighted by constants: quadratic terms too (diag(2w) in P)
        (lib.Problem(lib.Minimize(lib.sum(lib.multiply(a * a + 0.1, lib.square(y - th)))),
                     [lib.sum(y) == 1, y >= 0]), y, [th], 1),
        (lib.Problem(lib.Minimize(lib.sum(lib.multiply(lib.square(L @ y - th), 3.0))
                                  + lam * lib.sum(y)), [y >= -1]), y, [th, lam], n)]


@pytest.mark.filterwarnings("ignore:You are solving a parameterized problem that is not DPP")
@pytest.mark.parametrize("case", range(7))
def test_squares_of_shifted_variables_are_expanded_on_the_variable(case):
    """‖y − θ‖²-type objectives keep their quadratic on y (½yᵀQy + (Qv)ᵀy + ½vᵀQv) instead
    of a new r = y − θ with equality rows, and squares weighted by constants go to P (no
    cones); values and objectives equal CVXPY's, the objective's ½vᵀQv included."""
    prob, y, params, equality_rows = _shifted_squares(dd)[case]
    cprob, cy, cparams, _ = _shifted_squares(cp)[case]
    program = prob.compile(fast_paths=False).program
    assert program.cones.zero == equality_rows
    assert program.n == y.size + (y.size if equality_rows == y.size else 0)
    assert not program.cones.soc and program.P.T.nnz
    local = np.random.default_rng(case)
    values = [np.abs(local.normal(size=(3,) + p.shape)) + 0.5 if p.attributes.get("nonneg")
              else local.normal(size=(3,) + p.shape) for p in params]
    sol = prob.compile(fast_paths=False).solve(*values, refine=True)
    for i in range(3):
        for p, v in zip(cparams, values, strict=True):
            p.value = v[i]
        expected = cprob.solve()
        assert sol.objective[i] == pytest.approx(expected, rel=1e-6, abs=1e-6)
        np.testing.assert_allclose(sol[y][i], cy.value, atol=1e-5)


def test_projection_onto_the_simplex_through_the_cone_solver_has_the_closed_form_gradient():
    """Sparsemax compiled without its fast path (the expanded ‖y − θ‖² on y): the gradient
    is the closed form's, (I_S − 11ᵀ/|S|) g on the support S."""
    prob, y, (th,), _ = _shifted_squares(dd, n=30)[0]
    theta = np.random.default_rng(9).normal(size=(4, 30))
    sol = prob.compile(fast_paths=False).solve(theta, refine=True)
    g = np.random.default_rng(10).normal(size=theta.shape)
    grad = sol.vjp({y: g})[th]
    for i in range(4):
        support = sol[y][i] > 1e-9
        expected = np.where(support, g[i] - g[i][support].mean(), 0.0)
        np.testing.assert_allclose(grad[i], expected, atol=1e-10)


def test_sparse_constant_matrices_compile_without_densifying():
    """G @ x with a scipy.sparse G compiles to the same cone program as with dense G, and a
    large sparse G (whose dense form would take 3.2 GB) compiles from its nonzeros."""
    import scipy.sparse as sp
    rng_local = np.random.default_rng(4)
    G = sp.random(30, 40, density=0.1, random_state=5, format="csr")
    x, h = dd.Variable(40), dd.Parameter(30)
    progs = [dd.Problem(dd.Minimize(dd.sum_squares(x)), [M @ x <= h]).compile().program
             for M in (G, G.toarray())]
    theta = np.concatenate([[1.0], rng_local.normal(size=30)])
    for block in ("A", "P"):
        a, b = getattr(progs[0], block), getattr(progs[1], block)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.values(theta), b.values(theta))
    big = sp.random(20_000, 20_000, density=5e-5, random_state=6, format="csr")
    z = dd.Variable(20_000)
    program = dd.Problem(dd.Minimize(dd.sum_squares(z)), [big @ z <= 1]).compile().program
    assert program.A.indices.size == big.nnz


def test_parameter_expressions_that_are_constant_compile_as_data():
    """power(P, 0) is constant for the DPP analysis; the compiler must agree (found by the
    property tests: it used to canonicalize inv_pos(power(P, 0)) with an epigraph variable
    and then fail to form a product)."""
    P, x = dd.Parameter((3, 3)), dd.Variable(3)
    prob = dd.Problem(dd.Minimize(dd.sum(dd.inv_pos(dd.power(P, 0)) @ x) + dd.sum_squares(x)))
    assert prob.is_dpp()
    sol = prob.compile().solve(np.ones((3, 3)))         # P's value never matters
    np.testing.assert_allclose(sol[x], -1.5 * np.ones(3), atol=1e-7)


@pytest.mark.parametrize("solver", ["clarabel", "scs", "osqp"])
def test_constant_matrices_reuse_one_workspace_per_worker(solver, monkeypatch):
    """P and A free of θ: each worker sets its solver up once and updates b and c per
    element; answers match CVXPY's element by element."""
    rng = np.random.default_rng(3)
    n, m, B = 6, 9, 8
    G, Q = rng.normal(size=(m, n)), np.eye(n) + 0.1 * np.ones((n, n))
    x, q, h = dd.Variable(n), dd.Parameter(n), dd.Parameter(m)
    prob = dd.Problem(dd.Minimize(0.5 * dd.quad_form(x, Q) + q @ x), [G @ x <= h])
    compiled = prob.compile(solver=solver)
    adapter = compiled.adapter
    setups = []
    original = type(adapter).setup
    monkeypatch.setattr(type(adapter), "setup",
                        lambda self, *a: setups.append(1) or original(self, *a))
    qs, hs = rng.normal(size=(B, n)), np.abs(rng.normal(size=(B, m))) + 0.5
    pool = concurrent.futures.ThreadPoolExecutor(2)
    sol = compiled.solve(qs, hs, executor=pool)
    assert len(setups) == 2                     # one per worker, not one per element
    xc, qc, hc = cp.Variable(n), cp.Parameter(n), cp.Parameter(m)
    twin = cp.Problem(cp.Minimize(0.5 * cp.quad_form(xc, Q) + qc @ xc), [G @ xc <= hc])
    for i in range(B):
        qc.value, hc.value = qs[i], hs[i]
        twin.solve(solver=cp.CLARABEL)
        np.testing.assert_allclose(sol[x][i], xc.value, atol=1e-6)


def test_norm_bound_is_one_second_order_cone_with_cvxpys_dual():
    """‖Fw‖ ≤ r compiles to the cone (r, Fw) itself: no epigraph variable, and the
    constraint's dual (the cone's t entry) equals CVXPY's multiplier."""
    rng = np.random.default_rng(4)
    n, k = 6, 3
    F, mu = rng.normal(size=(k, n)), rng.normal(size=n)
    w, r = dd.Variable(n), dd.Parameter(nonneg=True)
    bound = dd.norm(F @ w) <= r
    prob = dd.Problem(dd.Maximize(mu @ w - 0.1 * dd.sum_squares(w)), [bound, dd.sum(w) == 1])
    compiled = prob.compile()
    assert compiled.program.n == n and compiled.program.cones.soc == (k + 1,)
    sol = compiled.solve(0.2, refine=True)
    wc = cp.Variable(n)
    bc = cp.norm(F @ wc) <= 0.2
    cp.Problem(cp.Maximize(mu @ wc - 0.1 * cp.sum_squares(wc)), [bc, cp.sum(wc) == 1]).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert bc.dual_value > 1e-3                               # the bound is active
    np.testing.assert_allclose(sol[w], wc.value, atol=1e-6)
    np.testing.assert_allclose(sol.dual(bound), bc.dual_value, rtol=1e-5)
    # d value / d r = the multiplier (envelope theorem), through the derivative of w
    g = sol.vjp({w: mu - 0.2 * sol[w]})[r]
    assert g == pytest.approx(float(bc.dual_value), rel=1e-5)


def _entropy_problem():
    y, theta = dd.Variable(6), dd.Parameter(6)
    prob = dd.Problem(dd.Maximize(theta @ y + dd.sum(dd.entr(y))), [dd.sum(y) == 1])
    return prob, y


def _recorded_tolerances(monkeypatch):
    """Record each adapter call's tol_feas and instance count."""
    from diffdsl import compiled as module
    calls = []
    one, many = module.solve_instance, module.solve_sequence
    monkeypatch.setattr(module, "solve_instance", lambda name, data, options, warm: (
        calls.append((options.get("tol_feas"), 1)) or one(name, data, options, warm)))
    monkeypatch.setattr(module, "solve_sequence", lambda name, data, options, warm: (
        calls.append((options.get("tol_feas"), len(data))) or many(name, data, options, warm)))
    return calls


def test_refined_solves_run_the_solver_at_its_refining_tolerance(monkeypatch):
    """refine=True: Clarabel stops at its ``refining_options`` (feasibility 1e-7, gap
    1e-6) and Newton makes the answers exact; they equal the softmax closed form (the
    entropy-regularized argmax) to rounding. A caller's own tolerance is kept as given."""
    prob, y = _entropy_problem()
    thetas = np.random.default_rng(5).normal(size=(4, 6))
    softmax = np.exp(thetas) / np.exp(thetas).sum(1, keepdims=True)
    calls = _recorded_tolerances(monkeypatch)
    compiled = prob.compile(fast_paths=False)
    sol = compiled.solve(thetas, refine=True)
    assert {tol for tol, _ in calls} == {1e-7}
    assert "refined:    tol_gap_abs=1e-06" in str(compiled.contract())     # stated
    np.testing.assert_allclose(sol[y], softmax, atol=1e-13)
    assert all(s.value == "optimal" for s in sol.status)
    assert np.max(sol.kkt_residual) <= 1e-12
    calls.clear()
    chosen = prob.compile(fast_paths=False, tol_feas=1e-8)
    chosen.solve(thetas, refine=True)
    assert {tol for tol, _ in calls} == {1e-8}
    assert "refined:" not in str(chosen.contract())
    calls.clear()                  # a damped rule is not refined: nothing to loosen for
    damped = dd.DerivativeRule("implicit", reg=1e-6)
    prob.compile(fast_paths=False, rule=damped).solve(thetas, refine=True)
    assert {tol for tol, _ in calls} == {1e-9}


def test_elements_the_refinement_cannot_make_exact_are_solved_again_tightly(monkeypatch):
    """An element whose refined point is not exact is solved again with the default
    tolerances (only that element); the others keep their refined answers."""
    from diffdsl.compiled import Solution
    prob, y = _entropy_problem()
    thetas = np.random.default_rng(6).normal(size=(4, 6))
    exact = Solution.exact
    tries = []
    monkeypatch.setattr(Solution, "exact", lambda self, i: (
        tries.append(i) or (i != 2 and exact(self, i))))
    calls = _recorded_tolerances(monkeypatch)
    sol = prob.compile(fast_paths=False).solve(thetas, refine=True)
    assert calls[-1] == (1e-9, 1) and all(tol == 1e-7 for tol, _ in calls[:-1])
    assert sorted(set(tries)) == [0, 1, 2, 3]
    softmax = np.exp(thetas) / np.exp(thetas).sum(1, keepdims=True)
    np.testing.assert_allclose(sol[y], softmax, atol=1e-13)
