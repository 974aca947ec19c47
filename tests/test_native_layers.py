"""solver="native" inside the layers: the interior-point method runs on the framework's own
arrays (PyTorch on any device, JAX under jit/vmap). Derivatives against finite differences
(gradcheck, check_grads) and against the Clarabel path; the unrolled rule against the
implicit one; failures; CUDA when a device is present."""
import numpy as np
import pytest

import diffdsl as dd
from layer_problems import CASES

NATIVE_CASES = CASES[:3]                   # LP, QP, SOCP: the cones the native solver takes
NATIVE_IDS = ["LP", "QP", "SOCP"]


# the references are Clarabel's answers refined one element at a time (conftest)
pytestmark = pytest.mark.usefixtures("one_by_one_references")


def flat(outputs):
    out = []
    for o in outputs:
        out.extend(o if isinstance(o, tuple) else (o,))
    return tuple(out)


def infeasible_when_negative():
    x, h = dd.Variable(), dd.Parameter()
    return dd.Problem(dd.Minimize(dd.square(x)), [x >= 1, x <= h]), x, h


def data_varies_case(P_varies: bool, A_varies: bool):
    """A QP whose P = 2pI and/or whose constraint matrix G are parameters or constants: the
    native layers share constant P and A across the batch and take per-element ones."""
    r = np.random.default_rng(12)
    n, m = 4, 6
    G0 = r.normal(size=(m, n))
    x, q, h = dd.Variable(n), dd.Parameter(n), dd.Parameter(m)
    p, G = dd.Parameter(nonneg=True), dd.Parameter((m, n))
    prob = dd.Problem(dd.Minimize((p if P_varies else 1.5) * dd.sum_squares(x) + q @ x),
                      [(G if A_varies else G0) @ x <= h])
    params = [q, h] + ([p] if P_varies else []) + ([G] if A_varies else [])
    values = [3 * r.normal(size=(5, n)), np.abs(r.normal(size=(5, m))) + 0.1]
    values += [1.0 + r.uniform(size=5)] if P_varies else []
    values += [G0 + 0.01 * r.normal(size=(5, m, n))] if A_varies else []
    return prob, params, x, values


DATA_VARIES = [(True, False), (False, True), (True, True)]
DATA_IDS = ["P varies", "A varies", "both vary"]


# ---------------------------------------------------------------------------- PyTorch
torch = pytest.importorskip("torch")
from diffdsl.backends.torch import TorchLayer  # noqa: E402


def torch_layer(case, **kw):
    return TorchLayer(case.problem, case.parameters, case.variables, duals=[case.dual],
                      solver="native", **kw)


def tensors(values, grad=True, device="cpu"):
    return [torch.tensor(v, dtype=torch.float64, requires_grad=grad, device=device)
            for v in values]


@pytest.mark.parametrize("make", NATIVE_CASES, ids=NATIVE_IDS)
def test_torch_native_values_and_gradcheck(make):
    case = make()
    layer = torch_layer(case)
    x, dual = layer(*tensors(case.values, grad=False))[:2]
    sol = case.problem.compile().solve(*case.values, refine=True)
    np.testing.assert_allclose(x.numpy(), sol[case.variables[0]], atol=1e-8)
    assert torch.autograd.gradcheck(lambda *p: flat(layer(*p)), tuple(tensors(case.values)),
                                    eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("make", NATIVE_CASES, ids=NATIVE_IDS)
def test_torch_native_batched_gradients_equal_the_clarabel_layer(make):
    case = make()
    values = case.batched_values(5, seed=3)
    grads = []
    for native in (True, False):
        layer = (torch_layer(case) if native else
                 TorchLayer(case.problem, case.parameters, case.variables, duals=[case.dual]))
        params = tensors(values)
        outputs = flat(layer(*params))
        sum(o.square().sum() + o.sum() for o in outputs).backward()
        grads.append([p.grad.numpy() for p in params])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-8)


