"""Property-based reliability tests (hypothesis).

1. Random DCP problems from the expression corpus, with parameter values drawn to include
   edge cases — zeros, huge and tiny magnitudes, rank-deficient matrices — never raise
   anything but diffdsl's typed errors; every element is either optimal and passes an
   independent KKT check (residuals, complementarity, cone membership of s and y), or
   carries a non-optimal status; and gradients are finite wherever outputs are.
2. Generated infeasible problems are reported infeasible, generated unbounded ones unbounded.

The number of draws is DIFFDSL_PROPERTY_EXAMPLES (default 400 per property in `make test`;
docs/reliability.md reports a 3,000-draw run).
"""
import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import diffdsl as dd  # noqa: E402
from diffdsl.compiled import CompiledProblem  # noqa: E402

from cone_membership import violations  # noqa: E402
from problem_corpus import random_problem  # noqa: E402

EXAMPLES = int(os.environ.get("DIFFDSL_PROPERTY_EXAMPLES", "400"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
MODES = ["corpus", "zeros", "huge", "tiny", "rank_deficient", "mixed"]
OUTCOMES: dict = {}          # mode → {"draws", "optimal", "nonoptimal", "typed_error", ...}


def edge_value(p, mode: str, rng) -> np.ndarray:
    """A value for parameter p in the given edge-case mode, respecting its attributes."""
    base = np.asarray(p.value, float)
    if mode == "mixed":
        mode = MODES[rng.integers(len(MODES) - 1)]
    if mode == "zeros":
        return np.zeros(p.shape)
    if mode == "huge":
        return base * 1e6
    if mode == "tiny":
        return base * 1e-6
    if mode == "rank_deficient":
        if p.ndim == 2:
            u = rng.normal(size=p.shape[0])
            if p.attributes.get("PSD") or p.is_symmetric():
                return np.outer(u, u)
            return np.outer(u, rng.normal(size=p.shape[1]))
        mask = rng.random(p.shape) < 0.5
        return np.where(mask, 0.0, base)
    return base


def kkt_violation(compiled, sol, i: int = 0) -> float:
    """Largest relative violation of the KKT conditions at element i (independent of the
    solver's own stopping test)."""
    prog = compiled.program
    P_vals, A_vals, b, c = sol.data.element(i)
    A, P = prog.A.matrix(A_vals), prog.P.symmetric_matrix(P_vals)
    x, y, s = sol.x[i], sol.y[i], sol.s[i]
    scale_p = 1.0 + max(np.abs(b).max(initial=0), np.abs(A @ x).max(initial=0),
                        np.abs(s).max(initial=0))
    scale_d = 1.0 + max(np.abs(c).max(initial=0), np.abs(P @ x).max(initial=0),
                        np.abs(A.T @ y).max(initial=0))
    primal = np.abs(A @ x + s - b).max(initial=0) / scale_p
    dual = np.abs(P @ x + A.T @ y + c).max(initial=0) / scale_d
    gap = abs(s @ y) / (1.0 + abs(x @ (P @ x)) + abs(c @ x) + abs(b @ y))
    cones = violations(s, prog.cones, dual=False) / scale_p
    dual_cones = violations(y, prog.cones, dual=True) / scale_d
    return max(primal, dual, gap, cones, dual_cones)


def record(mode: str, key: str) -> None:
    counts = OUTCOMES.setdefault(mode, {})
    counts[key] = counts.get(key, 0) + 1


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(MODES))
def test_random_problems_solve_to_kkt_or_report_a_status(seed, mode):
    built = random_problem(seed)
    if built is None:
        return
    prob, corpus = built
    record(mode, "draws")
    for p in prob.parameters():
        p.value = edge_value(p, mode, corpus.rng)
    try:
        compiled = CompiledProblem(prob, parameters_as_constants=not prob.is_dpp())
        sol = compiled.solve({p: p.value for p in compiled.parameters})
    except dd.DiffdslError as err:
        record(mode, f"typed_error:{type(err).__name__}")   # e.g. a value outside a domain
        return
    status = sol.status[0]
    if status is not dd.SolveStatus.OPTIMAL:
        record(mode, status.value)
        certificate = sol.certificate()            # a reported infeasibility/unboundedness
        assert certificate is None or certificate["verified"] \
            or status is dd.SolveStatus.SOLVER_ERROR, (str(prob), mode)
        return
    record(mode, "optimal")
    assert kkt_violation(compiled, sol) <= 1e-5, (str(prob), mode)
    if compiled.parameters:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dd.DiffdslWarning)
            var = compiled.variables[0]
            grads = sol.vjp({var: np.ones(var.shape)})
        for g in grads.values():
            assert np.all(np.isfinite(g)), (str(prob), mode)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 6), m=st.integers(1, 6),
       solver=st.sampled_from(["clarabel", "scs", "ecos"]))
def test_generated_infeasible_problems_are_detected(seed, n, m, solver):
    """{Gx ≤ h} ∩ {aᵀx ≥ max over that set + 1}: empty by construction (x is boxed)."""
    r = np.random.default_rng(seed)
    G, a = r.normal(size=(m, n)), r.normal(size=n)
    x = dd.Variable(n)
    box = [x <= 1, x >= -1]
    base = dd.Problem(dd.Maximize(a @ x), [G @ x <= np.abs(r.normal(size=m))] + box)
    top = base.solve()
    if base.status != "optimal":
        return
    prob = dd.Problem(dd.Minimize(0), base.constraints + [a @ x >= top + 1.0])
    prob.solve(solver=solver)
    assert prob.status == "infeasible"


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 6), m=st.integers(1, 6),
       solver=st.sampled_from(["clarabel", "scs", "ecos"]))
def test_generated_unbounded_problems_are_detected(seed, n, m, solver):
    """A feasible polyhedron with a recession direction d (Gd ≤ 0) and cᵀd < 0."""
    r = np.random.default_rng(seed)
    d = r.normal(size=n)
    G = r.normal(size=(m, n))
    G -= np.outer(np.maximum(G @ d, 0) / (d @ d) + 0.1, d)   # every row: g·d ≤ −0.1‖d‖² < 0
    x0 = r.normal(size=n)
    c = -d + 0.1 * r.normal(size=n)
    c -= max(0.0, c @ d + 0.5) * d / (d @ d)                  # cᵀd ≤ −0.5 < 0
    x = dd.Variable(n)
    prob = dd.Problem(dd.Minimize(c @ x), [G @ x <= G @ x0 + np.abs(r.normal(size=m))])
    prob.solve(solver=solver)
    assert prob.status == "unbounded"


def teardown_module(module):
    """Print the outcome counts (the figures docs/reliability.md reports)."""
    if OUTCOMES:
        print("\nproperty-test outcomes by parameter mode:")
        for mode, counts in sorted(OUTCOMES.items()):
            print(f"  {mode:<15} {counts}")
