"""DCP/DPP verdicts, shapes and values on a generated corpus agree with CVXPY's twins."""
from collections import Counter

import cvxpy as cp
import numpy as np
import pytest

import diffdsl as dd
from cvxpy_twin import Twin, cvxpy_verdicts, diffdsl_verdicts, same_value
from domains import in_domain
from expression_corpus import Corpus

SEEDS = range(600)          # 5 expressions per seed: 3,000 expressions
PER_SEED = 5


def corpus():
    for seed in SEEDS:
        c = Corpus(seed)
        for _ in range(PER_SEED):
            yield c, c.expression()


@pytest.fixture(scope="module")
def cases():
    return list(corpus())


def test_corpus_is_large_and_varied(cases):
    assert len(cases) >= 2000
    kinds = Counter(e.curvature for _, e in cases)
    for curvature in dd.Curvature:
        assert kinds[curvature] >= 50, kinds
    dcp_not_dpp = sum(e.is_dcp() and not e.is_dpp() for _, e in cases)
    assert dcp_not_dpp >= 100
    atoms = {type(node).__name__ for _, e in cases for node in dd.analysis.walk(e)}
    for name in ["Abs", "Pos", "Neg", "Power", "Exp", "Log", "Log1p", "Entr", "Logistic",
                 "Huber", "KLDiv", "RelEntr", "Maximum", "Minimum", "Max", "Min", "Norm1",
                 "NormInf", "Pnorm", "SumSquares", "QuadForm", "QuadOverLin", "SumLargest",
                 "SumSmallest", "LogSumExp", "GeoMean", "LambdaMax", "LambdaMin", "LogDet",
                 "SigmaMax", "NormNuc", "Index", "Transpose", "Reshape", "Sum", "Cumsum",
                 "DiagVec", "DiagMat", "Trace", "HStack", "VStack", "Kron", "MatMul",
                 "Multiply", "DivExpression"]:
        assert name in atoms, name


def test_verdicts_agree_with_cvxpy(cases):
    mismatches = []
    for _, e in cases:
        ours, theirs = diffdsl_verdicts(e), cvxpy_verdicts(Twin().expr(e))
        diff = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
        if diff:
            mismatches.append(f"{e}: {diff}")
    assert not mismatches, "\n".join(mismatches[:20])


def test_values_agree_with_cvxpy(cases):
    compared, mismatches = 0, []
    for c, e in cases:
        twin = Twin()
        ce = twin.expr(e)
        c.randomize_values()
        for leaf in c.all_leaves:
            if leaf.id in twin.leaves:
                twin.leaves[leaf.id].value = leaf.value
        if not in_domain(e):
            continue
        with np.errstate(all="ignore"):
            ours, theirs = e.value, ce.value
        compared += 1
        if not same_value(ours, theirs):
            mismatches.append(f"{e}: {ours} vs {theirs}")
    assert compared >= 1000
    assert not mismatches, "\n".join(mismatches[:20])


def test_problem_verdicts_agree_with_cvxpy(cases):
    """Objectives and every constraint kind built from the corpus's scalar expressions."""
    checked, mismatches = 0, []
    for c, e in cases:
        if e.shape != ():
            continue
        x = c.variables[()][0]
        problems = [
            dd.Problem(dd.Minimize(e)), dd.Problem(dd.Maximize(e)),
            dd.Problem(dd.Minimize(x), [e <= x]), dd.Problem(dd.Minimize(x), [e >= 1]),
            dd.Problem(dd.Minimize(x), [e == x]),
            dd.Problem(dd.Minimize(x), [dd.SOC(e, dd.hstack([x, x]))]),
        ]
        for prob in problems:
            twin = Twin().problem(prob)
            ours = (prob.is_dcp(), prob.is_dpp())
            theirs = (twin.is_dcp(), twin.is_dpp())
            checked += 1
            if ours != theirs:
                mismatches.append(f"{prob}: ours {ours}, CVXPY {theirs}")
    assert checked >= 1000
    assert not mismatches, "\n".join(mismatches[:20])


def test_sound_where_cvxpy_is_not():
    """CVXPY calls trace(X[::-1]) nonnegative for PSD X; it is not (here −4)."""
    X = dd.Variable((2, 2), PSD=True)
    e = dd.trace(X[::-1])
    X.value = np.array([[1.0, -2.0], [-2.0, 5.0]])
    assert e.value == pytest.approx(-4.0)
    assert not e.is_nonneg()
    assert dd.trace(X).is_nonneg()
    cvx_X = cp.Variable((2, 2), PSD=True)
    assert cp.trace(cvx_X).is_nonneg()
