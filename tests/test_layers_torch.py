"""TorchLayer over the problem grid, grouped by transformation: values, gradcheck (reverse),
forward mode (forward_ad and torch.func.jvp), dtypes and devices, batching, warm start."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffdsl as dd  # noqa: E402
from diffdsl.backends.torch import TorchLayer  # noqa: E402

from layer_problems import CASES, IDS  # noqa: E402


def flat(outputs):
    """Outputs with multi-part duals flattened into one tuple of tensors."""
    out = []
    for o in outputs:
        out.extend(o if isinstance(o, tuple) else (o,))
    return tuple(out)


def layer_of(case, **kw):
    return TorchLayer(case.problem, case.parameters, case.variables, duals=[case.dual], **kw)


def tensors(values, grad=True, dtype=torch.float64):
    return [torch.tensor(v, dtype=dtype, requires_grad=grad) for v in values]


# ------------------------------------------------------------------------- values
@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_outputs_match_the_compiled_solution(make):
    case = make()
    var, = case.variables
    x, dual = layer_of(case)(*tensors(case.values, grad=False))[:2]
    sol = case.problem.compile().solve(*case.values, refine=True)
    np.testing.assert_allclose(x.numpy(), sol[var], atol=1e-7)
    expected = sol.dual(case.dual)
    for got, want in zip(flat((dual,)), expected if isinstance(expected, list) else [expected],
                         strict=True):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-7)


# ------------------------------------------------------------------------- reverse mode
@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_gradcheck_float64(make):
    case = make()
    layer = layer_of(case)
    assert torch.autograd.gradcheck(lambda *p: flat(layer(*p)), tuple(tensors(case.values)),
                                    eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradcheck_batched_with_an_unbatched_parameter():
    case = CASES[1]()
    layer = layer_of(case)
    q, h = case.batched_values(3)[0], case.values[1]
    assert torch.autograd.gradcheck(lambda *p: flat(layer(*p)), tuple(tensors([q, h])),
                                    eps=1e-6, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------- forward mode
@pytest.mark.parametrize("make", CASES, ids=IDS)
def test_forward_mode_matches_reverse_mode(make):
    """⟨g, J v⟩ from forward_ad and torch.func.jvp equals ⟨Jᵀ g, v⟩ from backward."""
    import torch.autograd.forward_ad as fwAD
    case = make()
    layer = layer_of(case)
    r = np.random.default_rng(0)
    primals = tensors(case.values, grad=False)
    directions = [torch.tensor(r.normal(size=np.shape(v))) for v in case.values]
    with fwAD.dual_level():
        duals = [fwAD.make_dual(p, d) for p, d in zip(primals, directions, strict=True)]
        forward = [fwAD.unpack_dual(o).tangent for o in flat(layer(*duals))]
    _, func_tangents = torch.func.jvp(lambda *p: flat(layer(*p)), tuple(primals),
                                      tuple(directions))
    for a, b in zip(forward, func_tangents, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12)
    weights = [torch.tensor(r.normal(size=tuple(t.shape))) for t in forward]
    lhs = sum((w * t).sum() for w, t in zip(weights, forward, strict=True))
    params = tensors(case.values)
    outputs = flat(layer(*params))
    grads = torch.autograd.grad(sum((w * o).sum() for w, o in zip(weights, outputs,
                                                                  strict=True)), params)
    rhs = sum((g * d).sum() for g, d in zip(grads, directions, strict=True))
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-9, abs=1e-10)


# ------------------------------------------------------------------------- dtypes, devices
def test_float32_in_float32_out_computed_in_float64():
    case = CASES[1]()
    layer = layer_of(case)
    x32, dual32 = layer(*tensors(case.values, dtype=torch.float32))
    x64, _ = layer(*tensors(case.values))
    assert x32.dtype == dual32.dtype == torch.float32
    np.testing.assert_allclose(x32.detach().numpy(), x64.detach().numpy(), rtol=1e-6,
                               atol=1e-6)
    params = tensors(case.values, dtype=torch.float32)
    layer(*params)[0].sum().backward()
    assert params[0].grad.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_come_back_on_cuda():
    case = CASES[1]()
    layer = layer_of(case)
    params = [t.cuda() for t in tensors(case.values)]
    x, _ = layer(*params)
    assert x.device.type == "cuda"
    x.sum().backward()


# ------------------------------------------------------------------------- batching
def test_batched_and_unbatched_parameters_mix():
    case = CASES[1]()
    layer = layer_of(case)
    q = case.batched_values(4)[0]
    x, _ = layer(torch.tensor(q), torch.tensor(case.values[1]))
    assert x.shape == (4, 4)
    for i in range(4):
        xi, _ = layer(torch.tensor(q[i]), torch.tensor(case.values[1]))
        np.testing.assert_allclose(x[i].numpy(), xi.numpy(), atol=1e-10)


def test_bad_arguments_name_the_parameter():
    case = CASES[1]()
    layer = layer_of(case)
    with pytest.raises(dd.ParameterValueError, match="'h'.*expected"):
        layer(torch.zeros(4), torch.zeros(5))
    with pytest.raises(dd.ParameterValueError, match="expected 2 parameter values"):
        layer(torch.zeros(4))
    with pytest.raises(dd.ParameterValueError, match="inconsistent batch sizes"):
        layer(torch.zeros(2, 4), torch.zeros(3, 6))


def test_infeasible_element_raises_solver_error():
    x, h = dd.Variable(), dd.Parameter()
    layer = TorchLayer(dd.Problem(dd.Minimize(x), [x >= 1, x <= h]), [h], [x])
    with pytest.raises(dd.SolverError, match="element 1: infeasible"):
        layer(torch.tensor([2.0, 0.0]))


# ------------------------------------------------------------------------- warm start, migration
def test_warm_start_reuses_the_previous_solution():
    case = CASES[1]()
    layer = layer_of(case, solver="scs", warm_start=True, refine=False)
    values = tensors(case.batched_values(2), grad=False)
    layer(*values)
    cold = layer.compiled._last
    layer(*values)
    warm = layer.compiled._last
    assert sum(r.iterations for r in warm) < sum(r.iterations for r in cold)


def test_cvxpylayers_calling_convention_with_a_cvxpy_problem():
    """TorchLayer takes the CVXPY problem and leaves a CvxpyLayer took, and solver_args."""
    cp = pytest.importorskip("cvxpy")
    n = 3
    x, q = cp.Variable(n), cp.Parameter(n)
    con = x >= -1
    prob = cp.Problem(cp.Minimize(cp.sum_squares(x) + q @ x), [con])
    layer = TorchLayer(prob, parameters=[q], variables=[x], duals=[con])
    value = np.array([1.0, -4.0, 3.0])
    x_star, dual = layer(torch.tensor(value), solver_args={"max_iter": 200})
    q.value = value
    prob.solve(solver="CLARABEL")
    np.testing.assert_allclose(x_star.numpy(), x.value, atol=1e-6)
    np.testing.assert_allclose(dual.numpy(), con.dual_value, atol=1e-6)
