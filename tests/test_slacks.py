"""The slack substitution (``diffdsl.solvers.slacks``): the lasso's |x| ≤ t pairs become
bounds on their slacks, so the native method works in the bound space. Checked: the
substituted data describe the same program; solutions against CVXPY; derivatives (reverse
and forward, with parametric row offsets too) against the one-by-one HSDE derivative at
Clarabel's solutions and against central differences; Clarabel's answers polished as one
substituted batch; the bound space's derivative with free variables lacking curvature
against the x-space one; products by column classes."""
import numpy as np
import pytest

import diffdsl as dd

rng = np.random.default_rng(53)


# the references are Clarabel's answers refined one element at a time (conftest)
pytestmark = pytest.mark.usefixtures("one_by_one_references")


def lasso(m=12, n=20, shifted=False):
    """min ‖Ax − b‖² + 0.1‖x − x₀‖₁ (A, b and, ``shifted``, x₀ parameters: then the pairs'
    rows x − x₀ − t ≤ 0 have parametric offsets)."""
    A, b, x = dd.Parameter((m, n)), dd.Parameter(m), dd.Variable(n)
    x0 = dd.Parameter(n) if shifted else None
    penalty = dd.norm1(x - x0) if shifted else dd.norm1(x)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(A @ x - b) + 0.1 * penalty))
    params = [A, b] + ([x0] if shifted else [])
    return prob, params, x


def lasso_values(B, m=12, n=20, shifted=False):
    values = [rng.normal(size=(B, m, n)), rng.normal(size=(B, m))]
    return values + ([0.3 * rng.normal(size=(B, n))] if shifted else [])


def test_the_lasso_pairs_are_found_and_the_substituted_data_are_the_same_program():
    from diffdsl.compiled import ProgramValues
    from diffdsl.solvers import arrays, native
    prob, params, _ = lasso(shifted=True)
    compiled = prob.compile(params, solver="native")
    program = compiled.program
    sub = native.substitution(program)
    (R, V, _, C, _), = sub.groups.values()
    assert R.shape == (20, 2) and np.allclose(np.abs(C), 1.0)
    assert sub.bounds[0].size == program.cones.nonneg                # every pair row a bound
    assert sub.columns.dense.size == 20                              # (u_i, v_i): one class
    theta, _ = compiled.theta(*lasso_values(3, shifted=True))
    values = ProgramValues.at(program, theta)
    ops = arrays.namespace("numpy")
    P, A = native.dense_data(program, values)
    c, b = values.c.T, values.b.T
    P2, c2, A2, b2, _ = sub.data(ops, P, c, A, b)
    offsets = []
    for _ in range(2):
        x = rng.normal(size=(3, program.n))
        x2 = sub.substituted(ops, x, b)
        np.testing.assert_allclose(sub.primal(ops, x2, b), x, atol=1e-12)
        np.testing.assert_allclose(np.einsum("bij,bj->bi", A2, x2) - b2,
                                   np.einsum("bij,bj->bi", A, x) - b, atol=1e-12)
        offsets.append((c * x).sum(1) - (c2 * x2).sum(1))
    np.testing.assert_allclose(offsets[0], offsets[1], atol=1e-12)  # cᵀx = c'ᵀx' + const


@pytest.mark.parametrize("shifted", [False, True], ids=["lasso", "shifted"])
def test_native_lasso_matches_cvxpy_and_the_hsde_derivative(shifted):
    cp = pytest.importorskip("cvxpy")
    prob, params, x = lasso(shifted=shifted)
    values = lasso_values(6, shifted=shifted)
    ours = prob.compile(params, solver="native").solve(*values)
    assert all(s is dd.SolveStatus.OPTIMAL for s in ours.status)
    assert ours._batch_derivative.usable.all()
    Ac, bc, xc = cp.Parameter((12, 20)), cp.Parameter(12), cp.Variable(20)
    x0c = cp.Parameter(20)
    penalty = cp.norm1(xc - x0c) if shifted else cp.norm1(xc)
    reference = cp.Problem(cp.Minimize(cp.sum_squares(Ac @ xc - bc) + 0.1 * penalty))
    for i in range(6):
        Ac.value, bc.value = values[0][i], values[1][i]
        x0c.value = values[2][i] if shifted else np.zeros(20)
        reference.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10,
                        tol_feas=1e-10)
        np.testing.assert_allclose(ours[x][i], xc.value, atol=1e-6)
    hsde = prob.compile(params).solve(*values, refine=True)
    g = rng.normal(size=ours[x].shape)
    a, b = ours.vjp({x: g}), hsde.vjp({x: g})
    for p in params:
        np.testing.assert_allclose(a[p], b[p], atol=1e-8)
    tangents = {p: rng.normal(size=v.shape) for p, v in zip(params, values, strict=True)}
    np.testing.assert_allclose(ours.jvp(tangents)[0][x], hsde.jvp(tangents)[0][x], atol=1e-8)


def test_clarabel_answers_are_polished_as_one_substituted_batch(monkeypatch):
    """``refine`` on Clarabel's lasso answers: one batch polish of the substituted program
    (bound space) instead of 8 refinements, equal to the one-by-one refinement's points
    and HSDE derivative."""
    from diffdsl.solvers import native
    prob, params, x = lasso(shifted=True)
    compiled = prob.compile(params)
    values = lasso_values(8, shifted=True)
    reference = compiled.solve(*values, refine=True)
    g = rng.normal(size=reference[x].shape)
    expected = reference.vjp({x: g})
    monkeypatch.setattr(native, "POLISH_SUBSTITUTED_SIZE", 600)
    batches, polish = [], native.polish_batch

    def spy(*args):
        batches.append(polish(*args))
        return batches[-1]

    monkeypatch.setattr(native, "polish_batch", spy)
    ours = compiled.solve(*values, refine=True)
    assert batches and batches[0] is not None and batches[0][1].exact.all()
    assert all(s is dd.SolveStatus.OPTIMAL for s in ours.status)
    np.testing.assert_allclose(ours[x], reference[x], atol=1e-10)
    got = ours.vjp({x: g})
    for p in params:
        np.testing.assert_allclose(got[p], expected[p], atol=1e-8)


