"""Objectives and problems: Minimize, Maximize, Problem (is_dcp, is_dpp, printing)."""
from __future__ import annotations

from .analysis import constraint_error, role_error
from .constraints.constraint import Constraint
from .errors import DCPError, ShapeError
from .expressions.expression import Expression, as_expression


class Objective:
    """Base of Minimize / Maximize: a scalar expression and a sense."""

    sense = "?"
    required_curvature = "affine"

    def __init__(self, expr) -> None:
        self.expr = as_expression(expr)
        if self.expr.size != 1:
            raise ShapeError(f"the objective must be scalar, got shape {self.expr.shape}; "
                             "reduce it with sum(...) or a norm")

    def is_dcp(self, dpp: bool = False) -> bool:
        curvature = self.expr.curvature_in(dpp)
        return curvature.is_convex if self.required_curvature == "convex" else curvature.is_concave

    def __str__(self) -> str:
        return f"{self.sense} {self.expr}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.expr})"


class Minimize(Objective):
    """minimize f(x); DCP when f is convex."""

    sense = "minimize"
    required_curvature = "convex"


class Maximize(Objective):
    """maximize f(x); DCP when f is concave (solved as minimize −f)."""

    sense = "maximize"
    required_curvature = "concave"


class Problem:
    """``Problem(objective, constraints=None)``: minimize or maximize subject to constraints."""

    def __init__(self, objective: Objective, constraints=None) -> None:
        if not isinstance(objective, Objective):
            raise TypeError(f"objective must be Minimize(...) or Maximize(...), got "
                            f"{type(objective).__name__}")
        constraints = list(constraints or [])
        for i, c in enumerate(constraints):
            if not isinstance(c, Constraint):
                hint = (" (a Python bool: did you compare plain numbers?)"
                        if isinstance(c, bool) else "")
                raise TypeError(f"constraint {i} is a {type(c).__name__}, not a constraint{hint}")
        self.objective = objective
        self.constraints = constraints
        self.value = None
        self.status = None
        self._compiled: dict = {}

    def _expressions(self) -> list[Expression]:
        return [self.objective.expr] + [a for c in self.constraints for a in c.args]

    def variables(self) -> list:
        """Distinct Variables, in order of first appearance (objective, then constraints)."""
        return list({id(v): v for e in self._expressions() for v in e.variables()}.values())

    def parameters(self) -> list:
        return list({id(p): p for e in self._expressions() for p in e.parameters()}.values())

    # verdicts ---------------------------------------------------------------
    def first_violation(self, dpp: bool = False) -> DCPError | None:
        """The first DCP (or, with ``dpp=True``, DPP) violation, as an error object."""
        err = role_error(self.objective.expr, self.objective.required_curvature,
                         f"the objective of {self.objective.sense}", dpp)
        if err is not None:
            return err
        for c in self.constraints:
            err = constraint_error(c, dpp)
            if err is not None:
                return err
        return None

    def is_dcp(self, dpp: bool = False) -> bool:
        return self.objective.is_dcp(dpp) and all(c.is_dcp(dpp) for c in self.constraints)

    def is_dpp(self) -> bool:
        """DCP with parameters treated as affine, so problem data are affine in them."""
        return self.is_dcp(dpp=True)

    def check_dcp(self) -> None:
        """Raise DCPError naming the smallest offending subexpression if not DCP."""
        err = self.first_violation(dpp=False)
        if err is not None:
            raise err

    def check_dpp(self) -> None:
        """Raise DCPError if not DCP, else DPPError if not DPP."""
        self.check_dcp()
        err = self.first_violation(dpp=True)
        if err is not None:
            raise err

    # compiling and solving -----------------------------------------------------------
    def compile(self, parameters=None, variables=None, solver: str = "clarabel", **opts):
        """Compile once into a parametric cone program: returns a ``CompiledProblem`` whose
        ``solve`` maps parameter values (batched or not) to a ``Solution``."""
        from .compiled import CompiledProblem
        return CompiledProblem(self, parameters, variables, solver, **opts)

    def solve(self, solver: str | None = None, **opts) -> float:
        """Solve at the parameters' current values, like CVXPY: sets ``Variable.value``,
        ``Constraint.dual_value``, ``value`` and ``status``; returns the optimal value.

        A DPP problem is compiled once per solver and reused on later solves; a DCP problem
        that is not DPP is compiled with its parameters' values as constants.
        """
        from .compiled import CompiledProblem
        self.check_dcp()
        solver = solver or "clarabel"
        dpp = self.is_dpp()
        compiled = self._compiled.get(solver) if dpp else None
        if compiled is None:
            compiled = CompiledProblem(self, solver=solver, parameters_as_constants=not dpp)
            if dpp:
                self._compiled[solver] = compiled
        solution = compiled.solve({p: p.value for p in compiled.parameters}, **opts)
        self.unpack(solution)
        return self.value

    def unpack(self, solution) -> None:
        """Copy a single (unbatched) solution into the problem's variables and constraints."""
        status = solution.status[0]
        self.status = status.value
        self.value = float(solution.value)
        optimal = status.is_optimal
        for v in self.variables():
            v._value = solution[v] if optimal else None
            if optimal and v.ndim == 0:
                v._value = v._value[()]
        for c in self.constraints:
            c.dual_value = solution.dual(c) if optimal else None

    # printing ---------------------------------------------------------------
    def __str__(self) -> str:
        lines = [str(self.objective)]
        for i, c in enumerate(self.constraints):
            lines.append(("subject to " if i == 0 else " " * 11) + str(c))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Problem({self.objective!r}, {len(self.constraints)} constraints)"
