"""Solver adapters: NumPy/SciPy data in, ``RawSolution`` out. One small module per solver."""
from . import clarabel_adapter, ecos_adapter, native, osqp_adapter, scs_adapter  # noqa: F401
from .base import (ADAPTERS, ConeProgramData, RawSolution, SolverAdapter, SolverError,
                   SolveStatus, get_adapter)

__all__ = ["ADAPTERS", "ConeProgramData", "RawSolution", "SolverAdapter", "SolverError",
           "SolveStatus", "get_adapter"]
