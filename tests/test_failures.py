"""Failure modes, bad input and the contracts: per element statuses and the failure policy,
certificates, typed input errors through every entry point, contracts, and flagged
derivatives."""
import warnings

import numpy as np
import pytest

import diffdsl as dd
from diffdsl.backends.numpy import NumpyLayer
from diffdsl.errors import DegenerateDerivativeWarning, NonUniqueSolutionWarning


def box_problem():
    """min (x − q)² s.t. 1 ≤ x ≤ h: infeasible when h < 1."""
    x, q, h = dd.Variable(name="x"), dd.Parameter(name="q"), dd.Parameter(name="h")
    return dd.Problem(dd.Minimize(dd.square(x - q)), [x >= 1, x <= h]), x, q, h


# ------------------------------------------------------------------------- statuses, policy
def test_nan_policy_keeps_the_rest_of_the_batch():
    prob, x, q, h = box_problem()
    compiled = prob.compile()
    sol = compiled.solve(np.array([0.0, 3.0, 5.0]), np.array([2.0, 0.0, 4.0]))
    assert [s.value for s in sol.status] == ["optimal", "infeasible", "optimal"]
    assert np.isnan(sol[x][1]) and sol[x][0] == pytest.approx(1.0, abs=1e-7)
    grads = sol.vjp({x: np.ones(3)})
    assert np.all(np.isfinite(grads[q])) and grads[q][1] == 0.0 and grads[h][1] == 0.0
    assert sol.derivative_flags(1) == ["not solved: infeasible (zero derivative)"]


def test_raise_policy_names_elements_statuses_and_residuals():
    prob, x, q, h = box_problem()
    with pytest.raises(dd.SolverError) as err:
        prob.compile().solve(np.array([0.0, 3.0]), np.array([2.0, 0.0]), on_failure="raise")
    text = str(err.value)
    assert "1 of 2" in text and "element 1: infeasible" in text and "primal residual" in text
    assert "check the data" in text                          # the status's hint


def test_layers_follow_the_policy_and_report_status_codes():
    torch = pytest.importorskip("torch")
    from diffdsl.backends.torch import TorchLayer
    prob, x, q, h = box_problem()
    layer = TorchLayer(prob, [q, h], [x], on_failure="nan", return_status=True)
    qt = torch.tensor([0.0, 3.0, 5.0], requires_grad=True)
    out, codes = layer(qt, torch.tensor([2.0, 0.0, 4.0]))
    assert codes.tolist() == [0, list(dd.SolveStatus).index(dd.SolveStatus.INFEASIBLE), 0]
    assert torch.isnan(out[1]) and not torch.isnan(out[[0, 2]]).any()
    torch.nan_to_num(out).sum().backward()
    assert torch.isfinite(qt.grad).all() and qt.grad[1] == 0
    assert layer.last_solution.status[1] is dd.SolveStatus.INFEASIBLE
    with pytest.raises(dd.SolverError, match="element 1: infeasible"):
        TorchLayer(prob, [q, h], [x])(qt, torch.tensor([2.0, 0.0, 4.0]))


def test_jax_nan_policy_gives_zero_gradients_for_failed_elements():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from diffdsl.backends.jax import JaxLayer
    prob, x, q, h = box_problem()
    layer = JaxLayer(prob, [q, h], [x], on_failure="nan", return_status=True)
    hs = jax.numpy.array([2.0, 0.0, 4.0])
    out, codes = layer(jax.numpy.array([0.0, 3.0, 5.0]), hs)
    assert np.isnan(out[1]) and codes[1] == list(dd.SolveStatus).index(dd.SolveStatus.INFEASIBLE)
    grad = jax.grad(lambda a: jax.numpy.nansum(layer(a, hs)[0]))(jax.numpy.array([0.0, 3.0,
                                                                                    5.0]))
    assert np.all(np.isfinite(grad)) and grad[1] == 0.0


# ------------------------------------------------------------------------- certificates
@pytest.mark.parametrize("solver", ["clarabel", "scs", "ecos"])
def test_infeasibility_and_unboundedness_certificates(solver):
    x = dd.Variable(2)
    infeasible = dd.Problem(dd.Minimize(dd.sum(x)), [x >= 1, dd.sum(x) <= 1])
    sol = infeasible.compile(solver=solver).solve()
    assert sol.status[0] is dd.SolveStatus.INFEASIBLE
    cert = sol.certificate()
    assert cert["kind"] == "infeasible" and cert["verified"]
    ray = dd.Problem(dd.Minimize(-dd.sum(x)), [x >= 0]).compile(solver=solver).solve()
    assert ray.status[0] is dd.SolveStatus.UNBOUNDED
    cert = ray.certificate()
    assert cert["kind"] == "unbounded" and cert["verified"] and np.all(cert["x"] >= -1e-6)
    assert dd.Problem(dd.Minimize(dd.sum_squares(x))).compile().solve().certificate() is None


