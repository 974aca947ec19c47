"""Structure fast paths: recognized by form, and each gives the general path's values and
derivatives (Solution, and the NumPy, PyTorch and JAX layers)."""
import numpy as np
import pytest

import diffdsl as dd
from diffdsl.backends.numpy import NumpyLayer

rng = np.random.default_rng(21)
N = 6


def cases():
    """(kind, problem, parameter, variable) for every closed form."""
    th, y = dd.Parameter(N, name="theta"), dd.Variable(N, name="y")
    yield "simplex", dd.Problem(dd.Minimize(dd.sum_squares(y - th)),
                                [dd.sum(y) == 1, y >= 0]), th, y
    th, y = dd.Parameter(N, name="theta"), dd.Variable(N, name="y", nonneg=True)
    yield "simplex", dd.Problem(dd.Minimize(0.5 * dd.sum_squares(th - y)),
                                [dd.sum(y) == 2]), th, y
    th, y = dd.Parameter(N, name="theta"), dd.Variable(N, name="y")
    yield "nonneg", dd.Problem(dd.Minimize(dd.sum_squares(y - 2 * th + 0.1)), [y >= 0]), th, y
    th, y = dd.Parameter(N, name="theta"), dd.Variable(N, name="y")
    yield "box", dd.Problem(dd.Minimize(dd.sum_squares(y - th)),
                            [y >= -0.5, y <= np.linspace(0.2, 1.0, N)]), th, y
    th, y = dd.Parameter(N, name="theta"), dd.Variable(N, name="y")
    yield "l2_ball", dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [dd.norm(y) <= 1.5]), th, y
    th, y = dd.Parameter(N, name="theta"), dd.Variable(N, name="y")
    yield "softmax", dd.Problem(dd.Maximize(th @ y + 0.7 * dd.sum(dd.entr(y))),
                                [dd.sum(y) == 1]), th, y


CASES = list(cases())
IDS = [f"{c[0]}{i}" for i, c in enumerate(CASES)]


def values(batch=4):
    return 1.5 * rng.normal(size=(batch, N))


@pytest.mark.parametrize("kind, problem, theta, y", CASES, ids=IDS)
def test_fast_path_matches_the_general_path(kind, problem, theta, y):
    fast, general = problem.compile(), problem.compile(fast_paths=False)
    assert fast.fast_path.kind == kind and general.fast_path is None
    assert "closed form" in str(fast.contract())
    v = values()
    a, b = fast.solve(v), general.solve(v, refine=True)
    np.testing.assert_allclose(a[y], b[y], atol=1e-8)
    g = rng.normal(size=(4, N))
    np.testing.assert_allclose(a.vjp({y: g})[theta], b.vjp({y: g})[theta], atol=1e-7)
    d = rng.normal(size=(4, N))
    np.testing.assert_allclose(a.jvp({theta: d})[0][y], b.jvp({theta: d})[0][y], atol=1e-7)
    np.testing.assert_allclose(a.jacobian(), b.jacobian(), atol=1e-7)
    # what the closed form does not give comes from the cone solver
    for c in problem.constraints:
        np.testing.assert_allclose(np.asarray(a.dual(c), float), np.asarray(b.dual(c), float),
                                   atol=1e-7)


@pytest.mark.parametrize("build", [
    lambda th, y: dd.Problem(dd.Minimize(dd.sum_squares(2 * y - th)), [y >= 0]),
    lambda th, y: dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [y >= 0, y[0] <= 1]),
    lambda th, y: dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [dd.sum(y) == 1]),
    lambda th, y: dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [dd.norm(y, 1) <= 1]),
    lambda th, y: dd.Problem(dd.Minimize(dd.sum_squares(y - th) + dd.sum(y)), [y >= 0]),
    lambda th, y: dd.Problem(dd.Minimize(dd.sum_squares(y)), [y >= th]),
    lambda th, y: dd.Problem(dd.Maximize(th @ y + dd.sum(dd.entr(y))), [dd.sum(y) == 2]),
], ids=["scaled", "extra-constraint", "no-sign", "l1-ball", "extra-term", "param-bound",
        "softmax-mass"])
def test_near_misses_use_the_cone_solver(build):
    th, y = dd.Parameter(N), dd.Variable(N)
    assert build(th, y).compile().fast_path is None


def test_degenerate_points_are_flagged():
    th, y = dd.Parameter(3), dd.Variable(3)
    sol = dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [y >= 0]).compile().solve(
        np.array([1.0, 0.0, -1.0]))
    assert sol.derivative_flags(0) and not sol.derivative_diagnostics()["differentiable"]


@pytest.mark.parametrize("kind, problem, theta, y", CASES, ids=IDS)
def test_numpy_layer_fast_path(kind, problem, theta, y):
    fast = NumpyLayer(problem, [theta], [y])
    general = NumpyLayer(problem, [theta], [y], fast_paths=False)
    assert fast.core.fast_path is not None and general.core.fast_path is None
    v, g = values(), rng.normal(size=(4, N))
    a, b = fast.solve(v), general.solve(v)
    np.testing.assert_allclose(a.outputs[0], b.outputs[0], atol=1e-8)
    np.testing.assert_allclose(a.vjp(g)[0], b.vjp(g)[0], atol=1e-7)
    np.testing.assert_allclose(a.jvp(g)[0], b.jvp(g)[0], atol=1e-7)


@pytest.mark.parametrize("kind, problem, theta, y", CASES, ids=IDS)
def test_torch_layer_fast_path(kind, problem, theta, y):
    torch = pytest.importorskip("torch")
    from diffdsl.backends.torch import TorchLayer
    layer = TorchLayer(problem, [theta], [y])
    assert layer.core.fast_path is not None
    reference = NumpyLayer(problem, [theta], [y], fast_paths=False)
    v, g = values(), rng.normal(size=(4, N))
    t = torch.tensor(v, requires_grad=True)
    out, = layer(t)
    (out * torch.tensor(g)).sum().backward()
    expected = reference.solve(v)
    np.testing.assert_allclose(out.detach().numpy(), expected.outputs[0], atol=1e-8)
    np.testing.assert_allclose(t.grad.numpy(), expected.vjp(g)[0], atol=1e-7)
    _, tangent = torch.func.jvp(lambda a: layer(a)[0], (torch.tensor(v),), (torch.tensor(g),))
    np.testing.assert_allclose(tangent.numpy(), expected.jvp(g)[0], atol=1e-7)
    assert torch.autograd.gradcheck(lambda a: layer(a)[0], (torch.tensor(v[:1],
                                                                          requires_grad=True),))


@pytest.mark.parametrize("kind, problem, theta, y", CASES, ids=IDS)
def test_jax_layer_fast_path(kind, problem, theta, y):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from diffdsl.backends.jax import JaxLayer
    layer = JaxLayer(problem, [theta], [y])
    assert layer.core.fast_path is not None
    reference = NumpyLayer(problem, [theta], [y], fast_paths=False)
    v, g = values(), rng.normal(size=(4, N))
    out = jax.jit(jax.vmap(lambda a: layer(a)[0]))(v)
    grad = jax.grad(lambda a: (layer(a)[0] * g).sum())(v)
    expected = reference.solve(v)
    np.testing.assert_allclose(out, expected.outputs[0], atol=1e-8)
    np.testing.assert_allclose(grad, expected.vjp(g)[0], atol=1e-7)
    J = jax.jacfwd(lambda a: layer(a)[0])(v[0])
    np.testing.assert_allclose(J, reference.solve(v[0]).jacobian()[0][0], atol=1e-7)
