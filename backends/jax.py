"""``JaxLayer``: a compiled problem as a JAX function that composes with ``jax.jit``,
``jax.vmap``, ``jax.grad``, ``jax.jvp``, ``jax.jacfwd`` and ``jax.jacrev``.

    layer = JaxLayer(problem, parameters=[A, b], variables=[x])
    x_star, = layer(A_array, b_array)               # leading batch dimension optional

How each transformation is served:

- θ → (P, c, A, b) and (x, y) → outputs are index gathers and scatter-adds in JAX.
- The solve is one ``jax.pure_callback`` with ``vmap_method="broadcast_all"``: a vmapped
  call reaches the host as one batched solve, not B callbacks.
- The solution map is a ``jax.custom_jvp``. Its JVP rule is, at the solution,
  dz = −M⁻¹ g(dP, dc, dA, db) with M = [[P, AᵀD], [−A, I − D]] (``diffdsl.diff.hsde``):
  g and the products with M are written in JAX, and the solve is a
  ``jax.lax.custom_linear_solve`` whose ``solve`` and ``transpose_solve`` call back to the
  host's factorization. JAX transposes that rule for reverse mode (grad, jacrev): the
  transpose solve is the same factorization used with Mᵀ.
- Factorizations are cached on the host (by the bytes of each element's data and
  solution, LRU), so jacfwd/jacrev's many solves on one solution factor it once.

Computations on the host are float64; outputs come back in the input dtype (float32
unless ``jax_enable_x64`` is set).

With ``solver="native"`` there is no callback: ``diffdsl.solvers.ipm`` runs as JAX code
(float64 inside ``jax.enable_x64``), jitted, vmappable and on any JAX device; its implicit
derivative is a ``custom_jvp`` whose solve is a ``lax.custom_linear_solve`` with the batch's
LU, and ``rule="unrolled"`` differentiates its fixed-length iteration instead.
"""
from __future__ import annotations

import collections
import hashlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from diffdsl.cones import projections
from diffdsl.diff.hsde import SolutionDerivative
from diffdsl.fastpaths import ArrayOps
from diffdsl.diff.threads import single_threaded_blas
from diffdsl.errors import DegenerateDerivativeWarning
from diffdsl.solvers import SolverError, ipm
from diffdsl.solvers.arrays import namespace

from ._core import BLOCKS, LayerCore, Linear

CACHE_SIZE = 256


def _sparse_apply(linear: Linear, X):
    """M @ each row of X (..., k) → (..., rows of M), by gather and scatter-add."""
    rows, cols, vals = (jnp.asarray(a) for a in (linear.rows, linear.cols, linear.vals))
    out = jnp.zeros(X.shape[:-1] + (linear.shape[0],), X.dtype)
    return out.at[..., rows].add(vals.astype(X.dtype) * X[..., cols])


class _DerivativeCache:
    """Host-side LRU of factored derivative systems, keyed by each element's arrays."""

    def __init__(self, core: LayerCore, size: int = CACHE_SIZE) -> None:
        self.core, self.size = core, size
        self.entries: collections.OrderedDict = collections.OrderedDict()

    def get(self, P, c, A, b, x, y, s) -> SolutionDerivative:
        digest = hashlib.blake2b(digest_size=16)
        for a in (P, c, A, b, x, y, s):
            digest.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        key = digest.digest()
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        prog = self.core.compiled.program
        d = SolutionDerivative(prog.P, P, prog.A, A, b, c, x, y, s, prog.cones)
        self.entries[key] = d
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return d


def _warn_flagged(derivatives) -> None:
    """A DegenerateDerivativeWarning listing the elements whose derivative is flagged."""
    flagged = [(i, d.flags()) for i, d in enumerate(derivatives) if d is not None and d.flags()]
    if flagged:
        shown = "; ".join(f"element {i}: {', '.join(f)}" for i, f in flagged[:5])
        warnings.warn(f"derivatives of {len(flagged)} element(s) are not reliable — {shown}",
                      DegenerateDerivativeWarning, stacklevel=2)


