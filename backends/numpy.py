"""``NumpyLayer``: the compiled map θ ↦ (variables..., duals...) with solve / vjp / jvp /
jacobian on NumPy arrays, for users without a framework.

    layer = NumpyLayer(problem, parameters=[A, b], variables=[x])
    x_star, = layer(A_value, b_value)             # leading batch dimension optional
    result = layer.solve(A_value, b_value)        # outputs plus derivatives
    dA, db = result.vjp(g_x)                      # reverse mode
    dx, = result.jvp(dA_value, None)              # forward mode (None: zero tangent)
    J = result.jacobian()                         # J[i][j]: output i by parameter j

A parameter given unbatched in a batched call gets the batch's summed gradient (the
gradient of the broadcast), as in PyTorch and JAX.
"""
from __future__ import annotations

import numpy as np

from ._core import BLOCKS, LayerCore


class NumpyLayer:
    """Arguments as for ``TorchLayer``: ``problem`` (DPP), ``parameters`` (all, in call
    order), ``variables`` to return, ``duals`` (constraints whose duals follow),
    ``solver``, ``rule``, ``proximal``, ``refine`` (Newton-polish solutions; default: yes
    except with solver="native", which polishes its own points and differentiates there),
    ``warm_start``, ``on_failure`` ("raise" or "nan") and solver options. Statuses are on
    ``result.solution`` (and ``result.status_codes``)."""

    def __init__(self, problem, parameters, variables, duals=(), solver: str = "clarabel",
                 rule=None, refine: bool | None = None, warm_start: bool = False,
                 on_failure: str = "raise", proximal: float | None = None, **opts) -> None:
        self.core = LayerCore(problem, parameters, variables, duals, solver=solver, rule=rule,
                              refine=refine, on_failure=on_failure, proximal=proximal, **opts)
        self.warm_start = warm_start

    def __repr__(self) -> str:
        return self.core.describe("NumpyLayer")

    @property
    def compiled(self):
        return self.core.compiled

    def __call__(self, *params):
        return self.solve(*params).outputs

    def solve(self, *params, **solver_args) -> "LayerResult":
        core = self.core
        raw = [np.asarray(p) for p in params]
        core.check_dtypes([p.dtype.kind for p in raw])
        params = [p.astype(float) for p in raw]
        batch = core.batch_size([p.shape for p in params])
        B = batch or 1
        theta = np.concatenate([np.ones((B, 1))] + [
            np.broadcast_to(p.reshape(-1, size), (B, size))
            for p, (_, size, _) in zip(params, core.parameter_layout(), strict=True)], axis=1)
        if core.fast_path is not None:
            return FastLayerResult(core, theta, [p.shape for p in params], batch)
        data = [core.maps[k].apply(theta) for k in BLOCKS]
        solution = core.solve(theta, *data, warm_start=self.warm_start, **solver_args)
        return LayerResult(core, solution, [p.shape for p in params], batch)