def test_an_unverifiable_unbounded_report_becomes_a_solver_error():
    """A boxed problem with coefficients near 1e20: Clarabel reports 'unbounded', but its
    ray violates the box; the status says solver_error (found by the property tests)."""
    S, a = dd.Variable((3, 3), symmetric=True, name="S"), dd.Parameter(3, name="a")
    P = dd.Parameter((3, 3), name="P")
    prob = dd.Problem(dd.Minimize(dd.sum(np.array([[-0.9, -1.3, -1.72], [-1.22, -1.74, -1.99]])
                                         @ (S * (a @ P @ a))) + 0.1 * dd.sum_squares(S)),
                      [S <= 100, S >= -100])
    a_value = np.array([2253309.03, 77415.895, -138344.072])
    P_value = np.array([[4068513.44, 2285671.71, -1896514.93], [2285671.71, 1739493.95,
                        -1648591.44], [-1896514.93, -1648591.44, 1929619.82]])
    a.value, P.value = a_value, P_value
    sol = prob.compile(parameters_as_constants=True).solve()
    raw = sol.raw[0].status                      # what Clarabel said
    assert raw is dd.SolveStatus.UNBOUNDED and not sol.certificate()["verified"]
    assert sol.status[0] is dd.SolveStatus.SOLVER_ERROR


# ------------------------------------------------------------------------- input validation
def qp_layer(**kw):
    x, q = dd.Variable(3, name="x"), dd.Parameter(3, name="q")
    S = dd.Parameter((2, 2), name="S", PSD=True)
    w = dd.Parameter(name="w", nonneg=True)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(x) + q @ x + w * dd.sum(x)
                                  + dd.trace(S)), [x >= -1])
    return NumpyLayer(prob, [q, S, w], [x], **kw)


GOOD = [np.ones(3), np.eye(2), 1.0]


@pytest.mark.parametrize("args, message", [
    ([np.ones(4), np.eye(2), 1.0], r"'q': value has shape \(4,\), expected \(3,\)"),
    ([np.ones(3) * 1j, np.eye(2), 1.0], "'q': values must be real numbers; got a complex"),
    ([np.array(["a", "b", "c"]), np.eye(2), 1.0], "'q': values must be real numbers"),
    ([np.array([1.0, np.nan, 0.0]), np.eye(2), 1.0], "'q': value contains NaN or Inf"),
    ([np.ones(3), np.eye(2), -1.0], "'w': declared nonneg"),
    ([np.ones(3), np.array([[1.0, 2.0], [0.0, 1.0]]), 1.0], "'S': declared .*not symmetric"),
    ([np.ones(3), -np.eye(2), 1.0], "'S': declared PSD, but the value has a negative"),
    ([np.ones(3), np.eye(2)], "expected 3 parameter values"),
    ([np.ones((2, 3)), np.ones((3, 2, 2)), 1.0], "inconsistent batch sizes"),
    ([np.ones((2, 3)), np.eye(2), np.array([1.0, -1.0])], r"'w'.*batch elements \[1\]"),
])
def test_bad_layer_input_raises_a_typed_error_naming_the_parameter(args, message):
    with pytest.raises(dd.ParameterValueError, match=message):
        qp_layer()(*args)


def test_bad_problems_and_options_raise_typed_errors():
    x, p = dd.Variable(2), dd.Parameter(2)
    with pytest.raises(dd.DCPError):
        NumpyLayer(dd.Problem(dd.Maximize(dd.sum_squares(x))), [], [x])
    with pytest.raises(dd.DPPError):
        NumpyLayer(dd.Problem(dd.Minimize(dd.sum_squares(x) + (p @ p) * dd.sum(x))), [p], [x])
    with pytest.raises(dd.SolverError, match="ecos cannot take psd"):
        NumpyLayer(dd.Problem(dd.Minimize(dd.lambda_max(dd.diag(x)))), [], [x], solver="ecos")
    with pytest.raises(dd.SolverError, match="unknown clarabel option"):
        NumpyLayer(dd.Problem(dd.Minimize(dd.sum_squares(x - p))), [p], [x], max_iterz=5)
    with pytest.raises(ValueError, match="on_failure must be"):
        qp_layer(on_failure="ignore")
    with pytest.raises(ValueError, match="proximal must be a positive"):
        dd.Problem(dd.Minimize(dd.sum_squares(x - p))).compile(proximal=-1.0)
    with pytest.raises(dd.ParameterValueError, match="values must be real numbers"):
        dd.Problem(dd.Minimize(dd.sum_squares(x - p))).compile().solve(np.array([1j, 0]))


