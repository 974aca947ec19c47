"""``TorchLayer``: a compiled problem as a ``torch.nn.Module`` (cvxpylayers' convention).

    layer = TorchLayer(problem, parameters=[A, b], variables=[x])
    x_star, = layer(A_tensor, b_tensor)            # leading batch dimension optional

θ → (P, c, A, b) is a sparse matrix product in torch (torch autograd differentiates it);
the cone solve and its derivative are one ``torch.autograd.Function`` with ``backward``
(reverse mode) and ``jvp`` (forward mode: ``torch.func.jvp``, ``torch.autograd.forward_ad``).
Everything is computed in float64 on the CPU solver and returned in the input dtype on the
input device. With ``solver="native"`` the solve runs on the tensors' own device
(``diffdsl.solvers.ipm``; on the CPU with NumPy arithmetic and PyTorch's batched LU), with
its batched derivative in ``_NativeSolve``, or autograd through the iterations for
``rule="unrolled"``.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

from diffdsl.diff.threads import single_threaded_blas, single_threaded_openmp
from diffdsl.errors import DegenerateDerivativeWarning
from diffdsl.solvers import SolverError, ipm, native
from diffdsl.solvers.arrays import namespace

from ._core import BLOCKS, LayerCore, Linear


def _sparse(linear: Linear, device) -> torch.Tensor:
    index = torch.as_tensor(np.stack([linear.rows, linear.cols]), dtype=torch.long)
    return torch.sparse_coo_tensor(index, torch.as_tensor(linear.vals, dtype=torch.float64),
                                   linear.shape, device=device,
                                   check_invariants=False).coalesce()


class _SparseMap(torch.autograd.Function):
    """X ↦ X Mᵀ for a constant sparse M (rows of X mapped by M), with both modes of
    differentiation (torch's sparse product has no forward-mode rule)."""

    @staticmethod
    def forward(M, MT, X):
        return torch.sparse.mm(M, X.T).T

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.M, ctx.MT = inputs[0], inputs[1]

    @staticmethod
    def backward(ctx, g):
        return None, None, torch.sparse.mm(ctx.MT, g.T).T

    @staticmethod
    def jvp(ctx, _M, _MT, dX):
        return torch.sparse.mm(ctx.M, dX.T).T


def _apply(pair, X: torch.Tensor) -> torch.Tensor:
    """M @ each row of X: (B, k) → (B, rows of M), for pair = (M, Mᵀ)."""
    return _SparseMap.apply(pair[0], pair[1], X)


def _pair(linear: Linear, device):
    M = _sparse(linear, device)
    return M, M.t().coalesce()


def _numpy(t: torch.Tensor) -> np.ndarray:
    """t's value as a float64 NumPy array: a view of a CPU float64 tensor's memory, else a
    copy. Inside torch.func transforms the tensors handed to an autograd.Function's ``jvp``
    are wrappers without storage; reading them needs the transforms disabled (torch's
    private ``_DisableFuncTorch``: there is no public way)."""
    with torch._C._DisableFuncTorch():
        return t.detach().to("cpu", torch.float64).numpy()


class _Box:
    """Carries the Solution from ``forward`` to ``setup_context`` (an opaque object, so
    torch.func does not flatten it as it would a dict)."""

    solution = None


class _ConeSolve(torch.autograd.Function):
    """(P values, c, A values, b) ↦ (x, y): the solve, its VJP and its JVP."""

    @staticmethod
    def forward(P, c, A, b, theta, core, options, box):
        solution = core.solve(_numpy(theta), *(_numpy(t) for t in (P, c, A, b)), **options)
        box.solution = solution
        return (torch.as_tensor(solution.x, device=theta.device),
                torch.as_tensor(solution.y, device=theta.device))

    @staticmethod
    def setup_context(ctx, inputs, output):
        P, c, A, b, theta, core, options, box = inputs
        ctx.core, ctx.solution = core, box.solution
        ctx.input_rows = [t.shape[0] for t in (P, c, A, b)]
        ctx.device = theta.device

    @staticmethod
    def backward(ctx, gx, gy):
        grads = ctx.core.data_vjp(ctx.solution, _numpy(gx), _numpy(gy))
        out = []
        for block, rows in zip(BLOCKS, ctx.input_rows, strict=True):
            g = torch.as_tensor(grads[block], device=ctx.device)
            out.append(g.sum(0, keepdim=True) if rows == 1 and g.shape[0] != 1 else g)
        return (*out, None, None, None, None)

    @staticmethod
    def jvp(ctx, dP, dc, dA, db, *_):
        tangents = {k: None if t is None else _numpy(t)
                    for k, t in zip(BLOCKS, (dP, dc, dA, db), strict=True)}
        dx, dy = ctx.core.data_jvp(ctx.solution, tangents)
        return torch.as_tensor(dx, device=ctx.device), torch.as_tensor(dy, device=ctx.device)


class _TorchOps:
    """The array namespace the closed forms of ``diffdsl.fastpaths`` are written in."""

    @staticmethod
    def maximum(a, b):
        return torch.clamp(a, min=b) if not torch.is_tensor(b) else torch.maximum(a, b)

    @staticmethod
    def minimum(a, b):
        if not torch.is_tensor(a):
            a, b = b, a
        return torch.clamp(a, max=b) if not torch.is_tensor(b) else torch.minimum(a, b)

    sqrt, exp = staticmethod(torch.sqrt), staticmethod(torch.exp)

    @staticmethod
    def clip(a, lower, upper):
        return torch.clamp(a, min=torch.as_tensor(lower, dtype=a.dtype, device=a.device),
                           max=torch.as_tensor(upper, dtype=a.dtype, device=a.device))

    @staticmethod
    def sum(a, axis, keepdims=False):
        return a.sum(dim=axis, keepdim=keepdims)

    @staticmethod
    def max(a, axis, keepdims=False):
        return a.amax(dim=axis, keepdim=keepdims)

    @staticmethod
    def sort_descending(a):
        return torch.sort(a, dim=-1, descending=True).values

    @staticmethod
    def arange(start, stop, like):
        return torch.arange(start, stop, dtype=like.dtype, device=like.device)

    @staticmethod
    def cumsum(a, axis):
        return torch.cumsum(a, dim=axis)

    @staticmethod
    def where(condition, a, b):
        return torch.where(condition, a, b)

    @staticmethod
    def as_index(a):
        return a.long()

    @staticmethod
    def take_along(a, index):
        return torch.take_along_dim(a, index, dim=-1)


class _NativeSolve(torch.autograd.Function):
    """(P, c, A, b) ↦ (x, y) by the native solver on the tensors' device, P and A by their
    values on the program's patterns (dense inside); backward and jvp by its batched
    derivative (``diffdsl.solvers.ipm.Derivative``, factored once), P and A's gradients
    on the patterns' entries only."""

    @staticmethod
    def forward(Pv, c, Av, b, layer, box):
        with torch.no_grad():
            P, A = layer._native_dense(Pv, Av)
            x, y, codes, derivative = layer._native_solve(P, c, A, b)
        box.derivative, box.codes = derivative, codes
        return x, y

    @staticmethod
    def setup_context(ctx, inputs, output):
        box, layer = inputs[-1], inputs[-2]
        ctx.derivative, ctx.ok, ctx.layer = box.derivative, box.codes <= 1, layer
        ctx.batches = [len(t) for t in inputs[:4]]
        ctx.P_entries = inputs[0].shape[1]

    @staticmethod
    def backward(ctx, gx, gy):
        ok = ctx.ok[:, None]
        d = ctx.derivative
        wx, wv = (torch.where(ok, w, 0.0) for w in d.call(
            "adjoint", torch.where(ok, gx, 0.0), torch.where(ok, gy, 0.0)))
        _warn_degenerate(d, ctx.ok)
        x, y = (torch.where(ok, a, 0.0) for a in d.point())
        n = x.shape[1]
        P_index, P_take, A_index = ctx.layer._native_index
        # (w_x, w_v) give every data gradient (``ipm.data_gradients``): ∂P = w_x xᵀ,
        # ∂c = w_x, ∂A = y w_xᵀ − w_v xᵀ, ∂b = w_v, here on the patterns' entries only
        grads = [None, wx, None, wv]
        if ctx.needs_input_grad[0]:
            i, j = P_index // n, P_index % n
            grads[0] = torch.zeros(len(wx), ctx.P_entries, dtype=wx.dtype,
                                   device=wx.device).index_add(1, P_take, wx[:, i] * x[:, j])
        if ctx.needs_input_grad[2]:
            grads[2] = _pattern_gradient(y, wx, wv, x, A_index // n, A_index % n)
        # a (1, ·) input shared by the batch gets the sum of the elements' gradients
        return (*(g if g is None or size != 1 else g.sum(0, keepdim=True)
                  for g, size in zip(grads, ctx.batches, strict=True)), None, None)

    @staticmethod
    def jvp(ctx, dPv, dc, dAv, db, *_):
        dP, dA = ctx.layer._native_dense(dPv, dAv)
        dx, dy, _ = ctx.derivative.call("jvp", dP, dc, dA, db)
        ok = ctx.ok[:, None]
        return torch.where(ok, dx, 0.0), torch.where(ok, dy, 0.0)


def _pattern_gradient(y, wx, wv, x, i, j):
    """∂A on the pattern's entries (i, j): y_i w_x,j − w_v,i x_j (on the CPU by NumPy's
    gathers, ``ipm.pattern_gradient_A``: a quarter of PyTorch's time for the lasso's 5000
    entries)."""
    if y.device.type != "cpu":
        return y[:, i] * wx[:, j] - wv[:, i] * x[:, j]
    return torch.from_numpy(ipm.pattern_gradient_A(
        *(t.detach().numpy() for t in (x, y, wx, wv, i, j))))


class _OnDevice:
    """An ``ipm.Derivative`` held in some array namespace, called with and answering in
    tensors on ``device``."""

    def __init__(self, derivative, ops, device) -> None:
        self.derivative, self.ops, self.device = derivative, ops, device
        self.usable = self.back(derivative.usable)

    def back(self, a):
        return a if self.ops.name == "torch" else torch.as_tensor(a, device=self.device)

    def point(self):
        """(x, y): the point the derivative is taken at."""
        return tuple(self.back(a) for a in (self.derivative.x, self.derivative.y))

    def call(self, method: str, *tensors):
        """The derivative's ``method`` on plain tensors/arrays of the arguments' values (read
        with torch.func's transforms disabled, as ``_numpy`` does)."""
        with torch._C._DisableFuncTorch():
            if self.ops.name == "torch":
                return getattr(self.derivative, method)(*(t.detach() for t in tensors))
            out = getattr(self.derivative, method)(*(_numpy(t) for t in tensors))
        return tuple(self.back(a) for a in out)


def _native_namespace(device, unrolled: bool) -> str:
    """"hybrid" on the CPU for the implicit rule (NumPy arithmetic and PyTorch's batched LU:
    the fastest there); "torch" on a GPU, or when autograd must follow the iterations."""
    return "hybrid" if device.type == "cpu" and not unrolled else "torch"


def _warn_degenerate(derivative, ok) -> None:
    """A DegenerateDerivativeWarning naming solved elements whose derivative system is
    singular or whose point sits at a cone projection's kink."""
    flagged = torch.nonzero(ok & ~derivative.usable).flatten().tolist()
    if flagged:
        warnings.warn(f"derivatives of {len(flagged)} element(s) are not reliable (singular "
                      "derivative system or a point at a cone projection's kink): elements "
                      f"{flagged[:10]}", DegenerateDerivativeWarning, stacklevel=3)


class TorchLayer(torch.nn.Module):
    """A differentiable layer θ ↦ (variables..., duals...).

    ``problem``: a DPP diffdsl Problem; ``parameters``: its Parameters in call order (all of
    them); ``variables``: the Variables to return; ``duals``: constraints whose dual values
    to return after the variables (a tuple of tensors for SOC/exp/pow constraints);
    ``solver``, ``rule``, ``proximal`` and solver options as for ``Problem.compile``;
    ``refine``: polish every solution by Newton's method before returning it (default: yes,
    so outputs and derivatives are exact to ~1e-15 — except with solver="native", which
    polishes its own points and factors the whole batch's derivative system there).
    ``warm_start=True`` reuses the previous call's solution when the batch size matches
    (SCS, OSQP). ``on_failure``:
    "raise" (``diffdsl.SolverError`` naming the failed batch elements) or "nan" (those
    elements come back NaN with zero gradients). ``return_status=True`` appends the per
    element status codes (indices into ``list(diffdsl.SolveStatus)``, 0 = optimal) to the
    outputs. ``layer.last_solution`` is the ``Solution`` of the latest call (statuses,
    residuals, derivative flags).
    """

    def __init__(self, problem, parameters, variables, duals=(), solver: str = "clarabel",
                 rule=None, refine: bool | None = None, warm_start: bool = False,
                 on_failure: str = "raise", return_status: bool = False,
                 proximal: float | None = None, **opts) -> None:
        super().__init__()
        self.core = LayerCore(problem, parameters, variables, duals, solver=solver, rule=rule,
                              refine=refine, on_failure=on_failure, proximal=proximal, **opts)
        self.warm_start, self.return_status = warm_start, return_status
        self.native = self.core.compiled.adapter.name == "native"     # named, or by "auto"
        self.last_solution = None
        self._maps = {k: None for k in BLOCKS}
        self._device = None
        self._native_cones = {}         # (namespace, device) → the method's cone constants
        self._constants = {}            # (block, device) → a block θ does not move

    @property
    def compiled(self):
        return self.core.compiled

    def _data_maps(self, device):
        if self._device != device:
            self._maps = {k: _pair(self.core.maps[k], device) for k in BLOCKS}
            self._device = device
        return self._maps

    def forward(self, *params, solver_args: dict | None = None):
        core = self.core
        if not params or not all(isinstance(p, torch.Tensor) for p in params):
            params = tuple(torch.as_tensor(p) for p in params)
        core.check_dtypes(["c" if p.is_complex() else "b" if p.dtype == torch.bool
                           else "f" for p in params])
        batch = core.batch_size([tuple(p.shape) for p in params])
        B = batch or 1
        device = params[0].device
        dtype = params[0].dtype if params[0].is_floating_point() else torch.float64
        columns = [torch.ones(B, 1, dtype=torch.float64, device=device)]
        for p, (_, size, _) in zip(params, core.parameter_layout(), strict=True):
            value = p.to(device, torch.float64).reshape(-1, size)
            columns.append(value.expand(B, size))
        theta = torch.cat(columns, dim=1)
        if core.fast_path is not None:                 # a closed form, differentiated by torch
            return self._closed_form(theta, batch, dtype, device)
        maps = self._data_maps(device)
        data = [self._constant_block(k, theta) if core.constant[k] else _apply(maps[k], theta)
                for k in BLOCKS]
        if self.native:
            return self._native_forward(data, theta, batch, dtype, device, solver_args)
        return self._host_forward(data, theta, batch, dtype, device, solver_args)

    def _constant_block(self, k, theta):
        """Block k of the data where θ does not move it: computed once per device, outside
        autograd (its gradient is 0), (1, size)."""
        key = (k, theta.device)
        if key not in self._constants:
            with torch.no_grad():
                self._constants[key] = _apply(self._data_maps(theta.device)[k], theta[:1])
        return self._constants[key]

    def _host_forward(self, data, theta, batch, dtype, device, solver_args):
        """The solve on the host (``CompiledProblem.solve_program``) as ``_ConeSolve``."""
        options = {"warm_start": self.warm_start, **(solver_args or {})}
        box = _Box()
        x, y = _ConeSolve.apply(*data, theta, self.core, options, box)
        self.last_solution = box.solution
        codes = torch.as_tensor(self.core.status_codes(box.solution), device=device)
        return self._outputs(x, y, codes, batch, dtype, device)

    def _outputs(self, x, y, codes, batch, dtype, device):
        core, B = self.core, x.shape[0]
        outputs = [x[:, o.offset:o.offset + o.size].reshape((B,) + o.shape)
                   for o in core.outputs]
        for group in core.dual_groups:
            parts = [_apply(_pair(o.linear, device), y).reshape((B,) + o.shape)
                     for o in group]
            outputs.append(parts[0] if len(parts) == 1 else tuple(parts))
        outputs = [_finish(o, batch, dtype) for o in outputs]
        if self.return_status:
            outputs.append(codes if batch is not None else codes[0])
        return tuple(outputs)

    # solver="native": the interior-point method on the tensors' own device ---------------
    def _native_forward(self, data, theta, batch, dtype, device, solver_args):
        if solver_args:
            raise ValueError("solver_args are not taken with solver='native' (its options "
                             "are fixed at construction)")
        core, layout = self.core, self.core.native
        core.check_values(_numpy(theta))
        B = theta.shape[0]
        # P and A stay (1, ·, ·) when θ does not move them: the method shares them
        Pv, Av = data[0], data[2]
        c, b = (t.expand(B, t.shape[1]) for t in (data[1], data[3]))
        if getattr(self, "_native_device", None) != device:     # index tensors, per device
            self._native_index = tuple(torch.as_tensor(a, device=device) for a in (
                layout.P_index, layout.P_take, layout.A_index))
            self._native_device = device
        if layout.unrolled:              # torch's autograd follows the iterations
            P, A = self._native_dense(Pv, Av)
            x, y, codes, _ = self._native_solve(P, c, A, b, derivative=False)
        else:
            box = _Box()
            x, y = _NativeSolve.apply(Pv, c, Av, b, self, box)
            codes = box.codes
        self.last_solution = None
        failed = codes > 1
        if bool(failed.any()) and core.compiled.auto_choice is not None:
            # solver="auto": the batch again on the host, where CompiledProblem solves the
            # elements the native method could not with Clarabel (certified statuses)
            return self._host_forward(data, theta, batch, dtype, device, solver_args)
        if bool(failed.any()):
            if core.on_failure == "raise":
                raise SolverError(layout.failure_message(codes.cpu().numpy()))
            x = torch.where(failed[:, None], torch.nan, x)
            y = torch.where(failed[:, None], torch.nan, y)
        return self._outputs(x, y, codes, batch, dtype, device)

    def _native_dense(self, Pv, Av):
        """Dense P (·, n, n) and A (·, m, n) from their values on the patterns; P once per
        device where θ does not move it (the solve never writes over P; A may be)."""
        layout = self.core.native
        n, m = layout.n, layout.m
        P_index, P_take, A_index = self._native_index

        def scatter(values, index, size):
            out = torch.zeros(len(values), size, dtype=torch.float64, device=values.device)
            if layout.distinct_entries:
                return out.index_copy_(1, index, values)
            return out.index_add(1, index, values)

        constant = Pv is self._constants.get(("P", Pv.device))
        P = self._constants.get(("dense P", Pv.device)) if constant else None
        if P is None:
            P = scatter(Pv[:, P_take], P_index, n * n).reshape(-1, n, n)
            if constant:
                self._constants["dense P", Pv.device] = P
        return P, scatter(Av, A_index, m * n).reshape(-1, m, n)

    def _native_solve(self, P, c, A, b, derivative: bool = True):
        """(x, y, status codes in SolveStatus order, the polished point's derivative). On
        the CPU (implicit rule) the arithmetic is NumPy's and the LU PyTorch's — the fastest
        there; on a GPU, or unrolled (autograd must see every step), all of it is torch's."""
        layout, device = self.core.native, P.device
        ops = namespace(_native_namespace(device, layout.unrolled))
        hybrid = ops.name == "hybrid"
        data = [_numpy(t) if hybrid else t for t in (P, c, A, b)]
        # (an element that is infeasible or unbounded diverges: its overflow is expected)
        threads = single_threaded_openmp() if hybrid else contextlib.nullcontext()
        with single_threaded_blas(), threads, np.errstate(over="ignore", invalid="ignore",
                                                          divide="ignore"):
            key = (ops.name, device)
            if key not in self._native_cones:
                self._native_cones[key] = ipm.Cones.of(ops, layout.cones, like=data[0])
            cones = self._native_cones[key]
            limits = dict(tol=layout.tol, max_iter=layout.max_iter)
            d = None
            if derivative:
                # A is this call's own array (built by _native_forward): hybrid, the
                # substitution may write over it
                x, y, _, status, _, d = native.solve_substituted(
                    ops, cones, *data, layout.substitution, layout.bounds,
                    layout.full_diagonal_P, overwrite=hybrid, **limits)
                d = _OnDevice(d, ops, device)
            else:               # unrolled: every step in torch's autograd, in x space
                x, y, _, status, _, _ = ipm.interior_point(ops, cones, *data, **limits,
                                                           unrolled=layout.unrolled)
        x, y, status = (torch.as_tensor(a, device=device) for a in (x, y, status))
        codes = torch.as_tensor(layout.codes, device=device)[status.long()]
        return x, y, codes, d

    def _closed_form(self, theta, batch, dtype, device):
        core = self.core
        if getattr(self, "_fast_device", None) != device:
            self._fast_pair, self._fast_device = _pair(core.fast_map, device), device
        y = core.fast_path.solve(_apply(self._fast_pair, theta), _TorchOps)
        self.last_solution = None
        o = core.outputs[0]
        outputs = [_finish(y.reshape((theta.shape[0],) + o.shape), batch, dtype)]
        if self.return_status:
            codes = torch.zeros(theta.shape[0], dtype=torch.int32, device=device)
            outputs.append(codes if batch is not None else codes[0])
        return tuple(outputs)

    def extra_repr(self) -> str:
        return self.core.describe("TorchLayer")

    def __repr__(self) -> str:
        return self.extra_repr()


def _finish(out, batch, dtype):
    if isinstance(out, tuple):
        return tuple(_finish(o, batch, dtype) for o in out)
    out = out.to(dtype)
    return out if batch is not None else out[0]