class LayerResult:
    """Outputs of one call and their derivatives (the factorizations are kept)."""

    def __init__(self, core: LayerCore, solution, shapes, batch) -> None:
        self.core, self.solution, self.shapes, self.batch = core, solution, shapes, batch
        self.count = len(solution.status)
        self.outputs = self._outputs(solution.x, solution.y)
        self.status_codes = self._unbatch(core.status_codes(solution))

    def _unbatch(self, a):
        return a if self.batch is not None else a[0]

    def _outputs(self, X, Y) -> tuple:
        B = X.shape[0]
        out = [self._unbatch(X[:, o.offset:o.offset + o.size].reshape((B,) + o.shape))
               for o in self.core.outputs]
        for group in self.core.dual_groups:
            parts = tuple(self._unbatch(o.linear.apply(Y).reshape((B,) + o.shape))
                          for o in group)
            out.append(parts[0] if len(parts) == 1 else parts)
        return tuple(out)

    # reverse mode --------------------------------------------------------------------
    def vjp(self, *cotangents) -> tuple:
        """Gradients with respect to every parameter of Σ⟨cotangent_i, output_i⟩; one
        cotangent per output (None: zero; a tuple for a multi-part dual)."""
        core, B = self.core, self.count
        n_outputs = len(core.outputs) + len(core.dual_groups)
        if len(cotangents) != n_outputs:
            raise ValueError(f"expected {n_outputs} cotangents (one per output), got "
                             f"{len(cotangents)}")
        gx, gy = np.zeros((B, core.n)), np.zeros((B, core.m))
        for o, g in zip(core.outputs, cotangents, strict=False):
            if g is not None:
                gx[:, o.offset:o.offset + o.size] += self._per_element(g, o.shape)
        for group, g in zip(core.dual_groups, cotangents[len(core.outputs):], strict=True):
            if g is None:
                continue
            parts = g if len(group) > 1 else (g,)
            for o, part in zip(group, parts, strict=True):
                gy += o.linear.apply_transpose(self._per_element(part, o.shape))
        data = core.data_vjp(self.solution, gx, gy)
        theta = sum(core.maps[k].apply_transpose(data[k]) for k in BLOCKS)
        return self._split_theta(theta[:, 1:])

    def _per_element(self, g, shape) -> np.ndarray:
        g = np.asarray(g, dtype=float)
        B = self.count
        if self.batch is None or g.shape == tuple(shape):
            return np.broadcast_to(g.reshape(1, -1), (B, g.size))
        return g.reshape(B, -1)

    def _split_theta(self, theta: np.ndarray) -> tuple:
        out = []
        for (offset, size, pshape), given in zip(self.core.parameter_layout(), self.shapes,
                                                 strict=True):
            block = theta[:, offset:offset + size]
            if tuple(given) == pshape:        # unbatched parameter: summed over the batch
                out.append(block.sum(0).reshape(pshape))
            else:
                out.append(block.reshape((-1,) + pshape))
        return tuple(out)

    # forward mode --------------------------------------------------------------------
    def jvp(self, *tangents) -> tuple:
        """Output tangents for one tangent per parameter (None: zero)."""
        core = self.core
        dtheta = self._theta_tangent(tangents)
        data = {k: core.maps[k].apply(dtheta) for k in BLOCKS}
        dx, dy = core.data_jvp(self.solution, data)
        return self._outputs(dx, dy)

    def _theta_tangent(self, tangents) -> np.ndarray:
        """dθ̃ (B, 1 + len θ) from one tangent per parameter (None: zero)."""
        core = self.core
        if len(tangents) != len(core.parameters):
            raise ValueError(f"expected {len(core.parameters)} tangents (one per parameter), "
                             f"got {len(tangents)}")
        dtheta = np.zeros((self.count, 1 + core.n_theta))
        for (offset, size, pshape), t in zip(core.parameter_layout(), tangents, strict=True):
            if t is not None:
                dtheta[:, 1 + offset:1 + offset + size] = self._per_element(t, pshape)
        return dtheta

    def jacobian(self) -> list:
        """``J[i][j]``: d output_i / d parameter_j, shaped output_i.shape + parameter_j.shape
        (with a leading batch dimension when the call was batched; duals with several
        parts give a tuple). One forward-mode solve per parameter entry, all reusing the
        factorization."""
        core = self.core
        columns = []                     # per parameter: list over entries of output tuples
        for j, (_, size, pshape) in enumerate(core.parameter_layout()):
            entries = []
            for k in range(size):
                unit = np.zeros(size)
                unit[k] = 1.0
                tangents = [None] * len(core.parameters)
                tangents[j] = unit.reshape(pshape)
                entries.append(self.jvp(*tangents))
            columns.append((pshape, entries))
        n_outputs = len(core.outputs) + len(core.dual_groups)
        return [[_stack([e[i] for e in entries], pshape)
                 for pshape, entries in columns] for i in range(n_outputs)]


def _stack(per_entry, pshape):
    """Stack tangents (one per parameter entry) into output.shape + parameter.shape."""
    if isinstance(per_entry[0], tuple):
        return tuple(_stack([e[k] for e in per_entry], pshape)
                     for k in range(len(per_entry[0])))
    J = np.stack(per_entry, axis=-1)
    return J.reshape(J.shape[:-1] + tuple(pshape))


class FastLayerResult(LayerResult):
    """Outputs and derivatives of a closed-form solution map (``diffdsl.fastpaths``)."""

    def __init__(self, core: LayerCore, theta: np.ndarray, shapes, batch) -> None:
        from diffdsl.fastpaths import NumpyOps
        self.core, self.shapes, self.batch = core, shapes, batch
        self.solution = None
        fast = core.fast_path
        self.v = core.fast_map.apply(theta)
        self.y = fast.solve(self.v, NumpyOps)
        self.count = len(self.y)
        o = core.outputs[0]
        self.outputs = (self._unbatch(self.y.reshape((-1,) + o.shape)),)
        self.status_codes = self._unbatch(np.zeros(len(self.y), np.int32))

    def vjp(self, *cotangents) -> tuple:
        if len(cotangents) != 1:
            raise ValueError(f"expected 1 cotangent (one per output), got {len(cotangents)}")
        g = np.zeros_like(self.y) if cotangents[0] is None else \
            self._per_element(cotangents[0], self.core.outputs[0].shape)
        dv = self.core.fast_path.jvp(self.v, self.y, g)           # J is symmetric
        return self._split_theta(self.core.fast_map.apply_transpose(dv)[:, 1:])

    def jvp(self, *tangents) -> tuple:
        core = self.core
        dy = core.fast_path.jvp(self.v, self.y, core.fast_map.apply(self._theta_tangent(tangents)))
        return (self._unbatch(dy.reshape((-1,) + core.outputs[0].shape)),)
