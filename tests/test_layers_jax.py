"""JaxLayer over the problem grid, grouped by transformation: jit, vmap (one batched solve),
grad / jacrev, jvp / jacfwd, check_grads, dtypes."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

from diffdsl.backends.jax import JaxLayer  # noqa: E402
from diffdsl.backends.numpy import NumpyLayer  # noqa: E402

from layer_problems import CASES, IDS  # noqa: E402


def layers(case):
    args = (case.problem, case.parameters, case.variables)
    return JaxLayer(*args, duals=[case.dual]), NumpyLayer(*args, duals=[case.dual])


def leaves(outputs):
    return jax.tree_util.tree_leaves(outputs)


def scalar_loss(layer, weights):
    """Σ ⟨w, output⟩ over every output leaf."""
    def loss(*params):
        return sum(jnp.sum(w * o) for w, o in zip(weights, leaves(layer(*params)),
                                                  strict=True))
    return loss


def random_like(tree, seed):
    r = np.random.default_rng(seed)
    return [jnp.asarray(r.normal(size=np.shape(t))) for t in leaves(tree)]


# ------------------------------------------------------------------------- jit
@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_jit_matches_eager_and_numpy(make):
    case = make()
    jl, nl = layers(case)
    eager = leaves(jl(*case.values))
    jitted = leaves(jax.jit(jl)(*case.values))
    reference = leaves(nl(*case.values))
    for a, b, c in zip(eager, jitted, reference, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
        np.testing.assert_allclose(a, c, atol=1e-10)


# ------------------------------------------------------------------------- vmap
def test_vmap_is_one_batched_solve(monkeypatch):
    case = CASES[1]()
    jl, _ = layers(case)
    calls = []
    original = jl.core.compiled.solve_program
    monkeypatch.setattr(jl.core.compiled, "solve_program",
                        lambda data, batch, **kw: calls.append(batch) or original(data, batch,
                                                                                  **kw))
    q = case.batched_values(5)[0]
    out = jax.vmap(lambda a: jl(a, case.values[1])[0])(q)
    assert calls == [5]
    batched = jl(q, case.values[1])[0]
    np.testing.assert_allclose(out, batched, atol=1e-12)


def test_vmap_of_grad_under_jit():
    case = CASES[1]()
    jl, nl = layers(case)
    q = case.batched_values(3)[0]
    weights = random_like(jl(*case.values), 1)
    grads = jax.jit(jax.vmap(jax.grad(scalar_loss(jl, weights)), in_axes=(0, None)))(
        q, case.values[1])
    for i in range(3):
        expected = nl.solve(q[i], case.values[1]).vjp(*weights)[0]
        np.testing.assert_allclose(grads[i], expected, atol=1e-9)


# ------------------------------------------------------------------------- reverse mode
@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_grad_matches_numpy_vjp(make):
    case = make()
    jl, nl = layers(case)
    weights = random_like(jl(*case.values), 2)
    argnums = tuple(range(len(case.values)))
    grads = jax.grad(scalar_loss(jl, weights), argnums=argnums)(*case.values)
    expected = nl.solve(*case.values).vjp(*_regroup(weights, nl))
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, e, atol=1e-9)


def _regroup(weights, layer):
    """Flat weights → one cotangent per output (a tuple for a multi-part dual)."""
    i = len(layer.core.outputs)
    out = list(weights[:i])
    for group in layer.core.dual_groups:
        part = tuple(weights[i:i + len(group)])
        out.append(part if len(group) > 1 else part[0])
        i += len(group)
    return out


# ------------------------------------------------------------------------- forward mode
@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_jvp_matches_numpy_jvp_and_jacfwd_equals_jacrev(make):
    case = make()
    jl, nl = layers(case)
    directions = random_like(case.values, 3)
    _, tangents = jax.jvp(jl, tuple(jnp.asarray(v) for v in case.values), tuple(directions))
    expected = nl.solve(*case.values).jvp(*directions)
    for t, e in zip(leaves(tangents), leaves(expected), strict=True):
        np.testing.assert_allclose(t, e, atol=1e-9)
    first = lambda p: jl(p, *case.values[1:])[0]              # noqa: E731
    np.testing.assert_allclose(jax.jacfwd(first)(case.values[0]),
                               jax.jacrev(first)(case.values[0]), atol=1e-9)


@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_check_grads_forward_and_reverse(make):
    case = make()
    jl, _ = layers(case)
    check_grads(lambda *p: leaves(jl(*p)), tuple(jnp.asarray(v) for v in case.values),
                order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------- dtypes
def test_float32_in_float32_out():
    case = CASES[1]()
    jl, nl = layers(case)
    out = jl(*(jnp.asarray(v, jnp.float32) for v in case.values))
    assert all(o.dtype == jnp.float32 for o in leaves(out))
    np.testing.assert_allclose(out[0], nl(*case.values)[0], atol=1e-5)


def test_rules_other_than_implicit_are_refused():
    import diffdsl as dd
    case = CASES[0]()
    with pytest.raises(ValueError, match="implicit rule"):
        JaxLayer(case.problem, case.parameters, case.variables,
                 rule=dd.DerivativeRule("perturbed", tau=1.0))