def test_native_lasso_gradient_matches_central_differences():
    prob, params, x = lasso(shifted=True)
    compiled = prob.compile(params, solver="native")
    values = lasso_values(1, shifted=True)
    g = rng.normal(size=(1, 20))
    grads = compiled.solve(*values).vjp({x: g})
    for k, step in ((1, 1e-6), (2, 1e-6)):                   # b and x₀
        direction = rng.normal(size=values[k].shape)
        moved = [[v + s * step * direction if j == k else v for j, v in enumerate(values)]
                 for s in (1, -1)]
        f = [float((compiled.solve(*vals)[x] * g).sum()) for vals in moved]
        np.testing.assert_allclose((f[0] - f[1]) / (2 * step),
                                   float((grads[params[k]] * direction).sum()), rtol=1e-5,
                                   atol=1e-7)


def test_bound_space_derivative_with_free_uncurved_variables_equals_the_x_space_one():
    """At the substituted lasso's polished points the bound space's derivative keeps the
    free slacks (P = 0 there) as unknowns: its solves with M and Mᵀ equal the x-space
    system's, and so does the whole batch's polish."""
    from diffdsl.compiled import ProgramValues
    from diffdsl.solvers import arrays, ipm, native
    prob, params, _ = lasso(shifted=True)
    compiled = prob.compile(params, solver="native")
    program = compiled.program
    sub = native.substitution(program)
    theta, _ = compiled.theta(*lasso_values(4, shifted=True))
    values = ProgramValues.at(program, theta)
    ops = arrays.namespace("numpy")
    P, A = native.dense_data(program, values)
    P, c, A, b, _ = sub.data(ops, P, values.c.T, A, values.b.T)
    cones = ipm.Cones.of(ops, program.cones)
    bounds = ipm.BoundSpace.of(ops, P, A, cones.zero, sub.bounds, program.n + cones.zero,
                               sub.columns)
    x, y, s, status, _, d = ipm.solve_polished(ops, cones, P, c, A, b, bounds=bounds)
    assert d.reduced is not None and d.reduced[3] is not None        # kept variables
    full = ipm.Derivative(ops, cones, P, A, d.x, d.y, d.y - d.v)
    assert full.reduced is None
    for transpose in (False, True):
        r = rng.normal(size=(4, program.n + program.m))
        np.testing.assert_allclose(d.solve(r, transpose), full.solve(r, transpose),
                                   rtol=1e-8, atol=1e-8)


def test_column_classes_give_the_dense_products():
    """The bound space with the substitution's column classes (a pair's slack columns are
    multiples of one another; the residual rows' columns hold one entry) against the same
    space without them: A x, Aᵀy and the reduced Newton solve."""
    from diffdsl.compiled import ProgramValues
    from diffdsl.solvers import arrays, ipm, native
    prob, params, _ = lasso()
    compiled = prob.compile(params, solver="native")
    program = compiled.program
    sub = native.substitution(program)
    theta, _ = compiled.theta(*lasso_values(3))
    values = ProgramValues.at(program, theta)
    ops = arrays.namespace("numpy")
    P, A = native.dense_data(program, values)
    P, c, A, b, _ = sub.data(ops, P, values.c.T, A, values.b.T)
    args = (ops, P, A, program.cones.zero, sub.bounds, program.n + program.cones.zero)
    classes, plain = ipm.BoundSpace.of(*args, sub.columns), ipm.BoundSpace.of(*args)
    x, y = rng.normal(size=(3, program.n)), rng.normal(size=(3, program.m))
    np.testing.assert_allclose(classes.times(x), np.einsum("bij,bj->bi", A, x), atol=1e-12)
    np.testing.assert_allclose(classes.times_t(y), np.einsum("bij,bi->bj", A, y), atol=1e-12)
    diag = np.abs(rng.normal(size=(3, program.m))) + 0.1
    a, r = rng.normal(size=(3, program.n)), rng.normal(size=(3, program.m))
    for u, v in zip(classes.solve(ops, classes.factor(ops, diag, None), a, r),
                    plain.solve(ops, plain.factor(ops, diag, None), a, r), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("namespace", ["hybrid", "torch"])
def test_auto_takes_native_for_the_lasso_and_torch_layers_agree(namespace, monkeypatch):
    """The torch native layer against the Clarabel layer, its solve in the CPU's hybrid
    namespace and all in PyTorch (the GPU's code path, here on the CPU)."""
    torch = pytest.importorskip("torch")
    import diffdsl.backends.torch as torch_backend
    from diffdsl.backends.torch import TorchLayer
    prob, params, x = lasso()
    assert "slack substitution" in prob.compile(params, solver="auto").auto_choice
    values = [torch.tensor(v, requires_grad=True) for v in lasso_values(4)]
    weights = torch.tensor(rng.normal(size=(4, 20)))
    grads = []
    for solver in ("native", "clarabel"):
        with monkeypatch.context() as patch:
            if solver == "native":
                patch.setattr(torch_backend, "_native_namespace", lambda *_: namespace)
            layer = TorchLayer(prob, params, [x], solver=solver)
            (out,) = layer(*values)
            grads.append(torch.autograd.grad((out * weights).sum(), values))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-8)
