"""The modeling grammar: leaves, shapes, broadcasting, indexing, affine operations,
constraints and problems, checked against NumPy on the same data."""
import numpy as np
import pytest
import scipy.sparse as sp

import diffdsl as dd
from diffdsl.errors import ParameterValueError, ShapeError

rng = np.random.default_rng(1)


def valued(shape, value=None, **attrs):
    x = dd.Variable(shape, **attrs)
    x.value = rng.normal(size=shape) if value is None else value
    return x


# ------------------------------------------------------------------------- leaves
def test_leaf_shapes_names_and_ids():
    x = dd.Variable((2, 3), name="x")
    assert x.shape == (2, 3) and x.size == 6 and x.ndim == 2 and x.name == "x"
    assert dd.Variable(4).shape == (4,)
    assert dd.Variable().shape == ()
    assert dd.Variable().id != dd.Variable().id
    with pytest.raises(ShapeError, match="at most 2"):
        dd.Variable((2, 2, 2))


def test_leaf_attributes():
    assert dd.Variable(3, nonneg=True).sign is dd.Sign.NONNEG
    assert dd.Parameter(nonpos=True).sign is dd.Sign.NONPOS
    assert dd.Variable((2, 2), PSD=True).is_psd()
    assert dd.Variable((2, 2), NSD=True).is_nsd()
    with pytest.raises(ShapeError, match="square"):
        dd.Variable((2, 3), symmetric=True)
    with pytest.raises(ValueError, match="nonneg and nonpos"):
        dd.Variable(nonneg=True, nonpos=True)
    with pytest.raises(TypeError, match="NSD"):
        dd.Parameter((2, 2), NSD=True)   # CVXPY's Parameter has no NSD attribute either


@pytest.mark.parametrize("kwargs, value, message", [
    ({"shape": (3,)}, np.ones(4), r"shape \(4,\), expected \(3,\)"),
    ({"shape": (2,)}, [1.0, np.nan], "NaN or Inf"),
    ({"shape": (2,)}, [1.0, np.inf], "NaN or Inf"),
    ({"shape": (2,), "nonneg": True}, [1.0, -0.5], "declared nonneg"),
    ({"shape": (2,), "nonpos": True}, [1.0, -0.5], "declared nonpos"),
    ({"shape": (2, 2), "symmetric": True}, [[1.0, 2.0], [0.0, 1.0]], "not symmetric"),
    ({"shape": (2, 2), "PSD": True}, [[1.0, 0.0], [0.0, -1.0]], "negative eigenvalue"),
    ({"shape": ()}, "abc", "real numbers"),
    ({"shape": ()}, 1 + 2j, "real"),
])
def test_parameter_value_validation(kwargs, value, message):
    p = dd.Parameter(name="theta", **kwargs)
    with pytest.raises(ParameterValueError, match=message) as err:
        p.value = value
    assert "'theta'" in str(err.value)
    assert p.value is None   # a rejected value is not stored


def test_parameter_value_accepts_valid_data():
    p = dd.Parameter((2, 2), PSD=True, value=np.eye(2))
    np.testing.assert_array_equal(p.value, np.eye(2))
    q = dd.Parameter(value=3)
    assert q.value == 3.0 and isinstance(q.value, np.floating)
    r = dd.Parameter((1,), value=2.0)    # a single number fills a size-1 shape
    assert r.value.shape == (1,)
    s = dd.Parameter((2, 2), value=sp.eye(2))
    np.testing.assert_array_equal(s.value, np.eye(2))


def test_constants():
    assert dd.Constant(2).sign is dd.Sign.NONNEG
    assert dd.Constant([-1, 0]).sign is dd.Sign.NONPOS
    assert dd.Constant(np.zeros((2, 2))).sign is dd.Sign.ZERO
    assert dd.Constant([-1, 1]).sign is dd.Sign.UNKNOWN
    A = sp.random(4, 5, density=0.3, random_state=0)
    c = dd.Constant(A)
    assert c.is_sparse and c.shape == (4, 5) and c.is_nonneg()
    x = valued(5)
    np.testing.assert_allclose((c @ x).value, A @ x.value)
    with pytest.raises(TypeError, match="complex"):
        dd.Constant(np.array([1j]))
    with pytest.raises(ValueError, match="finite"):
        dd.Constant([np.nan])
    with pytest.raises(TypeError, match="cannot use str"):
        dd.Constant("a")
    assert dd.Constant(np.eye(3)).is_psd() and not dd.Constant(-np.eye(3)).is_psd()


