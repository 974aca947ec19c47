"""The four contracts of a compiled problem, stated explicitly (``CompiledProblem.contract()``):

1. the problem — the primal problem as math, and the cone program it compiles to;
2. the solution convention — unique by strict convexity, made unique by a proximal term
   that is part of the model, or checked per solution (a singular derivative system means
   a non-unique solution: the solver's choice, with a ``NonUniqueSolutionWarning``);
3. the derivative rule;
4. the tolerances — the forward solver's, and how the backward pass is solved and checked.

The structural test: the objective ½xᵀPx + cᵀx is strictly convex on the affine set
{A_eq x = b_eq} exactly when H = P + A_eqᵀA_eq is positive definite (P ⪰ 0, so Hv = 0 iff
Pv = 0 and A_eq v = 0). Only the requested variables matter: the solution is reported unique
when every null direction of H leaves them unchanged. H is evaluated at random parameter
values (its rank is generic), and only for problems small enough to eigendecompose. Strict
convexity that lives in cones (entropy, exp, log, powers) is not seen by this test; those
problems, like LPs, are checked per solution.
"""
from __future__ import annotations

import dataclasses

import numpy as np

UNIQUENESS_CHECK_LIMIT = 800       # cone-program variables above which uniqueness is unchecked
NULL_TOL = 1e-9


@dataclasses.dataclass
class Contract:
    problem: str
    program: str
    solution: str
    unique: bool | None            # None: not checked
    rule: str
    forward_tolerances: dict
    backward: str
    #: the forward tolerances of a refined solve (refine=True) where they differ
    refined_tolerances: dict | None = None

    def __str__(self) -> str:
        problem = self.problem.replace("\n", "\n" + " " * 14)
        lines = [
            f"problem:      {problem}",
            f"cone program: {self.program}",
            f"solution:     {self.solution}",
            f"derivative:   {self.rule}",
            f"forward:      {_listed(self.forward_tolerances)}",
        ]
        if self.refined_tolerances:
            lines.append(f"  refined:    {_listed(self.refined_tolerances)}, then Newton "
                         "refinement to ~1e-15; an element it cannot make exact is solved "
                         "again with the tolerances above")
        return "\n".join(lines + [f"backward:     {self.backward}"])


def _listed(options: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in options.items()) or "solver defaults"


def solution_uniqueness(compiled) -> tuple[bool | None, str]:
    """(unique?, the convention in words) for a compiled problem."""
    if compiled.proximal:
        return True, (f"unique: the model includes the proximal term ρ/2·Σ‖v‖² over its "
                      f"variables (ρ = {compiled.proximal:g}), which makes it strictly convex")
    prog = compiled.program
    if prog.n > UNIQUENESS_CHECK_LIMIT:
        return None, PER_SOLUTION
    rng = np.random.default_rng(0)
    theta = np.concatenate([[1.0], rng.normal(size=prog.n_theta)])
    P = prog.P.symmetric_matrix(prog.P.values(theta)).toarray()
    A_eq = prog.A.matrix(prog.A.values(theta)).toarray()[:prog.cones.zero]
    H = P / max(np.abs(P).max(initial=0.0), 1.0) + A_eq.T @ A_eq / max(
        np.abs(A_eq).max(initial=0.0) ** 2, 1.0)
    w, V = np.linalg.eigh(H)
    null = V[:, w <= NULL_TOL * max(w.max(initial=0.0), 1.0)]
    outputs = np.concatenate([np.arange(prog.variable_offsets[v.id],
                                        prog.variable_offsets[v.id] + v.size)
                              for v in compiled.variables] or [np.zeros(0, int)])
    if null.size == 0 or np.abs(null[outputs]).max(initial=0.0) <= 1e-6:
        return True, ("unique: the objective's quadratic part is strictly convex in the "
                      "requested variables on the equality-constrained set")
    return None, PER_SOLUTION


PER_SOLUTION = ("not implied by the problem's structure, so checked per solution when it is "
                "differentiated: the derivative system is nonsingular exactly when the solution "
                "and its multipliers are locally (for a convex problem: globally) unique; where "
                "it is singular, values and derivatives are the solver's choice, flagged and "
                "warned (NonUniqueSolutionWarning); compile with proximal=ρ to add ρ/2·Σ‖v‖² "
                "to the model and make it unique")


def contract_of(compiled) -> Contract:
    from .diff.linear import DENSE_LIMIT, ITERATIVE_THRESHOLD
    unique, words = solution_uniqueness(compiled)
    tolerances = _tolerances(compiled.options)
    refining = compiled.refining_options()
    refined = None if refining is None else {
        k: v for k, v in _tolerances(refining).items() if tolerances.get(k) != v}
    backward = ("implicit differentiation at the solution after Newton refinement of the KKT "
                "point (to ~1e-15 where differentiable); LU of the reduced system (dense up "
                f"to {DENSE_LIMIT} unknowns when ≥5% full, else sparse) with one step of "
                f"iterative refinement, LSMR to 1e-12 above {ITERATIVE_THRESHOLD} unknowns; "
                "per element backward residual and flags in Solution.derivative_diagnostics / "
                "derivative_flags")
    if compiled.adapter.name == "native":
        backward = ("implicit differentiation at the native solver's points after a "
                    "semismooth Newton polish (exact to ~1e-15 where differentiable); the "
                    "whole batch's system factored once by batched dense LU (m × m in row "
                    "space when P is definite); elements with an ambiguous active set or a "
                    "singular system are differentiated one by one (Solution) or by least "
                    "squares and flagged (layers)")
    if compiled.rule.name == "unrolled":
        backward = "autodiff through the native solver's iterations (by the framework)"
    if compiled.rule.name == "perturbed":
        backward = (f"a re-solve at the perturbed cost c + τ·g (τ = {compiled.rule.tau:g}) "
                    "with the forward solver's tolerances")
    if compiled.fast_path is not None:
        words = (f"unique: solved in closed form — {compiled.fast_path.description} (a "
                 "structure fast path; compile with fast_paths=False for the cone solver)")
        unique = True
        backward = ("the closed form's exact Jacobian (at a kink, one element of its Clarke "
                    "Jacobian, flagged)")
        tolerances = {}
    return Contract(problem=str(compiled.problem), program=compiled.program.sizes(),
                    solution=words, unique=unique, rule=str(compiled.rule),
                    forward_tolerances={"solver": "closed form" if compiled.fast_path
                                        else compiled.auto_choice or compiled.adapter.name,
                                        **tolerances},
                    backward=backward, refined_tolerances=None if compiled.fast_path
                    else refined)


def _tolerances(options: dict) -> dict:
    return {k: v for k, v in options.items()
            if any(t in k for t in ("tol", "eps", "max_iter", "abstol", "reltol"))}
