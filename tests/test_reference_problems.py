"""CVXPY's published reference problems (cvxpy/tests/solver_test_helpers.py: LP, QP, SOCP,
SDP, exponential and power cone, with known optimal values), translated with
``from_cvxpy`` and solved by every solver that accepts their cones."""
import warnings

import cvxpy as cp
import numpy as np
import pytest

import diffdsl as dd

H = pytest.importorskip("cvxpy.tests.solver_test_helpers")

# name → (builder, decimals of the published optimal value)
REFERENCES = {
    "lp_0": (H.lp_0, 6), "lp_1": (H.lp_1, 6), "lp_2": (H.lp_2, 6), "lp_3": (H.lp_3, 6),
    "lp_4": (H.lp_4, 6), "lp_5": (H.lp_5, 6), "lp_6": (H.lp_6, 6), "lp_7": (H.lp_7, 6),
    "qp_0": (H.qp_0, 6), "socp_0": (H.socp_0, 6), "socp_1": (H.socp_1, 6),
    "socp_2": (H.socp_2, 6), "socp_3_0": (lambda: H.socp_3(0), 6),
    "socp_3_1": (lambda: H.socp_3(1), 6), "socp_4": (H.socp_4, 6),
    "sdp_1_min": (lambda: H.sdp_1("min"), 2), "sdp_1_max": (lambda: H.sdp_1("max"), 2),
    "sdp_2": (H.sdp_2, 6), "expcone_1": (H.expcone_1, 6),
    "expcone_socp_1": (H.expcone_socp_1, 6), "sdp_pcp_1": (H.sdp_pcp_1, 4),
    "pcp_1": (H.pcp_1, 6), "pcp_2": (H.pcp_2, 6), "pcp_3": (H.pcp_3, 6),
}
SOLVERS = ["clarabel", "scs", "ecos", "osqp"]
# Redundant equality constraints: the multipliers are not unique, so duals are not compared.
NONUNIQUE_DUALS = {"lp_5"}
DUAL_TOL = {"clarabel": 1e-5, "scs": 1e-4, "ecos": 1e-5, "osqp": 1e-5}


def cases():
    for name in REFERENCES:
        for solver in SOLVERS:
            yield pytest.param(name, solver, id=f"{name}-{solver}")


@pytest.mark.parametrize("name, solver", list(cases()))
def test_reference_problem(name, solver):
    build, decimals = REFERENCES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        helper = build()
    problem, _ = dd.from_cvxpy(helper.prob)
    try:
        value = problem.solve(solver=solver)
    except dd.SolverError as err:
        assert "cannot take" in str(err)
        pytest.skip(f"{solver} does not accept these cones: {err}")
    expected = helper.expect_val
    if np.isinf(expected):
        assert value == expected
        assert problem.status == ("unbounded" if expected * (1 if problem.objective.sense ==
                                                             "minimize" else -1) < 0
                                  else "infeasible")
        return
    assert problem.status == "optimal"
    assert value == pytest.approx(expected, abs=0.5 * 10.0 ** -decimals * max(1, abs(expected)))
    # Against CVXPY solving the same problem with the same solver at tight tolerance.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = helper.prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10,
                                      tol_feas=1e-10)
    assert value == pytest.approx(reference, rel=1e-6, abs=1e-6)
    if name in NONUNIQUE_DUALS:
        return
    for ours, theirs in zip(problem.constraints, helper.prob.constraints, strict=True):
        compare_duals(ours.dual_value, theirs.dual_value, DUAL_TOL[solver])


def compare_duals(ours, theirs, tol):
    if isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            compare_duals(a, b, tol)
        return
    np.testing.assert_allclose(np.asarray(ours, float).reshape(-1),
                               np.asarray(theirs, float).reshape(-1), atol=tol * 10, rtol=tol * 10)


def test_unsupported_cone_is_a_clear_error():
    X = dd.Variable((2, 2), PSD=True)
    prob = dd.Problem(dd.Minimize(dd.trace(X)), [X[0, 0] >= 1])
    with pytest.raises(dd.SolverError, match="ecos cannot take psd cones; solvers that can: "
                                             "clarabel, scs"):
        prob.compile(solver="ecos")
    with pytest.raises(dd.SolverError, match="unknown solver"):
        prob.compile(solver="gurobi")
    with pytest.raises(dd.SolverError, match="unknown scs option"):
        prob.compile(solver="scs", epsilon=1)


def test_cvxpy_reference_problem_values_are_what_cvxpy_gets():
    """The translation itself: diffdsl's problem has CVXPY's optimal value."""
    x = cp.Variable(3)
    p = cp.Parameter(3, value=[1.0, 2.0, 3.0])
    prob = cp.Problem(cp.Minimize(cp.sum_squares(x - p) + cp.norm1(x)), [cp.sum(x) == 1])
    expected = prob.solve()
    ours, mapping = dd.from_cvxpy(prob)
    assert ours.solve() == pytest.approx(expected, rel=1e-7)
    np.testing.assert_allclose(mapping[x].value, x.value, atol=1e-4)
    assert mapping[p].value.tolist() == [1.0, 2.0, 3.0]
