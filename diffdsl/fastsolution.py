"""Solutions of a problem solved by a structure fast path (``diffdsl.fastpaths``).

``FastSolution`` has ``Solution``'s interface. The variable's values and every derivative of
them come from the closed form — batched array operations, exact Jacobians — and anything
else (duals and their derivatives, the objective, residuals, certificates) from the cone
solver, which is run on first use and cached.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .fastpaths import NumpyOps
from .solvers.base import SolveStatus


class FastSolution:
    def __init__(self, compiled, theta: np.ndarray, batch: int | None) -> None:
        self.compiled, self.theta = compiled, theta
        self.batched = batch is not None
        self._batch = batch
        self.fast_path = fast = compiled.fast_path
        self.v = fast.point(theta)
        self.y = fast.solve(self.v, NumpyOps)
        self.status = [SolveStatus.OPTIMAL] * theta.shape[1]
        self.rule = compiled.rule
        self.tolerances = {"solver": "closed form"}
        self._general_solution = None

    # the cone solver, for everything the closed form does not give -----------------
    def general(self):
        """The same batch solved by the cone solver and refined to the closed form's
        accuracy (once, on first use)."""
        if self._general_solution is None:
            from .compiled import ProgramValues
            self._general_solution = self.compiled.solve_program(
                ProgramValues.at(self.compiled.program, self.theta), self._batch, refine=True)
        return self._general_solution

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.general(), name)

    # values ----------------------------------------------------------------------------
    def _unbatch(self, stacked):
        return stacked if self.batched else stacked[0]

    def __getitem__(self, variable) -> np.ndarray:
        if variable is not self.fast_path.variable:
            return self.general()[variable]
        return self._unbatch(self.y.reshape((-1,) + variable.shape))

    @property
    def values(self) -> dict:
        return {v: self[v] for v in self.compiled.variables}

    def refine(self) -> "FastSolution":
        return self                                  # closed forms are exact already

    def failures(self) -> list[int]:
        return []

    def raise_failures(self) -> None:
        return None

    def __repr__(self) -> str:
        return (f"FastSolution({len(self.status)} element(s), closed form: "
                f"{self.fast_path.description})")

    # derivatives -----------------------------------------------------------------------
    def _offsets(self):
        from .diff.solution_map import parameter_offsets
        return parameter_offsets(self.compiled)

    def vjp(self, d_variables: dict, d_duals: dict | None = None, **rule) -> dict:
        """Reverse mode, as ``Solution.vjp``; through the closed form's Jacobian (symmetric:
        Jᵀg = Jg) and v = V θ̃."""
        from .diff.solution_map import _per_element
        y = self.fast_path.variable
        if d_duals or rule or any(v is not y for v in d_variables):
            return self.general().vjp(d_variables, d_duals, **rule)
        B = len(self.status)
        g = np.zeros_like(self.y) if y not in d_variables else \
            np.array(_per_element(d_variables[y], y.shape, B, y.name), dtype=float)
        dv = self.fast_path.jvp(self.v, self.y, g)
        dtheta = np.asarray(self.fast_path.V.T @ dv.T).T          # (B, 1 + len θ)
        out = {}
        for p, (offset, size) in self._offsets().items():
            block = dtheta[:, 1 + offset:1 + offset + size].reshape((-1,) + p.shape)
            out[p] = self._unbatch(block)
        return out

    def jvp(self, d_parameters: dict, **rule) -> tuple[dict, Mapping]:
        """Forward mode, as ``Solution.jvp``; dual tangents (from the cone solver) are
        computed only if read."""
        if rule:
            return self.general().jvp(d_parameters, **rule)
        from .diff.solution_map import theta_tangent
        dtheta = theta_tangent(self.compiled, d_parameters, len(self.status))
        dv = np.asarray(self.fast_path.V @ dtheta).T
        dy = self.fast_path.jvp(self.v, self.y, dv)
        y = self.fast_path.variable
        variables = {y: self._unbatch(dy.reshape((-1,) + y.shape))}
        return variables, _LazyDuals(lambda: self.general().jvp(d_parameters)[1])

    def jacobian(self, **rule) -> np.ndarray:
        """d(variable)/d(parameters), as ``Solution.jacobian``."""
        if rule:
            return self.general().jacobian(**rule)
        V = self.fast_path.V.toarray()[:, 1:]                      # (n, len θ)
        J = np.stack([self.fast_path.jvp(self.v, self.y, np.broadcast_to(V[:, k], self.y.shape))
                      for k in range(V.shape[1])], axis=-1)
        return J if self.batched else J[0]

    def derivative_flags(self, i: int = 0, **rule) -> list[str]:
        if self.fast_path.degenerate(self.v[i:i + 1], self.y[i:i + 1])[0]:
            return ["degenerate: the closed form has a kink here (one element of its Clarke "
                    "Jacobian is used)"]
        return []

    def derivative_diagnostics(self, i: int = 0) -> dict:
        flags = self.derivative_flags(i)
        return {"fast_path": self.fast_path.kind, "differentiable": not flags,
                "flags": flags, "backward_residual": 0.0}


class _LazyDuals(Mapping):
    """A mapping computed on first access."""

    def __init__(self, compute) -> None:
        self._compute, self._value = compute, None

    def _get(self) -> dict:
        if self._value is None:
            self._value = self._compute()
        return self._value

    def __getitem__(self, key):
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())
