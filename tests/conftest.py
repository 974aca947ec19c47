import os
import sys
import warnings

import pytest

# The helper modules (expression corpus, CVXPY twin) live next to the tests.
sys.path.insert(0, os.path.dirname(__file__))

# CVXPY prints deprecation chatter for some constructions; it is not ours to fix.
warnings.filterwarnings("ignore", module="cvxpy")


@pytest.fixture
def one_by_one_references(monkeypatch):
    """References that are Clarabel's answers refined and differentiated one element at a
    time (``diff.hsde``): the batch polish of another solver's answers
    (``native.polish_batch``) runs the native solver's own derivative code, so it is off,
    for programs with a definite P and with a slack substitution alike. (Modules whose
    references are these use it for every test: ``pytestmark``.)"""
    from diffdsl.solvers import native
    monkeypatch.setattr(native, "POLISH_SIZE", 0)
    monkeypatch.setattr(native, "POLISH_SUBSTITUTED_SIZE", 0)