@pytest.mark.parametrize("namespace", ["hybrid", "torch"], ids=["cpu", "all torch"])
@pytest.mark.parametrize("varies", DATA_VARIES, ids=DATA_IDS)
def test_torch_native_per_element_P_and_A_equal_the_clarabel_layer(varies, namespace,
                                                                    monkeypatch):
    """Also with every array a torch tensor (the code path of a CUDA device). The compared
    call is a layer's second: the data blocks θ does not move, made by the first, are
    reused."""
    import diffdsl.backends.torch as torch_backend
    monkeypatch.setattr(torch_backend, "_native_namespace", lambda device, unrolled: namespace)
    prob, params, x, values = data_varies_case(*varies)
    grads = []
    for solver in ("native", "clarabel"):
        layer = TorchLayer(prob, params, [x], solver=solver)
        layer(*tensors([1.5 * v for v in values], grad=False))
        ps = tensors(values)
        (out,) = layer(*ps)
        (out.square().sum() + out.sum()).backward()
        grads.append([out.detach().numpy()] + [t.grad.numpy() for t in ps])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-8)


def test_torch_native_forward_mode_matches_reverse_mode():
    case = CASES[2]()                                        # SOCP
    layer = torch_layer(case)
    params = tensors(case.values, grad=False)
    tangent = [torch.ones_like(p) for p in params]
    _, jvp = torch.func.jvp(lambda *p: layer(*p)[0], tuple(params), tuple(tangent))
    rows = []
    for k in range(jvp.shape[0]):
        ps = tensors(case.values)
        layer(*ps)[0][k].backward()
        rows.append(sum(float((p.grad * t).sum()) for p, t in zip(ps, tangent, strict=True)))
    np.testing.assert_allclose(jvp.numpy(), rows, atol=1e-10)


@pytest.mark.parametrize("make", NATIVE_CASES, ids=NATIVE_IDS)
def test_torch_unrolled_rule_approaches_the_implicit_derivative(make):
    """Autodiff through the iterations: close to the exact (implicit) gradient where the
    solution map is smooth, not equal (it differentiates the algorithm as run)."""
    case = make()
    grads = []
    for rule in ("implicit", "unrolled"):
        layer = torch_layer(case, rule=rule)
        params = tensors(case.values)
        flat(layer(*params))[0].sum().backward()
        grads.append([p.grad.numpy() for p in params])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_a_torch_native_layer_that_has_run_deep_copies_and_pickles():
    """A layer keeps per-device constants of the method (its cones' arrays, with their
    array namespace) after a call: copies and pickles of it (an EMA model, a checkpoint)
    carry them and answer alike."""
    import copy
    import pickle
    case = CASES[2]()                                         # the SOCP: cone constants
    layer = torch_layer(case)
    inputs = tensors(case.batched_values(3, seed=4), grad=False)
    expected = flat(layer(*inputs))
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        for a, b in zip(flat(clone(*inputs)), expected, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_torch_native_failures_raise_or_come_back_nan():
    prob, x, h = infeasible_when_negative()
    with pytest.raises(dd.SolverError, match="element 1"):
        TorchLayer(prob, [h], [x], solver="native")(torch.tensor([2.0, 0.0]))
    layer = TorchLayer(prob, [h], [x], solver="native", on_failure="nan", return_status=True)
    hs = torch.tensor([2.0, 0.0], dtype=torch.float64, requires_grad=True)
    out, status = layer(hs)
    assert out[0].item() == pytest.approx(1.0, abs=1e-8) and torch.isnan(out[1])
    assert list(dd.SolveStatus)[int(status[1])] is dd.SolveStatus.ITERATION_LIMIT
    torch.nan_to_num(out).sum().backward()
    assert hs.grad[1] == 0.0


@pytest.mark.parametrize("make", NATIVE_CASES, ids=NATIVE_IDS)
def test_torch_native_all_in_torch_as_on_a_gpu(make, monkeypatch):
    """The code path a CUDA device takes (every array a torch tensor, no NumPy), run on the
    CPU: gradcheck and forward mode, so it is tested where no GPU is lent."""
    import diffdsl.backends.torch as torch_backend
    monkeypatch.setattr(torch_backend, "_native_namespace", lambda device, unrolled: "torch")
    case = make()
    layer = torch_layer(case)
    assert torch.autograd.gradcheck(lambda *p: flat(layer(*p)), tuple(tensors(case.values)),
                                    eps=1e-6, atol=1e-5, rtol=1e-4)
    params = tensors(case.values, grad=False)
    _, jvp = torch.func.jvp(lambda *p: layer(*p)[0], tuple(params),
                            tuple(torch.ones_like(p) for p in params))
    assert torch.isfinite(jvp).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_native_runs_on_cuda():
    case = CASES[2]()
    layer = torch_layer(case)
    cpu = tensors(case.values)
    gpu = tensors(case.values, device="cuda")
    a, b = flat(layer(*cpu)), flat(layer(*gpu))
    assert all(t.device.type == "cuda" for t in b)
    sum(t.sum() for t in a).backward()
    sum(t.sum() for t in b).backward()
    for p, q in zip(cpu, gpu, strict=True):
        np.testing.assert_allclose(q.grad.cpu().numpy(), p.grad.numpy(), atol=1e-8)


# ---------------------------------------------------------------------------- JAX
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)         # as the other JAX tests (the Clarabel path)
import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

