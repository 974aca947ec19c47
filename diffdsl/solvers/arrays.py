"""The array namespaces the native solver runs in: NumPy, PyTorch (CPU or CUDA) and JAX
(under ``jit``/``vmap``, CPU or GPU). One small interface, so the interior-point method and
its derivative (``diffdsl.solvers.ipm``) are written once and run where the tensors are.

Every namespace computes in float64. Arrays are batched: (B, rows) vectors and
(B, rows, cols) matrices. The control flow the solver needs is here too: ``loop`` stops
when every element is done (a Python loop for NumPy and PyTorch, ``lax.while_loop`` for
JAX), and ``unrolled_loop`` runs a fixed number of iterations that autodiff can follow
(a Python loop; JAX's ``lax.fori_loop``). PyTorch and JAX are imported only when asked for.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import sys
import threading

import numpy as np

from ..diff.threads import cores, per_process, single_threaded_openmp
from . import fused

#: multiply-adds of one batched dense operation from which NumPy and the hybrid namespace
#: compute its batch in two halves on two threads (below, the hand-over costs more)
PARALLEL_WORK = 1e6
#: size up to which NumPy arrays' definite systems are factored and solved by compiled
#: loops (``fused``, numba): at 7 unknowns a third of LAPACK's and PyTorch's time with
#: their calls' overhead, at 50 four fifths (its inner products vectorized), slower at 64
SMALL_CHOLESKY = 56
#: ... and general systems by compiled LU loops (at 7 unknowns half of PyTorch's time with
#: its calls' overhead, slower from ~20)
SMALL_LU = 16


@dataclasses.dataclass
class CompiledLU:
    """A batch's LU factors from ``fused.lu`` (LAPACK's layout: L unit lower and U upper in
    one array, row swaps as pivots)."""

    lu: np.ndarray
    pivots: np.ndarray


@dataclasses.dataclass
class Cholesky:
    """A batch's Cholesky factors L (K = LLᵀ), from ``factor_definite``."""

    L: object


@per_process
def _helper_thread() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="diffdsl-half-batch")


_helper_limits = threading.local()


def _on_helper(fn, *args):
    """fn(*args) on the helper thread with its OpenMP (PyTorch's intra-op threads) at one
    thread. OpenMP's thread count is per calling thread, so the method's limit, set in its
    own thread (``threads.single_threaded_openmp``), does not reach here — and OpenMP
    workers spinning after a parallel region take the other core from the method. The
    limit is set once, and again once PyTorch (with its own OpenMP) has been imported."""
    torch_loaded = "torch" in sys.modules
    if getattr(_helper_limits, "torch_loaded", None) != torch_loaded:
        single_threaded_openmp()         # applied on creation; never restored in this thread
        _helper_limits.torch_loaded = torch_loaded
    return fn(*args)


