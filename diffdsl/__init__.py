"""diffdsl: a disciplined convex modeling language whose problems compile into
differentiable solution maps θ ↦ z*.

Switching from CVXPY is a change of import: ``import diffdsl as cp``.
"""
from importlib.metadata import PackageNotFoundError, version

from .analysis import curvature_report, find_culprit
from .atoms import *  # noqa: F403  (the public atom functions, listed in atoms.__all__)
from .atoms import __all__ as _atom_names
from .constraints import PSD, SOC, Constraint, Equality, ExpCone, Inequality, PowCone3D
from .compiled import CompiledProblem, Solution
from .diff.rules import DerivativeRule
from .errors import (DCPError, DegenerateDerivativeWarning, DiffdslError, DiffdslWarning,
                     DomainError, DPPError, NonUniqueSolutionWarning, ParameterValueError,
                     ShapeError)
from .interop import from_cvxpy
from .solvers import SolverError, SolveStatus
from .expressions import Constant, Curvature, Expression, Monotonicity, Parameter, Sign, Variable
from .problem import Maximize, Minimize, Objective, Problem

try:
    __version__ = version("diffdsl")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "Variable", "Parameter", "Constant", "Expression", "Sign", "Curvature", "Monotonicity",
    "Minimize", "Maximize", "Objective", "Problem",
    "Constraint", "Equality", "Inequality", "PSD", "SOC", "ExpCone", "PowCone3D",
    "DiffdslError", "DCPError", "DPPError", "ParameterValueError", "ShapeError", "DomainError",
    "DiffdslWarning", "NonUniqueSolutionWarning", "DegenerateDerivativeWarning",
    "curvature_report", "find_culprit", "__version__",
    "CompiledProblem", "Solution", "SolveStatus", "SolverError", "from_cvxpy",
    "DerivativeRule",
    *_atom_names,
]