from diffdsl.backends.jax import JaxLayer  # noqa: E402


def jax_layer(case, **kw):
    return JaxLayer(case.problem, case.parameters, case.variables, duals=[case.dual],
                    solver="native", **kw)


@pytest.mark.parametrize("make", NATIVE_CASES, ids=NATIVE_IDS)
def test_jax_native_check_grads_and_jit(make):
    case = make()
    layer = jax_layer(case)
    params = tuple(jnp.asarray(v, jnp.float64) for v in case.values)
    check_grads(lambda *p: jax.tree_util.tree_leaves(layer(*p)), params, order=1,
                modes=("fwd", "rev"), eps=1e-6, atol=1e-5, rtol=1e-4)
    eager = layer(*params)[0]
    jitted = jax.jit(lambda *p: layer(*p)[0])(*params)
    sol = case.problem.compile().solve(*case.values, refine=True)
    np.testing.assert_allclose(np.asarray(eager), sol[case.variables[0]], atol=1e-8)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), atol=1e-10)


@pytest.mark.parametrize("namespace", ["hybrid", "torch"], ids=["cpu", "all torch"])
def test_bound_space_in_the_torch_and_jax_layers_equals_the_clarabel_layer(namespace,
                                                                           monkeypatch):
    """The simplex projection without its fast path: the native layers solve its Newton
    systems in the bound space (PyTorch: checked on the values, on the CPU path and all in
    torch as on a GPU; JAX: known before tracing, as P and A are constant), with values
    and gradients the Clarabel layer's."""
    from diffdsl.backends.torch import TorchLayer
    n = 8
    y, th = dd.Variable(n), dd.Parameter(n)
    prob = dd.Problem(dd.Minimize(dd.sum_squares(y - th)), [dd.sum(y) == 1, y >= 0])
    theta = np.random.default_rng(13).normal(size=(6, n))
    g = np.random.default_rng(14).normal(size=(6, n))
    reference = TorchLayer(prob, [th], [y], fast_paths=False)
    t = torch.tensor(theta, requires_grad=True)
    (reference(t)[0] * torch.tensor(g)).sum().backward()
    layer = JaxLayer(prob, [th], [y], solver="native", fast_paths=False)
    assert layer.core.native.constant_bounds
    value, grad = jax.jit(jax.value_and_grad(
        lambda p: jnp.sum(layer(p)[0] * g)))(jnp.asarray(theta))
    expected = (reference(torch.tensor(theta))[0] * torch.tensor(g)).sum()
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(grad), t.grad.numpy(), atol=1e-9)
    import diffdsl.backends.torch as torch_backend
    from diffdsl.solvers import ipm
    monkeypatch.setattr(torch_backend, "_native_namespace", lambda device, unrolled: namespace)
    taken, original = [], ipm.BoundSpace.of
    monkeypatch.setattr(ipm.BoundSpace, "of",
                        lambda *a, **k: taken.append(original(*a, **k)) or taken[-1])
    native = TorchLayer(prob, [th], [y], solver="native", fast_paths=False)
    t2 = torch.tensor(theta, requires_grad=True)
    (native(t2)[0] * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(t2.grad.numpy(), t.grad.numpy(), atol=1e-9)
    assert taken and taken[0] is not None


def test_jax_native_vmap_of_grad_under_jit_equals_the_clarabel_layer():
    case = CASES[1]()                                         # QP
    values = case.batched_values(4, seed=2)
    assert jax_layer(case).core.native.constant_definite_P    # so the row space is used
    grads = []
    for layer in (jax_layer(case), JaxLayer(case.problem, case.parameters, case.variables,
                                            duals=[case.dual])):
        loss = jax.grad(lambda q, h, layer=layer: jnp.sum(layer(q, h)[0] ** 2))
        grads.append(np.asarray(jax.jit(jax.vmap(loss))(*(jnp.asarray(v) for v in values))))
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-8)


