"""Random feasible, bounded DCP problems over the atom list (built from the expression corpus).

Each problem: minimize a convex (or maximize a concave) expression plus 0.1·Σ‖v‖² over its
variables v (strictly convex, so the solution is unique), subject to constraints built from
further corpus expressions and made feasible at a random point x₀ in every atom's domain:
g(x) ≤ g(x₀) + 1 for convex g, h(x) ≥ h(x₀) − 1 for concave h, a(x) == a(x₀) for affine a,
and a box |v| ≤ 100 on every variable.
"""
from __future__ import annotations

import numpy as np

import diffdsl as dd
from domains import in_domain
from expression_corpus import Corpus


def finite(expr) -> bool:
    """Every subexpression has a finite value (none sits on a domain boundary)."""
    from diffdsl.analysis import walk
    for node in walk(expr):
        v = node.value
        if v is None or not np.all(np.isfinite(v)):
            return False
    return True


def random_problems(seeds=range(400)):
    """(seed, problem, corpus) for every seed that produced a problem."""
    for seed in seeds:
        made = random_problem(seed)
        if made is not None:
            yield (seed, *made)


def random_problem(seed: int, max_depth: int = 3):
    """A (problem, corpus) pair, or None when no feasible instance came out of this seed."""
    c = Corpus(seed, max_depth=max_depth)
    rng = c.rng
    pieces = [c.expression() for _ in range(3)]
    pieces = [e for e in pieces if e.is_dcp() and e.variables()]
    objective = next((e for e in pieces if e.size == 1 or True), None)
    if objective is None:
        return None
    c.randomize_values()
    if not all(in_domain(e) and finite(e) for e in pieces):
        return None
    f = dd.sum(objective) if objective.size > 1 else objective
    leaves = {v.id: v for e in pieces for v in e.variables()}
    regularizer = 0.1 * sum(dd.sum_squares(v) for v in leaves.values())
    if f.is_convex():
        objective_term = dd.Minimize(f + regularizer)
    else:
        objective_term = dd.Maximize(f - regularizer)
    constraints = []
    for g in pieces[1:]:
        at_x0 = np.asarray(g.value, dtype=float)
        if g.is_affine() and rng.random() < 0.4:
            constraints.append(g == at_x0)
        elif g.is_convex():
            constraints.append(g <= at_x0 + 1.0)
        else:
            constraints.append(g >= at_x0 - 1.0)
    for v in leaves.values():
        constraints += [v <= 100.0, v >= -100.0]
    return dd.Problem(objective_term, constraints), c