def _failed(codes) -> bool:
    """Whether a concrete (not traced) status array has an element that was not solved."""
    return not isinstance(codes, jax.core.Tracer) and bool(np.any(np.asarray(codes) > 1))


def _flat(a, count: int) -> np.ndarray:
    """(..., k) → (count, k) in float64 (count = the product of the leading dimensions)."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(count, a.shape[-1])


class JaxLayer:
    """A differentiable JAX function θ ↦ (variables..., duals...).

    Arguments as for ``TorchLayer``: ``problem`` (DPP), ``parameters`` (all, in call order),
    ``variables`` to return, ``duals`` (constraints whose duals follow the variables),
    ``solver``, ``rule`` (implicit rules only: JAX's reverse mode is the transpose of the
    forward rule), ``proximal``, ``refine`` (Newton-polish solutions; default: yes except
    with solver="native") and
    solver options. ``on_failure``: "raise" (the SolverError surfaces from the callback;
    under jit as the message of JAX's runtime error) or "nan" (failed elements come back
    NaN with zero derivatives). ``return_status=True`` appends the per element status codes
    (indices into ``list(diffdsl.SolveStatus)``, 0 = optimal) as an int32 array.
    """

    def __init__(self, problem, parameters, variables, duals=(), solver: str = "clarabel",
                 rule=None, refine: bool | None = None, on_failure: str = "raise",
                 return_status: bool = False, proximal: float | None = None, **opts) -> None:
        self.core = LayerCore(problem, parameters, variables, duals, solver=solver, rule=rule,
                              refine=refine, on_failure=on_failure, proximal=proximal, **opts)
        self.return_status = return_status
        self.native = self.core.compiled.adapter.name == "native"     # named, or by "auto"
        if self.core.compiled.rule.name not in ("implicit", "unrolled"):
            raise ValueError("JaxLayer differentiates by the implicit rule (or 'unrolled' with "
                             "solver='native'): JAX derives reverse mode from forward mode; "
                             f"got {self.core.compiled.rule}")
        self.cache = _DerivativeCache(self.core)
        self._layout_D()
        self._solution_map = self._build_solution_map()
        self._native_map = self._build_native_map() if self.native else None

    @property
    def compiled(self):
        return self.core.compiled

    # host callbacks --------------------------------------------------------------------
    def _layout_D(self) -> None:
        """Where each entry of the flattened blocks of D = DΠ_K*(y − s) sits in the matrix."""
        rows, cols, offset = [], [], 0
        for kind, size, _ in projections.blocks(self.core.compiled.program.cones):
            index = offset + np.arange(size)
            if kind in ("zero", "nonneg"):
                rows.append(index), cols.append(index)
            else:
                r, c = np.meshgrid(index, index, indexing="ij")
                rows.append(r.reshape(-1)), cols.append(c.reshape(-1))
            offset += size
        empty = np.zeros(0, np.int64)
        self.D_rows = np.concatenate(rows) if rows else empty
        self.D_cols = np.concatenate(cols) if cols else empty

    def _host_solve(self, dtype, theta, P, c, A, b):
        """(x, y, s, status code) per element; failed elements are NaN (on_failure="nan")."""
        lead = theta.shape[:-1]
        count = int(np.prod(lead, dtype=int))
        solution = self.core.solve(*(_flat(a, count) for a in (theta, P, c, A, b)))
        codes = self.core.status_codes(solution).astype(np.float64)[:, None]
        return tuple(v.reshape(lead + v.shape[-1:]).astype(dtype)
                     for v in (solution.x, solution.y, solution.s, codes))

    def _elements(self, P, c, A, b, x, y, s):
        """The factored derivative of every element (None for a failed, NaN, element)."""
        count = int(np.prod(x.shape[:-1], dtype=int))
        arrays = [_flat(a, count) for a in (P, c, A, b, x, y, s)]
        with single_threaded_blas():
            return [self.cache.get(*(a[i] for a in arrays))
                    if np.all(np.isfinite(arrays[4][i])) else None for i in range(count)]

    def _host_linearize(self, dtype, P, c, A, b, x, y, s):
        """At every element: the refined point (NaN when failed), the same point with zeros
        for failed elements (where the JVP is linearized: their tangents are zero), and D's
        blocks, flattened."""
        lead, n, m = x.shape[:-1], x.shape[-1], y.shape[-1]
        ds = self._elements(P, c, A, b, x, y, s)
        _warn_flagged(ds)
        size = self.D_rows.size
        point = np.array([np.concatenate([d.x, d.y, d.s]) if d is not None
                          else np.full(n + 2 * m, np.nan) for d in ds]).reshape(len(ds), -1)
        D = np.array([np.concatenate([p.reshape(-1) for p in d.system.D_blocks.parts]
                                     or [np.zeros(0)]) if d is not None else np.zeros(size)
                      for d in ds]).reshape(len(ds), size)
        safe = np.nan_to_num(point, nan=0.0)
        out = [point[:, :n], point[:, n:n + m], point[:, n + m:], safe[:, :n],
               safe[:, n:n + m], D]
        return tuple(v.reshape(lead + v.shape[-1:]).astype(dtype) for v in out)

    def _host_system_solve(self, transpose, dtype, P, c, A, b, x, y, s, rhs):
        lead = rhs.shape[:-1]
        ds = self._elements(P, c, A, b, x, y, s)
        r = _flat(rhs, len(ds))
        with single_threaded_blas():
            out = np.array([d.system.solve(r[i], transpose=transpose) if d is not None
                            else np.zeros(r.shape[1]) for i, d in enumerate(ds)])
        return out.reshape(lead + out.shape[-1:]).astype(dtype)

    # the custom_jvp solution map -------------------------------------------------------
    def _build_solution_map(self):
        core, n, m = self.core, self.core.n, self.core.m
        prog = core.compiled.program
        Ar, Ac = jnp.asarray(prog.A.indices), jnp.asarray(prog.A.columns)
        Pr, Pc = jnp.asarray(prog.P.indices), jnp.asarray(prog.P.columns)
        off = jnp.asarray(prog.P.indices != prog.P.columns)
        Dr, Dc = jnp.asarray(self.D_rows), jnp.asarray(self.D_cols)

        def scatter(size, idx, vals):
            return jnp.zeros(vals.shape[:-1] + (size,), vals.dtype).at[..., idx].add(vals)

        def P_mul(Pv, v):      # symmetric P from its upper pattern
            return (scatter(n, Pr, Pv * v[..., Pc])
                    + scatter(n, Pc, jnp.where(off, Pv, 0) * v[..., Pr]))

        def A_mul(Av, v):
            return scatter(m, Ar, Av * v[..., Ac])

        def AT_mul(Av, w):
            return scatter(n, Ac, Av * w[..., Ar])

        def D_mul(Dv, v):
            return scatter(m, Dr, Dv * v[..., Dc])

        @jax.custom_jvp
        def solution_map(theta, P, c, A, b):
            """(x, y, s, status code as a float) at every element."""
            dtype = theta.dtype
            lead = theta.shape[:-1]
            out = tuple(jax.ShapeDtypeStruct(lead + (k,), dtype) for k in (n, m, m, 1))
            return jax.pure_callback(lambda *a: self._host_solve(dtype, *a), out,
                                     theta, P, c, A, b, vmap_method="broadcast_all")

        @solution_map.defjvp
        def solution_map_jvp(primals, tangents):
            theta, P, c, A, b = primals
            _, dP, dc, dA, db = tangents
            dtype, lead = theta.dtype, theta.shape[:-1]
            x0, y0, s0, codes = solution_map(theta, P, c, A, b)
            out = tuple(jax.ShapeDtypeStruct(lead + (k,), dtype)
                        for k in (n, m, m, n, m, self.D_rows.size))
            x, y, s, x_lin, y_lin, Dv = jax.pure_callback(
                lambda *a: self._host_linearize(dtype, *a), out, P, c, A, b, x0, y0, s0,
                vmap_method="broadcast_all")
            point = (P, c, A, b, x0, y0, s0)

            def matvec(v):
                vx, vy = v[..., :n], v[..., n:]
                Dvy = D_mul(Dv, vy)
                return jnp.concatenate([P_mul(P, vx) + AT_mul(A, Dvy),
                                        -A_mul(A, vx) + vy - Dvy], axis=-1)

            def host_solve(transpose):
                def solve(_, rhs):
                    spec = jax.ShapeDtypeStruct(rhs.shape, dtype)
                    return jax.pure_callback(
                        lambda *a: self._host_system_solve(transpose, dtype, *a), spec,
                        *point, rhs, vmap_method="broadcast_all")
                return solve

            g = jnp.concatenate([P_mul(dP, x_lin) + AT_mul(dA, y_lin) + dc,
                                 -A_mul(dA, x_lin) + db], axis=-1)
            dz = jax.lax.custom_linear_solve(matvec, -g, host_solve(False),
                                             transpose_solve=host_solve(True))
            dz_y = dz[..., n:]
            dy = D_mul(Dv, dz_y)
            return (x, y, s, codes), (dz[..., :n], dy, dy - dz_y, jnp.zeros_like(codes))

        return solution_map

    # solver="native": the interior-point method in JAX itself (jit, vmap, GPU) ------------
    def _build_native_map(self):
        """Dense (P, c, A, b) ↦ (x, y, status code) by ``diffdsl.solvers.ipm`` in JAX. The
        implicit rule is a ``custom_jvp`` whose tangent solves M dz = −g with
        ``lax.custom_linear_solve`` (the batch's LU of M; JAX transposes it for reverse
        mode); the unrolled rule lets JAX differentiate the fixed-length iteration."""
        layout, ops = self.core.native, namespace("jax")

        def codes_of(status):
            return jnp.asarray(layout.codes)[status.astype(jnp.int32)]

        def row_space(P, A):
            """With a constant, definite P (known before tracing): the row space."""
            if layout.unrolled or not layout.constant_definite_P:
                return None
            return ipm.RowSpace(ops.spd_inverse(P)[0], A)

        limits = dict(tol=layout.tol, max_iter=layout.max_iter)
        if layout.unrolled:
            def unrolled(P, c, A, b):
                x, y, s, status, _, _ = ipm.interior_point(
                    ops, ipm.Cones.of(ops, layout.cones), P, c, A, b, **limits, unrolled=True)
                return x, y, s, codes_of(status)
            return jax.jit(unrolled)

        def polished(P, c, A, b):
            """(x, y, s, codes) at the polished points, and the derivative factored there."""
            bounds = None
            if layout.constant_bounds:                # known before tracing
                n = P.shape[-1]
                bounds = ipm.BoundSpace(ops, P[:, jnp.arange(n), jnp.arange(n)], A,
                                        layout.bounds, layout.cones.zero)
            x, y, s, status, _, d = ipm.solve_polished(
                ops, ipm.Cones.of(ops, layout.cones), P, c, A, b, **limits,
                rows=row_space(P, A), bounds=bounds)
            return (x, y, s, codes_of(status)), d

        @jax.custom_jvp
        def native_map(P, c, A, b):
            return polished(P, c, A, b)[0]

        @native_map.defjvp
        def native_map_jvp(primals, tangents):
            P, c, A, b = primals
            (x, y, s, codes), d = polished(P, c, A, b)   # the polish's factorization serves
            ok = (codes <= 1)[:, None]
            dP, dc, dA, db = tangents
            n = x.shape[-1]
            g = jnp.concatenate([ipm._mv(dP, x) + ipm._mv_t(dA, y) + dc,
                                 -ipm._mv(dA, x) + db], axis=-1)
            dz = jax.lax.custom_linear_solve(
                d.matvec, jnp.where(ok, -g, 0.0),
                lambda _, r: d.solve(r), transpose_solve=lambda _, r: d.solve(r, True))
            dv = dz[:, n:]
            dx, dy = jnp.where(ok, dz[:, :n], 0.0), jnp.where(ok, d.D(dv), 0.0)
            return (x, y, s, codes), (dx, dy, dy - jnp.where(ok, dv, 0.0),
                                      jnp.zeros(codes.shape, jax.dtypes.float0))

        return jax.jit(native_map)        # compiled once per shape, also for eager calls

    def _native_call(self, theta, data):
        """Dense data from the value blocks, the native map in float64, failures handled."""
        core, layout = self.core, self.core.native
        if not isinstance(theta, jax.core.Tracer):
            core.check_values(np.asarray(theta, dtype=np.float64))
        B, n, m = theta.shape[0], layout.n, layout.m
        with jax.enable_x64(True):
            # P and A stay (1, ·, ·) when θ does not move them: the method shares them
            Pv, c, Av, b = (t.astype(jnp.float64)[:1] if core.constant[k] and k in ("P", "A")
                            else jnp.broadcast_to(t.astype(jnp.float64), (B, t.shape[-1]))
                            for k, t in zip(BLOCKS, data, strict=True))
            P = jnp.zeros((len(Pv), n * n)).at[:, layout.P_index].add(
                Pv[:, layout.P_take]).reshape(-1, n, n)
            A = jnp.zeros((len(Av), m * n)).at[:, layout.A_index].add(Av).reshape(-1, m, n)
            x, y, _, codes = self._native_map(P, c, A, b)
            failed = (codes > 1)[:, None]
            x, y = jnp.where(failed, jnp.nan, x), jnp.where(failed, jnp.nan, y)
        if (core.on_failure == "raise" and core.compiled.auto_choice is None
                and _failed(codes)):
            raise SolverError(layout.failure_message(np.asarray(codes)))
        dtype = theta.dtype
        return x.astype(dtype), y.astype(dtype), codes[:, None].astype(dtype)

    # the layer -------------------------------------------------------------------------
    def __call__(self, *params):
        core = self.core
        params = [jnp.asarray(p) for p in params]
        core.check_dtypes([np.dtype(p.dtype).kind for p in params])
        batch = core.batch_size([p.shape for p in params])
        B = batch or 1
        dtype = jnp.result_type(*params, jnp.float32) if params else jnp.float32
        columns = [jnp.ones((B, 1), dtype)]
        for p, (_, size, _) in zip(params, core.parameter_layout(), strict=True):
            columns.append(jnp.broadcast_to(p.astype(dtype).reshape(-1, size), (B, size)))
        theta = jnp.concatenate(columns, axis=1)
        if core.fast_path is not None:           # a closed form, differentiated by JAX
            y = core.fast_path.solve(_sparse_apply(core.fast_map, theta), ArrayOps(jnp))
            o = core.outputs[0]
            outputs = [y.reshape((B,) + o.shape)]
            if self.return_status:
                outputs.append(jnp.zeros(B, jnp.int32))
            return tuple(out if batch is not None else out[0] for out in outputs)
        data = [_sparse_apply(core.maps[k], theta) for k in BLOCKS]
        if self.native:
            x, y, codes = self._native_call(theta, data)
            if core.compiled.auto_choice is not None and _failed(codes):
                # solver="auto": the host path, where CompiledProblem solves the elements
                # the native method could not with Clarabel (not under jit: see the docs)
                x, y, _, codes = self._solution_map(theta, *data)
        else:
            x, y, _, codes = self._solution_map(theta, *data)
        outputs = [x[:, o.offset:o.offset + o.size].reshape((B,) + o.shape)
                   for o in core.outputs]
        for group in core.dual_groups:
            parts = tuple(_sparse_apply(o.linear, y).reshape((B,) + o.shape) for o in group)
            outputs.append(parts[0] if len(parts) == 1 else parts)
        if self.return_status:
            outputs.append(jax.lax.stop_gradient(codes[..., 0]).astype(jnp.int32))
        return tuple(jax.tree_util.tree_map(lambda o: o if batch is not None else o[0], out)
                     for out in outputs)

    def __repr__(self) -> str:
        return self.core.describe("JaxLayer")
