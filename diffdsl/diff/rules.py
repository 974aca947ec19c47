"""Derivative rules — the "derivative rule" contract, recorded on every solution.

* ``implicit``: the exact derivative of the solution map by implicit differentiation of the
  embedding's residual map (default). With ``reg=ρ > 0`` the system matrix M is replaced by
  M + ρI: a damped surrogate that trades accuracy (an O(ρ) bias) for stability when M is
  singular or ill-conditioned (degenerate or non-unique solutions).
* ``perturbed``: LPGD-style (reverse mode only). For a cotangent g on x it re-solves the
  cone program at the perturbed cost c + τ g and returns the finite difference of the
  Lagrangian's data gradient, (∇ℒ(x_τ, y_τ) − ∇ℒ(x, y)) / τ. Informative for LPs, whose true
  gradient is zero almost everywhere; it converges to the implicit derivative as τ → 0 where
  that exists.
* ``unrolled``: autodiff through the native solver's iterations (``solver="native"`` in
  ``TorchLayer`` and ``JaxLayer``, whose frameworks do the differentiating). It is the
  derivative of the algorithm as run, which approaches the implicit one as the iterations
  converge; it costs memory for every iteration. ``Solution`` (NumPy) has no autodiff and
  refuses it.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class DerivativeRule:
    name: str = "implicit"
    reg: float = 0.0
    tau: float = 1e-2

    def __post_init__(self) -> None:
        if self.name not in ("implicit", "perturbed", "unrolled"):
            raise ValueError(f"unknown derivative rule {self.name!r}; expected 'implicit', "
                             "'perturbed' or 'unrolled'")
        if self.reg < 0 or not np.isfinite(self.reg):
            raise ValueError(f"reg must be a finite number ≥ 0, got {self.reg}")
        if not self.tau > 0:
            raise ValueError(f"tau must be positive, got {self.tau}")

    def __str__(self) -> str:
        if self.name == "unrolled":
            return ("unrolled: autodiff through the native solver's iterations, the "
                    "derivative of the algorithm as run (TorchLayer/JaxLayer)")
        if self.name == "perturbed":
            return (f"perturbed (LPGD, τ = {self.tau:g}): the difference quotient of a re-solve "
                    "at cost c + τ·g; reverse mode only")
        if self.reg:
            return (f"implicit with damping ρ = {self.reg:g}: solves with M + ρI, a "
                    "surrogate with an O(ρ) bias")
        return ("implicit: the exact derivative of the solution map (at a kink of a cone "
                "projection, one element of its Clarke Jacobian, and the element is flagged)")


def as_rule(rule) -> DerivativeRule:
    if isinstance(rule, DerivativeRule):
        return rule
    if rule is None:
        return DerivativeRule()
    if isinstance(rule, str):
        return DerivativeRule(rule)
    raise TypeError("rule must be 'implicit', 'perturbed', 'unrolled' or a DerivativeRule, "
                    f"got {rule!r}")


def perturbed_vjp(adapter, options, data, x, y, gx, tau: float, P_pattern, A_pattern):
    """LPGD data cotangent for one instance (see the module docstring)."""
    from ..solvers.base import ConeProgramData
    from .hsde import DataCotangent
    perturbed = ConeProgramData(data.P, data.c + tau * gx, data.A, data.b, data.cones)
    raw = adapter.solve(perturbed, options)
    if not raw.status.is_optimal:
        raise ValueError(f"the perturbed re-solve returned {raw.status.value}; use a smaller "
                         "tau")
    xt, yt = raw.x, raw.y
    rows, cols = A_pattern.indices, A_pattern.columns
    grad_A = (yt[rows] * xt[cols] - y[rows] * x[cols]) / tau
    pr, pc = P_pattern.indices, P_pattern.columns
    weight = np.where(pr == pc, 0.5, 1.0)       # ∂(½ vᵀPv)/∂P_ij for an upper entry
    grad_P = weight * (xt[pr] * xt[pc] - x[pr] * x[pc]) / tau
    return DataCotangent(grad_P, (xt - x) / tau, grad_A, -(yt - y) / tau)