def in_halves(fn, arrays, work: float, join):
    """fn(*arrays) over the batch (the leading axis of the arrays that have more than one
    element there) in two halves at once, the second on a helper thread, joined by
    ``join(first, second)``: NumPy's matmul and linalg and PyTorch's kernels release the
    GIL, so a batch's gram matrices or factorizations use two cores where the method's
    one BLAS thread would use one. fn(*arrays) itself below ``PARALLEL_WORK`` (multiply-
    adds), for a batch of one, or on one core. (fn must not call ``in_halves``.)"""
    B = max(a.shape[0] for a in arrays)
    if B < 2 or work < PARALLEL_WORK or cores() < 2:
        return fn(*arrays)

    def part(rows):
        return fn(*(a[rows] if a.shape[0] == B else a for a in arrays))

    second = _helper_thread().submit(_on_helper, part, slice(B // 2, None))
    try:
        first = part(slice(None, B // 2))
    finally:
        concurrent.futures.wait([second])
    return join(first, second.result())


class NumpyArrays:
    """NumPy (and the base of the others: what they share by name)."""

    name = "numpy"
    float64 = np.float64

    def __init__(self) -> None:
        self.xp = np

    def __reduce__(self):
        """Pickled (and deep-copied) by name: the namespace of that name where loaded."""
        return namespace, (self.name,)

    # constructors and conversion --------------------------------------------------
    def constant(self, a, like=None):
        """A NumPy constant as an array of this namespace (on ``like``'s device)."""
        return np.asarray(a, dtype=np.float64)

    def index(self, a, like=None):
        """Constant integer positions for ``take``, kept where ``like`` lives (NumPy's stay
        NumPy arrays: JAX takes them as static under a trace)."""
        return np.asarray(a, dtype=np.int64)

    def zeros(self, shape, like=None):
        return self.xp.zeros(shape, dtype=self.float64)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def contiguous(self, a):
        """a in row-major memory (a gathered array's products are faster so)."""
        return np.ascontiguousarray(a)

    # elementwise and reductions ----------------------------------------------------
    def where(self, condition, a, b):
        return self.xp.where(condition, a, b)

    def maximum(self, a, b):
        return self.xp.maximum(a, b)

    def minimum(self, a, b):
        return self.xp.minimum(a, b)

    def sqrt(self, a):
        return self.xp.sqrt(a)

    def abs(self, a):
        return self.xp.abs(a)

    # (the axis is passed by position: NumPy's ``axis`` is PyTorch's ``dim``; the array
    # methods skip NumPy's Python-level reduction wrappers, a third of a small sum's time)
    def sum(self, a, axis):
        return a.sum(axis)

    def amax(self, a, axis, empty=0.0):
        """Largest entry along ``axis`` (``empty`` when the axis has no entries)."""
        if a.shape[axis] == 0:
            return self.full(a.shape[:axis] + a.shape[axis + 1:], empty, a)
        return self._max(a, axis)

    def amin(self, a, axis, empty=np.inf):
        if a.shape[axis] == 0:
            return self.full(a.shape[:axis] + a.shape[axis + 1:], empty, a)
        return self._min(a, axis)

    def _max(self, a, axis):
        return a.max(axis)

    def _min(self, a, axis):
        return a.min(axis)

    def full(self, shape, value, like):
        return self.xp.full(shape, value, dtype=self.float64)

    def cat(self, arrays, axis):
        return self.xp.concatenate(arrays, axis=axis)

    def eye(self, n, like=None):
        return self.xp.eye(n, dtype=self.float64)

    def broadcast(self, a, shape):
        """``a`` seen with ``shape`` (a shared (1, ·) batch repeated), without copying."""
        return self.xp.broadcast_to(a, shape)

    def weighted_gram(self, X, w):
        """X diag(w) Xᵀ per element, X (B or 1, r, c), w (B, c) (in halves: ``in_halves``)."""
        B, (r, c) = w.shape[0], X.shape[-2:]
        return in_halves(_weighted_gram, (X, w), B * r * r * c, _concatenate)

    def add_diagonal(self, M, v, corner=None):
        """M + diag(v) for M (B or 1, k, k) and v (B, k) or (k,), without forming diag(v);
        ``corner`` (B, q, q), if given, is added to the bottom-right q × q block too."""
        out = np.array(self._batched(M, v), dtype=np.float64, order="C")
        k = np.arange(M.shape[-1])
        out[..., k, k] += v
        if corner is not None:
            q = corner.shape[-1]
            out[..., k.size - q:, k.size - q:] += corner
        return out

    def _batched(self, M, v):
        """M (1, k, k) repeated to v's batch (B, k), or M itself."""
        if v.ndim == 2 and M.shape[0] == 1 and v.shape[0] != 1:
            return self.broadcast(M, v.shape[:1] + M.shape[1:])
        return M

    # dense batched linear algebra ----------------------------------------------------
    def factor(self, K):
        """A factorization of every matrix of the batch K (B, k, k)."""
        compiled = self._compiled_lu(K)
        if compiled is not None:
            return compiled
        import warnings

        import scipy.linalg
        with warnings.catch_warnings():       # singular elements are found by pivots_ok
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            return [scipy.linalg.lu_factor(k, check_finite=False) for k in K]

    def factor_definite(self, K):
        """A factorization of every matrix of the batch K (B, k, k), symmetric and, where it
        pays, known to be positive definite: Cholesky where it succeeds for the whole batch
        (half an LU's work), else LU. (Here Cholesky for small systems only, by compiled
        loops: SciPy's Cholesky is not batched.)"""
        return self._compiled_cholesky(K) or self.factor(K)

    def compiled_loops(self) -> bool:
        """Whether ``fused``'s compiled loops serve this namespace: NumPy arrays (the
        ``numpy`` and ``hybrid`` namespaces, not PyTorch's or JAX's, which inherit from
        this class) with numba installed."""
        return self.name in ("numpy", "hybrid") and fused.available()

    def _compiled_lu(self, K):
        """``fused``'s LU of a batch of small matrices, or None (another namespace, larger
        systems, no numba)."""
        if K.shape[-1] > SMALL_LU or not self.compiled_loops():
            return None
        return CompiledLU(*fused.lu(np.ascontiguousarray(K)))

    def _compiled_cholesky(self, K):
        """Cholesky(L) of a batch of small definite systems by ``fused``'s loops, or None:
        another namespace, larger systems, no numba, or a pivot that is not positive."""
        B, k = K.shape[0], K.shape[-1]
        if k > SMALL_CHOLESKY or not self.compiled_loops():
            return None
        L, ok = in_halves(fused.cholesky, (np.ascontiguousarray(K),), B * k ** 3 / 6,
                          lambda a, b: (np.concatenate([a[0], b[0]]), a[1] and b[1]))
        return Cholesky(L) if ok else None

    def solve(self, factors, rhs, transpose: bool = False):
        """K⁻¹ rhs (or K⁻ᵀ rhs) per element; rhs (B, k) (one factorization may serve all)."""
        if isinstance(factors, Cholesky):                 # (K symmetric: no transpose)
            return fused.cholesky_solve(factors.L, rhs)
        if isinstance(factors, CompiledLU):
            return fused.lu_solve(factors.lu, factors.pivots, rhs, transpose)
        import scipy.linalg
        if len(factors) == 1:
            factors = factors * len(rhs)
        return np.array([scipy.linalg.lu_solve(f, r, trans=int(transpose), check_finite=False)
                         for f, r in zip(factors, rhs, strict=True)]).reshape(rhs.shape)

    def pivots_ok(self, factors, tol: float = 1e-12):
        """Per element: whether its factorization's pivots are all nonzero (relative)."""
        if isinstance(factors, CompiledLU):
            return _pivots_ok(np, factors.lu, tol)
        out = []
        for lu, _ in factors:
            d = np.abs(np.diag(lu))
            out.append(bool(d.size == 0 or d.min() > tol * max(d.max(), 1e-300)))
        return np.array(out, dtype=bool)

    def pinv(self, M):
        """The pseudo-inverse of every matrix of the batch (least-squares solves)."""
        return self.xp.linalg.pinv(M)

    def spd_inverse(self, P, tol: float = 1e-10):
        """(P⁻¹, ok) for a batch of symmetric matrices; ok[i]: P[i] is positive definite with
        a Cholesky pivot ratio min/max above ``tol`` (P⁻¹ is only meaningful there)."""
        B, n = P.shape[0], P.shape[-1]
        inverse, ok = np.zeros_like(P), np.zeros(B, dtype=bool)
        for i in range(B):
            try:
                L = np.linalg.cholesky(P[i])
            except np.linalg.LinAlgError:
                continue
            d = np.diag(L) ** 2
            ok[i] = n == 0 or d.min() > tol * d.max()
            inverse[i] = np.linalg.inv(P[i]) if ok[i] else 0.0
        return inverse, ok

    # gathering (eager namespaces only: the sizes depend on values) ----------------------
    def first_where(self, mask):
        """Per row of a boolean (B, n) mask, the column indices with True first, in order
        (a stable sort), as (B, n) indices, and the count of True entries."""
        return np.argsort(~mask, axis=1, kind="stable"), mask.sum(1)

    def take(self, a, index, axis: int = 1):
        """a's entries at the (constant) ``index`` along ``axis``, in row-major memory (NumPy's
        ``a[:, index]`` leaves the batch innermost, and every later operation that mixes it
        with row-major arrays runs at a third of the speed)."""
        return a.take(index, axis=axis)

    def take_along(self, a, index, axis):
        return np.take_along_axis(a, index, axis)

    def take_columns(self, M, index):
        """M[b][:, index[b]] for every element b: M (B or 1, r, c), index (B, k) → (B, r, k)
        (one advanced index over the batch and columns: 6× ``take_along``'s speed)."""
        batch = np.arange(index.shape[0])[:, None]
        return M[batch if M.shape[0] > 1 else 0 * batch, :, index].swapaxes(1, 2)

    def put_along(self, n, index, values):
        """A (B, n) array of zeros with ``values`` (B, k) at columns ``index`` (B, k)."""
        out = np.zeros((values.shape[0], n))
        np.put_along_axis(out, index, values, 1)
        return out

    # control flow ---------------------------------------------------------------------
    def maybe_all(self, a) -> bool:
        """Whether every entry of a boolean array is true; False when that cannot be known
        without running (a traced JAX value), so callers then take the general branch."""
        return bool(self.to_numpy(a).all())

    def maybe_any(self, a, unknown: bool = True) -> bool:
        """Whether any entry of a boolean array is true; ``unknown`` when that cannot be
        known without running (a traced JAX value)."""
        return bool(self.to_numpy(a).any())

    def loop(self, step, done, state, max_iter: int):
        """Apply ``step`` until ``done(state)`` holds for every element (or max_iter)."""
        for _ in range(max_iter):
            if bool(np.all(self.to_numpy(done(state)))):
                break
            state = step(state)
        return state

    def unrolled_loop(self, step, done, state, max_iter: int):
        """As ``loop``, written so that autodiff can follow the iterations."""
        return self.loop(step, done, state, max_iter)


class TorchArrays(NumpyArrays):
    """PyTorch on any device; the solve is torch's batched LU (CUDA's when on a GPU)."""

    name = "torch"

    def __init__(self) -> None:
        import torch
        self.xp = self.torch = torch
        self.float64 = torch.float64

    def constant(self, a, like=None):
        device = None if like is None else like.device
        return self.torch.as_tensor(np.array(a, dtype=np.float64), device=device)

    def index(self, a, like=None):
        device = None if like is None else like.device
        return self.torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)

    def zeros(self, shape, like=None):
        return self.torch.zeros(shape, dtype=self.float64,
                                device=None if like is None else like.device)

    def full(self, shape, value, like):
        return self.torch.full(shape, value, dtype=self.float64, device=like.device)

    def eye(self, n, like=None):
        return self.torch.eye(n, dtype=self.float64,
                              device=None if like is None else like.device)

    def to_numpy(self, a):
        return a.detach().cpu().numpy()

    def contiguous(self, a):
        return a.contiguous()

    def where(self, condition, a, b):
        like = a if self.torch.is_tensor(a) else b if self.torch.is_tensor(b) else condition
        return self.torch.where(condition, self._t(a, like), self._t(b, like))

    def _t(self, a, like):
        return a if self.torch.is_tensor(a) else self.torch.as_tensor(
            a, dtype=self.float64, device=like.device)

    def maximum(self, a, b):
        return self.torch.maximum(a, self._t(b, a))

    def minimum(self, a, b):
        return self.torch.minimum(a, self._t(b, a))

    def cat(self, arrays, axis):
        return self.torch.cat(arrays, dim=axis)

    def _max(self, a, axis):
        return self.torch.amax(a, axis)           # (a tensor's max(axis) also gives indices)

    def _min(self, a, axis):
        return self.torch.amin(a, axis)

    def broadcast(self, a, shape):
        return a.expand(shape)

    def weighted_gram(self, X, w):
        return _weighted_gram(X, w)

    def add_diagonal(self, M, v, corner=None):
        out = self._batched(M, v).clone(memory_format=self.torch.contiguous_format)
        out.diagonal(dim1=-2, dim2=-1).add_(v)     # on a fresh copy: autograd follows it
        if corner is not None:
            q = corner.shape[-1]
            out[..., out.shape[-1] - q:, out.shape[-1] - q:] += corner
        return out

    def first_where(self, mask):
        return self.torch.argsort((~mask).to(self.torch.int8), dim=1, stable=True), mask.sum(1)

    def take(self, a, index, axis: int = 1):
        if isinstance(index, np.ndarray):           # a constant index: on a's device once
            index = _device_index(index.tobytes(), index.dtype.str, index.shape,
                                  str(a.device))
        return a[(slice(None),) * axis + (index,)]

    def take_along(self, a, index, axis):
        return self.torch.take_along_dim(a, index, axis)

    def take_columns(self, M, index):
        batch = self.torch.arange(index.shape[0], device=index.device)[:, None]
        return M[batch if M.shape[0] > 1 else 0 * batch, :, index].transpose(1, 2)

    def put_along(self, n, index, values):
        return self.zeros((values.shape[0], n), values).scatter(1, index, values)

    def factor(self, K):
        lu, pivots, _ = self.torch.linalg.lu_factor_ex(K)
        return lu, pivots

    def factor_definite(self, K):
        L, info = self.torch.linalg.cholesky_ex(K)
        return self.factor(K) if bool((info != 0).any()) else Cholesky(L)

    def solve(self, factors, rhs, transpose: bool = False):
        if isinstance(factors, Cholesky):
            # two triangular solves: half the time of cholesky_solve on small batches
            L, triangular = factors.L, self.torch.linalg.solve_triangular
            return triangular(L.mT, triangular(L, rhs[..., None], upper=False), upper=True)[..., 0]
        return self.torch.linalg.lu_solve(*factors, rhs[..., None], adjoint=transpose)[..., 0]

    def pivots_ok(self, factors, tol: float = 1e-12):
        d = self.torch.diagonal(factors[0], dim1=-2, dim2=-1).abs()
        if d.shape[-1] == 0:
            return self.torch.ones(d.shape[:-1], dtype=bool, device=d.device)
        return d.amin(-1) > tol * d.amax(-1).clamp(min=1e-300)

    def spd_inverse(self, P, tol: float = 1e-10):
        torch = self.torch
        L, info = torch.linalg.cholesky_ex(P)
        d = torch.diagonal(L, dim1=-2, dim2=-1) ** 2
        ok = info == 0
        if d.shape[-1]:
            ok = ok & (d.amin(-1) > tol * d.amax(-1).clamp(min=1e-300))
        if not bool(ok.all()):                   # the caller takes the general branch
            return torch.zeros_like(P), ok
        return torch.cholesky_inverse(L), ok


class JaxArrays(NumpyArrays):
    """JAX, jit- and vmap-compatible. Callers run it inside ``jax.enable_x64(True)`` (the
    layer does), so that its arrays are float64 without changing the user's defaults."""

    name = "jax"

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp
        self.jax, self.xp = jax, jnp
        self.float64 = jnp.float64

    def constant(self, a, like=None):
        return self.xp.asarray(np.asarray(a, dtype=np.float64))

    def contiguous(self, a):
        return a

    def to_numpy(self, a):
        return np.asarray(a)

    def add_diagonal(self, M, v, corner=None):
        size = M.shape[-1]
        k = self.xp.arange(size)
        out = self._batched(M, v).at[..., k, k].add(v)
        if corner is not None:
            q = corner.shape[-1]
            out = out.at[..., size - q:, size - q:].add(corner)
        return out

    def factor(self, K):
        return self.jax.scipy.linalg.lu_factor(K)

    def solve(self, factors, rhs, transpose: bool = False):
        lu, piv = factors
        solve = functools.partial(self.jax.scipy.linalg.lu_solve, trans=int(transpose))
        if lu.shape[0] == 1 and rhs.shape[0] != 1:       # one factorization serves all
            return self.jax.vmap(solve, in_axes=(None, 0))((lu[0], piv[0]), rhs)
        for _ in range(lu.ndim - 2):          # lu_solve takes one matrix: map the batch
            solve = self.jax.vmap(solve, in_axes=((0, 0), 0))
        return solve((lu, piv), rhs)

    def pivots_ok(self, factors, tol: float = 1e-12):
        return _pivots_ok(self.xp, factors[0], tol)

    def maybe_any(self, a, unknown: bool = True) -> bool:
        if isinstance(a, self.jax.core.Tracer):
            return unknown
        return bool(np.asarray(a).any())

    def maybe_all(self, a) -> bool:
        if isinstance(a, self.jax.core.Tracer):
            return False
        return bool(np.asarray(a).all())

    def spd_inverse(self, P, tol: float = 1e-10):
        xp = self.xp
        L = xp.linalg.cholesky(P)                      # NaN where P is not definite
        d = xp.diagonal(L, axis1=-2, axis2=-1) ** 2
        ok = xp.all(xp.isfinite(L), axis=(-2, -1))
        if d.shape[-1]:
            ok = ok & (d.min(-1) > tol * xp.maximum(d.max(-1), 1e-300))
        eye = xp.broadcast_to(xp.eye(P.shape[-1]), P.shape)
        return self.jax.scipy.linalg.cho_solve((L, True), eye), ok

    def loop(self, step, done, state, max_iter: int):
        lax = self.jax.lax

        def going(carry):
            k, state = carry
            return (k < max_iter) & ~self.xp.all(done(state))

        return lax.while_loop(going, lambda carry: (carry[0] + 1, step(carry[1])),
                              (0, state))[1]

    def unrolled_loop(self, step, done, state, max_iter: int):
        return self.jax.lax.fori_loop(0, max_iter, lambda _, s: step(s), state)


class HybridArrays(NumpyArrays):
    """NumPy arrays, factored and solved by PyTorch's batched LU (and NumPy's batched
    Cholesky for definite systems, solved by PyTorch's triangular solves): on the CPU the
    fastest combination (NumPy's per-operation overhead is a fraction of PyTorch's, and
    PyTorch factors a whole batch in one call where SciPy loops in Python)."""

    name = "hybrid"

    def __init__(self) -> None:
        super().__init__()
        self.torch = namespace("torch")

    def _tensor(self, a):
        """A tensor sharing a's memory where it can (a copy if a is read-only)."""
        return self.torch.torch.from_numpy(np.require(a, np.float64, ["C", "W"]))

    def _plain(self):
        """PyTorch calls on plain tensors even inside a torch.func transform (a layer's
        forward mode runs its host solve there)."""
        return self.torch.torch._C._DisableFuncTorch()

    def factor(self, K):
        compiled = self._compiled_lu(K)
        if compiled is not None:
            return compiled
        B, k = K.shape[0], K.shape[-1]

        def join(first, second):
            """(LU, pivots) of the two halves, the LU column-major as LAPACK left it
            (``lu_solve`` copies a row-major one)."""
            cat = self.torch.torch.cat
            return cat([first[0].mT, second[0].mT]).mT, cat([first[1], second[1]])

        with self._plain():
            return in_halves(lambda K: self.torch.factor(self._tensor(K)), (K,), B * k ** 3 / 3,
                             join)

    def factor_definite(self, K):
        """Compiled loops for small systems; else NumPy's batched Cholesky (faster than
        PyTorch's on the CPU), else LU."""
        compiled = self._compiled_cholesky(K)
        if compiled is not None:
            return compiled
        B, k = K.shape[0], K.shape[-1]
        try:
            L = in_halves(np.linalg.cholesky, (K,), B * k ** 3 / 6, _concatenate)
        except np.linalg.LinAlgError:
            return self.factor(K)
        return Cholesky(self._tensor(L))

    def solve(self, factors, rhs, transpose: bool = False):
        if isinstance(factors, CompiledLU) or (isinstance(factors, Cholesky)
                                               and isinstance(factors.L, np.ndarray)):
            return super().solve(factors, rhs, transpose)        # compiled loops' factors
        with self._plain():
            return self.torch.solve(factors, self._tensor(rhs), transpose).numpy()

    def pivots_ok(self, factors, tol: float = 1e-12):
        """Read through NumPy (a view of the factor's memory): a third of PyTorch's time
        on small batches."""
        if isinstance(factors, CompiledLU):
            return super().pivots_ok(factors, tol)
        with self._plain():
            return _pivots_ok(np, factors[0].numpy(), tol)

    def spd_inverse(self, P, tol: float = 1e-10):
        with self._plain():
            inverse, ok = self.torch.spd_inverse(self._tensor(P), tol)
            return inverse.numpy(), ok.numpy()


@functools.lru_cache(maxsize=4096)
def _device_index(data: bytes, dtype: str, shape: tuple, device: str):
    """A constant NumPy index as a PyTorch tensor on ``device``, made once: indexing with
    the NumPy array itself copies it to the device on every call (the bound space's row and
    column sets, the column classes' gathers)."""
    import torch
    return torch.as_tensor(np.frombuffer(data, dtype).reshape(shape).copy(), device=device)


def _pivots_ok(xp, lu, tol: float):
    """Per element: whether the factor's diagonal (LU's pivots, or Cholesky's) is all
    nonzero relative to its largest entry."""
    d = xp.abs(xp.diagonal(lu, axis1=-2, axis2=-1))
    if d.shape[-1] == 0:
        return xp.ones(d.shape[:-1], dtype=bool)
    return d.min(-1) > tol * xp.maximum(d.max(-1), 1e-300)


def _weighted_gram(X, w):
    return (X * w[:, None, :]) @ X.mT


def _concatenate(a, b):
    return np.concatenate([a, b])


@functools.cache
def namespace(name: str) -> NumpyArrays:
    """The array namespace called ``name``: "numpy", "torch", "jax" or "hybrid" (NumPy
    with PyTorch's batched LU)."""
    kinds = {"numpy": NumpyArrays, "torch": TorchArrays, "jax": JaxArrays,
             "hybrid": HybridArrays}
    if name not in kinds:
        raise ValueError(f"unknown array namespace {name!r}; expected one of {sorted(kinds)}")
    return kinds[name]()


def fastest_cpu() -> NumpyArrays:
    """"hybrid" when PyTorch is installed (NumPy's arithmetic, PyTorch's batched LU), plain
    NumPy otherwise."""
    try:
        return namespace("hybrid")
    except ImportError:                  # pragma: no cover - torch is an optional extra
        return namespace("numpy")