# ------------------------------------------------------------------------- arithmetic
def test_broadcasting_matches_numpy():
    x, X = valued(3), valued((2, 3))
    for expr, ref in [(x + X, x.value + X.value), (X - x, X.value - x.value),
                      (dd.multiply(x, X), x.value * X.value), (X + 1, X.value + 1),
                      (X / 2, X.value / 2), (2 - x, 2 - x.value), (-X, -X.value)]:
        assert expr.shape == ref.shape
        np.testing.assert_allclose(expr.value, ref)
    with pytest.raises(ShapeError, match="broadcast"):
        valued(2) + valued(3)


def test_numpy_operands_on_the_left_defer_to_expressions():
    x = valued(3)
    A = rng.normal(size=(2, 3))
    assert isinstance(A @ x, dd.Expression)
    np.testing.assert_allclose((A @ x).value, A @ x.value)
    np.testing.assert_allclose((np.float64(2.0) * x).value, 2 * x.value)
    np.testing.assert_allclose((np.ones(3) + x).value, 1 + x.value)


@pytest.mark.parametrize("ls, rs, out", [((3,), (3,), ()), ((2, 3), (3,), (2,)),
                                         ((3,), (3, 2), (2,)), ((2, 3), (3, 4), (2, 4))])
def test_matmul_numpy_rules(ls, rs, out):
    a, b = valued(ls), valued(rs)
    e = dd.Constant(a.value) @ b
    assert e.shape == out
    np.testing.assert_allclose(e.value, a.value @ b.value)


def test_matmul_shape_errors():
    with pytest.raises(ShapeError, match="inner dimensions"):
        valued((2, 3)) @ valued(2)
    with pytest.raises(ShapeError, match="scalar"):
        dd.Constant(2.0) @ valued(2)


def test_star_is_scaling_or_matmul_like_cvxpy():
    x = valued(3)
    A = rng.normal(size=(2, 3))
    np.testing.assert_allclose((3 * x).value, 3 * x.value)
    with pytest.warns(UserWarning, match="matrix multiplication"):
        e = dd.Constant(A) * x
    np.testing.assert_allclose(e.value, A @ x.value)


def test_products_and_division_curvature():
    x, y = dd.Variable(), dd.Variable()
    p = dd.Parameter()
    assert (2 * x).is_affine() and (p * x).is_affine() and (x / 2).is_affine()
    assert (x * y).curvature is dd.Curvature.UNKNOWN
    assert (1 / x).curvature is dd.Curvature.UNKNOWN
    assert (x / p).is_dcp() and not (x / p).is_dpp()
    assert (dd.Constant(-2) * dd.square(x)).is_concave()
    assert (p * dd.square(x)).curvature is dd.Curvature.UNKNOWN   # sign of p unknown
    assert (dd.Parameter(nonneg=True) * dd.square(x)).is_convex()


# ------------------------------------------------------------------------- indexing
@pytest.mark.parametrize("key", [
    0, -1, (1, 2), (slice(None), 1), (1, slice(None)), slice(0, 2), (slice(None, None, 2), 0),
    np.array([2, 0]), (np.array([0, 1]), np.array([3, 1])), np.array([True, False, True]),
    (slice(None), np.array([True, False, True, False])), (Ellipsis, 0),
    (0, slice(None, None, -1)),
])
def test_indexing_matches_numpy(key):
    X = valued((3, 4))
    e = X[key]
    ref = X.value[key]
    assert e.shape == np.shape(ref)
    np.testing.assert_allclose(e.value, ref)


def test_indexing_errors():
    with pytest.raises(IndexError, match=r"shape \(3,\)"):
        valued(3)[5]
    with pytest.raises(IndexError):
        valued(3)[0, 0]