@pytest.mark.parametrize("varies", DATA_VARIES, ids=DATA_IDS)
def test_jax_native_per_element_P_and_A_equal_the_clarabel_layer(varies):
    prob, params, x, values = data_varies_case(*varies)
    results = []
    for solver in ("native", "clarabel"):
        layer = JaxLayer(prob, params, [x], solver=solver)

        def loss(*p, layer=layer):
            out = layer(*p)[0]
            return jnp.sum(out ** 2 + out)
        args = tuple(jnp.asarray(v) for v in values)
        grads = jax.jit(jax.grad(loss, argnums=tuple(range(len(args)))))(*args)
        results.append([np.asarray(layer(*args)[0])] + [np.asarray(g) for g in grads])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-8)


def test_jax_unrolled_rule_and_float32():
    case = CASES[1]()
    implicit, unrolled = jax_layer(case), jax_layer(case, rule="unrolled")
    params = tuple(jnp.asarray(v, jnp.float32) for v in case.values)
    out = implicit(*params)[0]
    assert out.dtype == jnp.float32
    g = [jax.grad(lambda q, h, lay=lay: jnp.sum(lay(q, h)[0]))(*params)
         for lay in (implicit, unrolled)]
    np.testing.assert_allclose(np.asarray(g[1]), np.asarray(g[0]), atol=1e-4)


def test_jax_native_failures():
    prob, x, h = infeasible_when_negative()
    with pytest.raises(dd.SolverError, match="element 1"):
        JaxLayer(prob, [h], [x], solver="native")(jnp.asarray([2.0, 0.0]))
    layer = JaxLayer(prob, [h], [x], solver="native", on_failure="nan", return_status=True)
    out, status = jax.jit(layer)(jnp.asarray([2.0, 0.0]))
    assert float(out[0]) == pytest.approx(1.0, abs=1e-6) and np.isnan(float(out[1]))
    assert list(dd.SolveStatus)[int(status[1])] is dd.SolveStatus.ITERATION_LIMIT


def test_auto_layers_hand_unsolved_elements_to_clarabel():
    """solver="auto" picks the native solver here; an infeasible element sends the batch to
    the host path, where Clarabel certifies it infeasible; the solved element's value and
    gradient are unchanged."""
    prob, x, h = infeasible_when_negative()
    values = np.array([2.0, 0.0])
    layer = TorchLayer(prob, [h], [x], solver="auto", on_failure="nan", return_status=True)
    assert layer.compiled.adapter.name == "native"
    hs = torch.tensor(values, requires_grad=True)
    out, status = layer(hs)
    assert list(dd.SolveStatus)[int(status[1])] is dd.SolveStatus.INFEASIBLE
    assert out[0].item() == pytest.approx(1.0, abs=1e-8)
    torch.nan_to_num(out).sum().backward()
    assert hs.grad[0].item() == pytest.approx(0.0, abs=1e-8) and hs.grad[1] == 0.0
    jlayer = JaxLayer(prob, [h], [x], solver="auto", on_failure="nan", return_status=True)
    jout, jstatus = jlayer(jnp.asarray(values))
    assert list(dd.SolveStatus)[int(jstatus[1])] is dd.SolveStatus.INFEASIBLE
    assert float(jout[0]) == pytest.approx(1.0, abs=1e-8)
