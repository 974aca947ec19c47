import os
import sys
import warnings

# The helper modules (expression corpus, CVXPY twin) live next to the tests.
sys.path.insert(0, os.path.dirname(__file__))

# CVXPY prints deprecation chatter for some constructions; it is not ours to fix.
warnings.filterwarnings("ignore", module="cvxpy")