# ------------------------------------------------------------------------- affine atoms
def test_transpose_reshape_vec():
    X = valued((2, 3))
    np.testing.assert_allclose(X.T.value, X.value.T)
    x = valued(3)
    assert x.T is x    # 1-d transpose is a no-op, as in NumPy
    for order in "FC":
        np.testing.assert_allclose(dd.reshape(X, (3, 2), order).value,
                                   X.value.reshape((3, 2), order=order))
        np.testing.assert_allclose(dd.vec(X, order).value, X.value.reshape(-1, order=order))
    np.testing.assert_allclose(dd.reshape(X, (-1, 2), "C").value, X.value.reshape(-1, 2))
    np.testing.assert_allclose(X.flatten().value, X.value.flatten(order="F"))
    with pytest.raises(ShapeError, match="cannot reshape"):
        dd.reshape(X, (4, 2))


def test_sum_cumsum_diag_trace():
    X = valued((3, 3))
    for axis in (None, 0, 1):
        for keepdims in (False, True):
            np.testing.assert_allclose(dd.sum(X, axis, keepdims).value,
                                       np.sum(X.value, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(dd.cumsum(X).value, np.cumsum(X.value, axis=0))
    np.testing.assert_allclose(dd.cumsum(X, axis=1).value, np.cumsum(X.value, axis=1))
    np.testing.assert_allclose(dd.cumsum(X, axis=None).value, np.cumsum(X.value))
    np.testing.assert_allclose(dd.diag(X).value, np.diag(X.value))
    np.testing.assert_allclose(dd.diag(X, 1).value, np.diag(X.value, 1))
    v = valued(3)
    np.testing.assert_allclose(dd.diag(v).value, np.diag(v.value))
    np.testing.assert_allclose(dd.diag(v, -1).value, np.diag(v.value, -1))
    assert dd.trace(X).shape == () and np.isclose(dd.trace(X).value, np.trace(X.value))
    with pytest.raises(ShapeError, match="square"):
        dd.trace(valued((2, 3)))
    with pytest.raises(ShapeError, match="vector or a square"):
        dd.diag(valued((2, 3)))


def test_stacks_bmat_kron():
    a, b, X = valued(3), valued(3), valued((2, 3))
    np.testing.assert_allclose(dd.hstack([a, b]).value, np.hstack([a.value, b.value]))
    np.testing.assert_allclose(dd.vstack([a, b]).value, np.vstack([a.value, b.value]))
    np.testing.assert_allclose(dd.vstack([X, a]).value, np.vstack([X.value, a.value]))
    Y = valued((2, 2))
    np.testing.assert_allclose(dd.bmat([[X, Y], [Y, X]]).value,
                               np.block([[X.value, Y.value], [Y.value, X.value]]))
    C = rng.normal(size=(2, 2))
    k = dd.kron(C, X)
    np.testing.assert_allclose(k.value, np.kron(C, X.value))
    assert k.is_affine() and dd.kron(X, C).is_affine()
    assert dd.kron(X, Y).curvature is dd.Curvature.UNKNOWN
    P = dd.Parameter((2, 2))
    assert dd.kron(P, X).is_dcp() and not dd.kron(P, X).is_dpp()
    with pytest.raises(ShapeError, match="incompatible"):
        dd.hstack([X, valued((3, 1))])


# ------------------------------------------------------------------------- constraints
def test_constraints_shapes_and_dcp():
    x, X = dd.Variable(3, name="x"), dd.Variable((3, 3), name="X")
    assert (x <= 1).is_dcp() and (x >= dd.Constant(np.zeros((2, 3)))).shape == (2, 3)
    assert (dd.norm(x) <= 1).is_dcp() and not (dd.norm(x) >= 1).is_dcp()
    assert (dd.sum(x) == 1).is_dcp() and not (dd.norm(x) == 1).is_dcp()
    assert (X >> 0).is_dcp() and (X << np.eye(3)).is_dcp()
    with pytest.raises(ShapeError, match="square"):
        dd.Variable((2, 3)) >> 0
    t = dd.Variable(name="t")
    assert dd.SOC(t, x).is_dcp() and not dd.SOC(dd.sqrt(t), x).is_dcp()
    assert dd.SOC(dd.Variable(3), dd.Variable((2, 3)), axis=0).args[1].shape == (2, 3)
    with pytest.raises(ShapeError, match="t must be"):
        dd.SOC(dd.Variable(2), dd.Variable((2, 3)))
    assert dd.ExpCone(x, x, x).is_dcp() and dd.PowCone3D(x, x, x, 0.3).is_dcp()
    assert str(dd.PowCone3D(x, x, x, 0.3)) == "PowCone3D(x, x, x, 0.3)"
    with pytest.raises(ValueError, match="between 0 and 1"):
        dd.PowCone3D(x, x, x, 1.5)
    c = dd.Inequality(x, 1, name="cap")
    assert c.name == "cap" and c.dual_value is None and str(c) == "cap: x <= 1"


def test_constraint_violations():
    x = valued(2, np.array([1.0, 3.0]))
    np.testing.assert_allclose((x <= 2).violation(), [0.0, 1.0])
    np.testing.assert_allclose((x == 1).violation(), [0.0, 2.0])
    X = valued((2, 2), -np.eye(2))
    assert (X >> 0).violation() == pytest.approx(1.0)
    t = valued((), 1.0)
    assert dd.SOC(t, x).violation() == pytest.approx(np.sqrt(10) - 1)
    e = dd.ExpCone(valued((), 0.0), valued((), 1.0), valued((), 2.0))
    assert e.violation() == 0.0


def test_comparisons_cannot_chain_or_be_strict():
    x = dd.Variable()
    with pytest.raises(TypeError, match="chain"):
        0 <= x <= 1  # noqa: B015
    with pytest.raises(TypeError, match="strict"):
        x < 1  # noqa: B015


# ------------------------------------------------------------------------- problems
def test_problem_printing_and_leaves():
    x = dd.Variable(3, name="x")
    lam = dd.Parameter(nonneg=True, name="lam")
    A = dd.Parameter((2, 3), name="A")
    b = dd.Parameter(2, name="b")
    prob = dd.Problem(dd.Minimize(dd.sum_squares(A @ x - b) + lam * dd.norm1(x)),
                      [x >= 0, dd.sum(x) == 1])
    assert str(prob) == ("minimize sum_squares(A @ x - b) + lam * norm1(x)\n"
                         "subject to x >= 0\n"
                         "           sum(x) == 1")
    assert prob.variables() == [x]
    assert prob.parameters() == [A, b, lam]
    assert prob.is_dcp() and prob.is_dpp()


def test_objective_must_be_scalar_and_constraints_typed():
    with pytest.raises(ShapeError, match="scalar"):
        dd.Minimize(dd.Variable(2))
    with pytest.raises(TypeError, match="constraint 0"):
        dd.Problem(dd.Minimize(0), [True])
    with pytest.raises(TypeError, match="Minimize"):
        dd.Problem(dd.Variable())


def test_maximize_needs_concave():
    x = dd.Variable(2)
    assert dd.Problem(dd.Maximize(dd.sum(dd.log(x)))).is_dcp()
    assert not dd.Problem(dd.Maximize(dd.norm(x))).is_dcp()


def test_version_is_single_sourced():
    from importlib.metadata import version
    assert dd.__version__ == version("diffdsl")


def test_backends_install_as_a_subpackage_only(tmp_path):
    """The installed package maps backends/ to diffdsl.backends; there is no top-level
    `backends` package (checked outside the source tree, where only the install is visible)."""
    import subprocess
    import sys
    code = ("import importlib.util, diffdsl.backends; "
            "print(importlib.util.find_spec('backends') is None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "True"


def test_every_subpackage_is_listed_for_installation():
    """A non-editable install ships only the packages pyproject.toml lists."""
    import pathlib
    import tomllib
    root = pathlib.Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {"diffdsl." + ".".join(p.parent.relative_to(root / "diffdsl").parts)
             for p in (root / "diffdsl").rglob("__init__.py")}
    found = {name.rstrip(".") for name in found}
    assert found <= listed, f"missing from pyproject.toml: {sorted(found - listed)}"
