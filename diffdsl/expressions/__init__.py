"""Expression trees: leaves, the sign/curvature lattice and shape rules."""
from .dcp import Curvature, Monotonicity, Sign
from .expression import Expression
from .leaves import Constant, Parameter, Variable

__all__ = ["Expression", "Variable", "Parameter", "Constant", "Sign", "Curvature", "Monotonicity"]
