"""Each atom's numeric value matches an independent NumPy/SciPy formula."""
import numpy as np
import pytest
import scipy.linalg
import scipy.special

import diffdsl as dd

rng = np.random.default_rng(0)
V = rng.normal(size=4)                 # a vector with mixed signs
W = rng.uniform(0.2, 2.0, size=4)      # a positive vector
M = rng.normal(size=(3, 4))            # a general matrix
B = rng.normal(size=(3, 3))
S = B @ B.T + np.eye(3)                # symmetric positive definite


def huber_ref(x, m):
    return np.where(np.abs(x) <= m, x ** 2, 2 * m * np.abs(x) - m ** 2)


CASES = {
    "abs": (lambda x: dd.abs(x), V, np.abs(V)),
    "pos": (lambda x: dd.pos(x), V, np.maximum(V, 0)),
    "neg": (lambda x: dd.neg(x), V, np.maximum(-V, 0)),
    "square": (lambda x: dd.square(x), V, V ** 2),
    "power 3": (lambda x: dd.power(x, 3), W, W ** 3),
    "power 0.3": (lambda x: dd.power(x, 0.3), W, W ** 0.3),
    "power -1.5": (lambda x: dd.power(x, -1.5), W, W ** -1.5),
    "x ** 4": (lambda x: x ** 4, V, V ** 4),
    "sqrt": (lambda x: dd.sqrt(x), W, np.sqrt(W)),
    "inv_pos": (lambda x: dd.inv_pos(x), W, 1 / W),
    "exp": (lambda x: dd.exp(x), V, np.exp(V)),
    "log": (lambda x: dd.log(x), W, np.log(W)),
    "log1p": (lambda x: dd.log1p(x), W - 0.1, np.log1p(W - 0.1)),
    "entr": (lambda x: dd.entr(x), W, -W * np.log(W)),
    "logistic": (lambda x: dd.logistic(x), V, np.log1p(np.exp(V))),
    "huber": (lambda x: dd.huber(x, 0.5), V, huber_ref(V, 0.5)),
    "kl_div": (lambda x: dd.kl_div(x, 1.5 * x), W, W * np.log(1 / 1.5) - W + 1.5 * W),
    "rel_entr": (lambda x: dd.rel_entr(x, 2.0), W, W * np.log(W / 2.0)),
    "maximum": (lambda x: dd.maximum(x, 0.1, -x), V, np.maximum(np.abs(V), 0.1)),
    "minimum": (lambda x: dd.minimum(x, 0.1), V, np.minimum(V, 0.1)),
    "max": (lambda x: dd.max(x), M, M.max()),
    "max axis": (lambda x: dd.max(x, axis=1), M, M.max(axis=1)),
    "min keepdims": (lambda x: dd.min(x, axis=0, keepdims=True), M, M.min(axis=0, keepdims=True)),
    "norm 1": (lambda x: dd.norm(x, 1), V, np.abs(V).sum()),
    "norm 2": (lambda x: dd.norm(x), V, np.linalg.norm(V)),
    "norm inf": (lambda x: dd.norm(x, np.inf), V, np.abs(V).max()),
    "norm fro": (lambda x: dd.norm(x, "fro"), M, np.linalg.norm(M, "fro")),
    "norm matrix 1": (lambda x: dd.norm(x, 1), M, np.linalg.norm(M, 1)),
    "norm matrix 2": (lambda x: dd.norm(x, 2), M, np.linalg.norm(M, 2)),
    "norm matrix inf": (lambda x: dd.norm(x, np.inf), M, np.linalg.norm(M, np.inf)),
    "norm nuc": (lambda x: dd.norm(x, "nuc"), M, np.linalg.norm(M, "nuc")),
    "norm axis": (lambda x: dd.norm(x, 2, axis=0), M, np.linalg.norm(M, axis=0)),
    "norm1": (lambda x: dd.norm1(x, axis=1), M, np.abs(M).sum(axis=1)),
    "norm2": (lambda x: dd.norm2(x), V, np.linalg.norm(V)),
    "norm_inf": (lambda x: dd.norm_inf(x), M, np.abs(M).max()),
    "pnorm 3": (lambda x: dd.pnorm(x, 3), V, np.sum(np.abs(V) ** 3) ** (1 / 3)),
    "pnorm 0.5": (lambda x: dd.pnorm(x, 0.5), W, np.sum(W ** 0.5) ** 2),
    "sum_squares": (lambda x: dd.sum_squares(x), M, np.sum(M ** 2)),
    "sum_squares axis": (lambda x: dd.sum_squares(x, axis=0), M, np.sum(M ** 2, axis=0)),
    "quad_form": (lambda x: dd.quad_form(x[:3], S), V, V[:3] @ S @ V[:3]),
    "quad_over_lin": (lambda x: dd.quad_over_lin(x, 2.5), V, V @ V / 2.5),
    "sum_largest": (lambda x: dd.sum_largest(x, 2), V, np.sort(V)[-2:].sum()),
    "sum_smallest": (lambda x: dd.sum_smallest(x, 3), M, np.sort(M.ravel())[:3].sum()),
    "log_sum_exp": (lambda x: dd.log_sum_exp(x), M, scipy.special.logsumexp(M)),
    "log_sum_exp axis": (lambda x: dd.log_sum_exp(x, axis=0), M, np.log(np.exp(M).sum(axis=0))),
    "geo_mean": (lambda x: dd.geo_mean(x), W, np.prod(W) ** (1 / 4)),
    "geo_mean weights": (lambda x: dd.geo_mean(x, [1, 2, 0, 1]), W,
                         (W[0] * W[1] ** 2 * W[3]) ** (1 / 4)),
    "lambda_max": (lambda x: dd.lambda_max(x), S, np.linalg.eigvalsh(S).max()),
    "lambda_min": (lambda x: dd.lambda_min(x), S, np.linalg.eigvalsh(S).min()),
    "log_det": (lambda x: dd.log_det(x), S, np.log(np.linalg.det(S))),
    "sigma_max": (lambda x: dd.sigma_max(x), M, scipy.linalg.svdvals(M).max()),
    "normNuc": (lambda x: dd.normNuc(x), M, scipy.linalg.svdvals(M).sum()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_atom_value(name):
    build, data, expected = CASES[name]
    x = dd.Variable(data.shape)
    x.value = data
    expr = build(x)
    assert expr.shape == np.shape(expected)
    np.testing.assert_allclose(expr.value, expected, rtol=1e-10, atol=1e-12)


def test_value_is_none_without_leaf_values():
    x = dd.Variable(3)
    assert dd.norm(x).value is None


def test_log_det_outside_domain_is_minus_infinity():
    x = dd.Variable((2, 2))
    x.value = -np.eye(2)
    assert dd.log_det(x).value == -np.inf


@pytest.mark.parametrize("atom, p, sign, curvature, mono", [
    # every real p, CVXPY's curvature cases (mono = monotonicity for an unsigned argument)
    (dd.power, 0, dd.Sign.NONNEG, dd.Curvature.CONSTANT, None),
    (dd.power, 1, dd.Sign.UNKNOWN, dd.Curvature.AFFINE, dd.Monotonicity.INCREASING),
    (dd.power, 0.5, dd.Sign.NONNEG, dd.Curvature.CONCAVE, dd.Monotonicity.INCREASING),
    (dd.power, -0.5, dd.Sign.NONNEG, dd.Curvature.CONVEX, dd.Monotonicity.DECREASING),
    (dd.power, 2, dd.Sign.NONNEG, dd.Curvature.CONVEX, dd.Monotonicity.NONMONOTONE),
    (dd.power, 4, dd.Sign.NONNEG, dd.Curvature.CONVEX, dd.Monotonicity.NONMONOTONE),
    (dd.power, 3, dd.Sign.NONNEG, dd.Curvature.CONVEX, dd.Monotonicity.INCREASING),
    (dd.power, 2.5, dd.Sign.NONNEG, dd.Curvature.CONVEX, dd.Monotonicity.INCREASING),
])
def test_power_cases(atom, p, sign, curvature, mono):
    x = dd.Variable(2)
    e = atom(x, p)
    assert e.sign is sign and e.curvature is curvature
    if mono is not None:
        assert e.monotonicity(0) is mono


def test_domains_are_constraints_on_arguments():
    x = dd.Variable(2, name="x")
    assert [str(c) for c in dd.log(x).domain()] == ["x >= 0"]
    assert dd.square(x).domain() == []
    assert [str(c) for c in dd.log1p(x).domain()] == ["x >= -1"]
    X = dd.Variable((2, 2), name="X")
    assert [str(c) for c in dd.log_det(X).domain()] == ["X >> 0"]
    x.value = [1.0, -1.0]
    assert dd.log(x).domain()[0].violation().tolist() == [0.0, 1.0]
