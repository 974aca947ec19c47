"""NumpyLayer over the problem grid against central finite differences; the adjoint identity
between its vjp and jvp; import isolation of the framework adapters."""
import subprocess
import sys

import numpy as np
import pytest

from diffdsl.backends import NumpyLayer

from layer_problems import CASES, IDS

EPS = 1e-6


def flatten(outputs) -> np.ndarray:
    parts = []
    for o in outputs:
        for p in (o if isinstance(o, tuple) else (o,)):
            parts.append(np.asarray(p, float).reshape(-1))
    return np.concatenate(parts)


def layer_of(case):
    return NumpyLayer(case.problem, case.parameters, case.variables, duals=[case.dual])


@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_jacobian_matches_central_differences(make):
    case = make()
    layer = layer_of(case)
    result = layer.solve(*case.values)
    J = result.jacobian()
    for j, value in enumerate(case.values):
        value = np.asarray(value, float)
        for k in range(value.size):
            step = np.zeros(value.size)
            step[k] = EPS
            plus = list(case.values)
            minus = list(case.values)
            plus[j] = value + step.reshape(value.shape)
            minus[j] = value - step.reshape(value.shape)
            fd = (flatten(layer(*plus)) - flatten(layer(*minus))) / (2 * EPS)
            column = flatten([_column(J[i][j], value.shape, k) for i in range(len(J))])
            np.testing.assert_allclose(column, fd, atol=2e-6, rtol=1e-5)


def _column(block, pshape, k):
    """Entry k (C order) of the parameter axes of J[i][j] (a tuple for multi-part duals)."""
    if isinstance(block, tuple):
        return tuple(_column(b, pshape, k) for b in block)
    b = np.asarray(block)
    lead = b.shape[:b.ndim - len(pshape)]
    return b.reshape(lead + (-1,))[..., k]


@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_vjp_is_the_adjoint_of_jvp_in_a_batch(make):
    case = make()
    layer = layer_of(case)
    values = case.batched_values(3)
    result = layer.solve(*values)
    r = np.random.default_rng(7)
    directions = [r.normal(size=np.shape(v)) for v in values]
    tangents = result.jvp(*directions)
    weights = [tuple(r.normal(size=np.shape(p)) for p in t) if isinstance(t, tuple)
               else r.normal(size=np.shape(t)) for t in tangents]
    lhs = float(flatten(weights) @ flatten(tangents))
    grads = result.vjp(*weights)
    rhs = sum(float(np.sum(g * d)) for g, d in zip(grads, directions, strict=True))
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-10)


def test_unbatched_parameter_gets_the_summed_batch_gradient():
    case = CASES[1]()
    layer = layer_of(case)
    q = case.batched_values(3)[0]
    g = np.random.default_rng(8).normal(size=(3, 4))
    _, dh = layer.solve(q, case.values[1]).vjp(g, None)
    per_element = [layer.solve(q[i], case.values[1]).vjp(g[i], None)[1] for i in range(3)]
    np.testing.assert_allclose(dh, np.sum(per_element, axis=0), atol=1e-10)


@pytest.mark.parametrize("present, blocked", [("torch", "jax"), ("jax", "torch")])
def test_each_framework_adapter_works_without_the_other(present, blocked):
    """With the other framework made unimportable, the adapter imports, solves and
    differentiates, and never imports the blocked framework."""
    pytest.importorskip(present)
    layer_class = {"torch": "TorchLayer", "jax": "JaxLayer"}[present]
    call = {"torch": "import torch; out = layer(torch.tensor([1.0, -2.0]))[0]; "
                     "out.sum().backward() if out.requires_grad else None",
            "jax": "import jax; jax.grad(lambda q: layer(q)[0].sum())"
                   "(jax.numpy.array([1.0, -2.0]))"}[present]
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            "import diffdsl as dd\n"
            f"from diffdsl.backends import {layer_class}\n"
            "x, q = dd.Variable(2), dd.Parameter(2)\n"
            "prob = dd.Problem(dd.Minimize(dd.sum_squares(x) + q @ x), [x >= -1])\n"
            f"layer = {layer_class}(prob, [q], [x])\n"
            f"{call}\n"
            f"assert sys.modules[{blocked!r}] is None\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