# ------------------------------------------------------------------------- contracts
def test_contract_states_problem_convention_rule_and_tolerances():
    x, c = dd.Variable(3, name="x"), dd.Parameter(3, name="c")
    lp = dd.Problem(dd.Minimize(c @ x), [x >= 0, dd.sum(x) == 1])
    contract = lp.compile().contract()
    text = str(contract)
    assert "minimize c @ x" in text and "3 variables, 4 cone rows" in text
    assert contract.unique is None and "checked per solution" in text and "proximal" in text
    assert "implicit: the exact derivative" in text and "tol_gap_abs=1e-09" in text
    assert "backward residual" in text
    prox = lp.compile(proximal=0.1)
    assert prox.contract().unique and "ρ = 0.1" in str(prox.contract())
    ridge = dd.Problem(dd.Minimize(dd.sum_squares(x - c)), [x >= 0])
    assert ridge.compile(fast_paths=False).contract().unique
    assert "unique: the objective's quadratic part is strictly convex" in repr(
        NumpyLayer(ridge, [c], [x], fast_paths=False))
    fast = str(ridge.compile().contract())
    assert "closed form" in fast and "nonnegative orthant" in fast


def test_proximal_term_is_part_of_the_model():
    x, c = dd.Variable(3, name="x"), dd.Parameter(3, name="c")
    lp = dd.Problem(dd.Minimize(c @ x), [x >= 0, dd.sum(x) == 1])
    value = np.array([1.0, 1.0, 2.0])                     # a tie between x0 and x1
    sol = lp.compile(proximal=0.1).solve(value, refine=True)
    # argmin c·x + 0.05‖x‖² on the simplex: x0 = x1 = 0.5
    np.testing.assert_allclose(sol[x], [0.5, 0.5, 0.0], atol=1e-8)
    assert sol.derivative_diagnostics()["differentiable"]


# ------------------------------------------------------------------------- flagged derivatives
def test_non_unique_solution_warns_once_when_differentiated():
    """A tie in the LP's cost: the optimal face is an edge, the derivative system singular."""
    x, c = dd.Variable(3, name="x"), dd.Parameter(3, name="c")
    compiled = dd.Problem(dd.Minimize(c @ x), [x >= 0, dd.sum(x) == 1]).compile()
    tie = np.array([1.0, 1.0, 2.0])
    with pytest.warns(DegenerateDerivativeWarning, match="singular backward system"):
        with pytest.warns(NonUniqueSolutionWarning, match="not unique"):
            compiled.solve(tie).vjp({x: np.ones(3)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonUniqueSolutionWarning)
        warnings.simplefilter("ignore", DegenerateDerivativeWarning)
        compiled.solve(tie).vjp({x: np.ones(3)})                   # not again
        compiled.solve(np.array([1.0, 2.0, 3.0])).vjp({x: np.ones(3)})   # a unique vertex


def test_degenerate_derivative_is_flagged_and_warned_and_finite():
    x, p = dd.Variable(name="x"), dd.Parameter(name="p")
    sol = dd.Problem(dd.Minimize(dd.square(x - p)), [x >= 0]).compile().solve(0.0)
    with pytest.warns(DegenerateDerivativeWarning, match="strict complementarity"):
        g = sol.vjp({x: 1.0})[p]
    assert np.isfinite(g)
    assert any("degenerate" in f for f in sol.derivative_flags(0))


def test_singular_backward_system_gives_a_finite_least_squares_derivative():
    """Two copies of one constraint: the multipliers are not unique, M is singular."""
    x, p = dd.Variable(2, name="x"), dd.Parameter(name="p")
    prob = dd.Problem(dd.Minimize(dd.sum_squares(x)), [dd.sum(x) == p, 2 * dd.sum(x) == 2 * p])
    sol = prob.compile().solve(1.0)
    with pytest.warns(DegenerateDerivativeWarning, match="singular"):
        grad = sol.vjp({x: np.array([1.0, 0.0])})[p]
    assert np.isfinite(grad) and grad == pytest.approx(0.5, abs=1e-8)   # x = (p/2, p/2)


def test_jax_layer_warns_about_degenerate_derivatives():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from diffdsl.backends.jax import JaxLayer
    x, p = dd.Variable(name="x"), dd.Parameter(name="p")
    layer = JaxLayer(dd.Problem(dd.Minimize(dd.square(x - p)), [x >= 0]), [p], [x])
    with pytest.warns(DegenerateDerivativeWarning, match="strict complementarity"):
        g = jax.grad(lambda v: layer(v)[0])(0.0)
    assert np.isfinite(g)
