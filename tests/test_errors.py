"""DCPError / DPPError name the smallest offending subexpression, its curvature, the rule
it breaks and, for common mistakes, a rewrite."""
import pytest

import diffdsl as dd
from expression_corpus import Corpus


def error_of(problem, kind=dd.DCPError):
    with pytest.raises(kind) as info:
        problem.check_dpp() if kind is dd.DPPError else problem.check_dcp()
    return info.value


def test_sqrt_of_sum_squares_suggests_norm():
    x = dd.Variable(3, name="x")
    err = error_of(dd.Problem(dd.Minimize(dd.sqrt(dd.sum_squares(x)))))
    assert str(err.expression) == "sqrt(sum_squares(x))"
    assert err.curvature is dd.Curvature.UNKNOWN
    assert "sqrt is concave" in err.rule and "sum_squares(x)) is convex" in err.rule
    assert "norm(x)" in err.rewrite
    assert "culprit:    sqrt(sum_squares(x))" in str(err)


def test_smallest_culprit_is_reported():
    x = dd.Variable(3, name="x")
    inner = dd.log(dd.exp(x[0]))                # concave of convex: the first failure
    err = error_of(dd.Problem(dd.Minimize(dd.abs(inner + 1) + dd.norm(x))))
    assert err.expression is inner
    assert "log is concave" in err.rule and "exp(x[0])) is convex and log is increasing" in err.rule


@pytest.mark.parametrize("constraint", ["eq", "ge"])
def test_square_of_norm_in_a_constraint(constraint):
    x = dd.Variable(3, name="x")
    lhs = dd.square(dd.norm(x))
    c = lhs == 1 if constraint == "eq" else lhs >= 1
    err = error_of(dd.Problem(dd.Minimize(0), [c]))
    assert err.expression is lhs and err.curvature is dd.Curvature.CONVEX
    assert "must be" in err.rule
    assert "sum_squares(x)" in err.rewrite and "bounded above" in err.rewrite
    assert str(c) in err.where


def test_product_of_two_variables():
    x, y = dd.Variable(name="x"), dd.Variable(name="y")
    err = error_of(dd.Problem(dd.Minimize(x * y)))
    assert str(err.expression) == "x * y"
    assert "both contain variables" in err.rule
    assert "product of two variables is not convex" in err.rewrite


@pytest.mark.parametrize("build, rewrite", [
    (lambda x: x @ x, "sum_squares(x)"),
    (lambda x: x.T @ x, "sum_squares(x)"),
    (lambda x: dd.sum(dd.multiply(x, x)), "square(x)"),
    (lambda x: x @ dd.Constant([[2.0, 0, 0], [0, 1, 0], [0, 0, 1]]) @ x, "quad_form(x,"),
])
def test_quadratic_written_as_a_product(build, rewrite):
    x = dd.Variable(3, name="x")
    err = error_of(dd.Problem(dd.Minimize(build(x))))
    assert rewrite in err.rewrite


def test_product_of_two_parameters_times_a_variable_is_not_dpp():
    x = dd.Variable(3, name="x")
    p, q = dd.Parameter(name="p"), dd.Parameter(name="q")
    prob = dd.Problem(dd.Minimize(p * q * dd.sum(x)), [x >= 0])
    assert prob.is_dcp() and not prob.is_dpp()
    prob.check_dcp()    # DCP: no error
    err = error_of(prob, dd.DPPError)
    assert str(err.expression) == "p * q"
    assert "both factors (p and q) depend on parameters" in err.rule
    assert "introduce one Parameter for p * q" in err.rewrite
    assert "Problem does not follow DPP rules" in str(err)
    assert isinstance(err, dd.DCPError)   # a DPPError is a kind of DCPError


def test_nonaffine_function_of_a_parameter_times_a_variable():
    x = dd.Variable(name="x")
    p = dd.Parameter(name="p")
    err = error_of(dd.Problem(dd.Minimize(dd.exp(p) * x)), dd.DPPError)
    assert str(err.expression) == "exp(p) * x"
    assert "introduce one Parameter for exp(p)" in err.rewrite


def test_division_by_a_parameter():
    x = dd.Variable(name="x")
    p = dd.Parameter(name="p", nonneg=True)
    err = error_of(dd.Problem(dd.Minimize(x / p), [x >= 1]), dd.DPPError)
    assert "1 / (p)" in err.rewrite


def test_wrong_sense_objective():
    x = dd.Variable(2, name="x")
    err = error_of(dd.Problem(dd.Minimize(dd.sum(dd.log(x)))))
    assert err.curvature is dd.Curvature.CONCAVE
    assert "objective of minimize must be convex" in err.rule
    assert "maximize" in err.rewrite


def test_quad_form_with_indefinite_matrix():
    x = dd.Variable(2, name="x")
    err = error_of(dd.Problem(dd.Minimize(dd.quad_form(x, [[1.0, 0.0], [0.0, -1.0]]))))
    assert "P ⪰ 0" in err.rule


def test_checks_agree_with_verdicts_on_the_corpus():
    """check_dcp/check_dpp raise exactly when is_dcp/is_dpp say no, and name a culprit
    whose own curvature breaks the rule."""
    checked = 0
    for seed in range(150):
        c = Corpus(seed)
        for _ in range(4):
            e = c.expression((), 0) if seed % 2 else c.expression()
            if e.shape != ():
                e = dd.sum(e)
            for prob in (dd.Problem(dd.Minimize(e)), dd.Problem(dd.Maximize(0), [e <= 1])):
                for dpp, kind in ((False, dd.DCPError), (True, dd.DPPError)):
                    err = prob.first_violation(dpp)
                    assert (err is None) == prob.is_dcp(dpp)
                    if err is not None:
                        assert type(err) is kind
                        assert err.rule and str(err.expression)
                        checked += 1
    assert checked > 200
