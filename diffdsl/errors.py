"""Typed errors raised by diffdsl. Each names what was wrong and what was expected."""
from __future__ import annotations


class DiffdslError(Exception):
    """Base class of every error diffdsl raises on purpose."""


class ShapeError(DiffdslError, ValueError):
    """Operands whose shapes do not fit the operation."""


class ParameterValueError(DiffdslError, ValueError):
    """A value assigned to a Parameter (or Variable) that violates its shape or attributes."""


class DomainError(DiffdslError, ValueError):
    """A constant subexpression (constants and parameter values) evaluates outside its
    atom's domain, e.g. log of a nonpositive value."""


class DCPError(DiffdslError):
    """A problem that does not follow the disciplined convex programming rules.

    Attributes: ``expression`` (the smallest offending subexpression), ``curvature`` (its
    curvature, or that of the offending argument), ``rule`` (the rule it breaks, in words),
    ``rewrite`` (a suggested rewrite, or None).
    """

    kind = "DCP"

    def __init__(self, expression, curvature, rule: str, rewrite: str | None = None,
                 where: str | None = None):
        self.expression = expression
        self.curvature = curvature
        self.rule = rule
        self.rewrite = rewrite
        self.where = where
        lines = [f"Problem does not follow {self.kind} rules."]
        if where:
            lines.append(f"  in:         {where}")
        lines.append(f"  culprit:    {expression}")
        lines.append(f"  curvature:  {getattr(curvature, 'value', curvature)}")
        lines.append(f"  rule:       {rule}")
        if rewrite:
            lines.append(f"  rewrite:    {rewrite}")
        super().__init__("\n".join(lines))


class DPPError(DCPError):
    """A DCP problem whose data would not be affine in its parameters (DPP rules broken)."""

    kind = "DPP"


class DiffdslWarning(UserWarning):
    """Base class of every warning diffdsl issues."""


class NonUniqueSolutionWarning(DiffdslWarning):
    """The problem's solution need not be unique, so its derivative depends on which
    solution the solver returns. Compile with ``proximal=ρ`` to make it unique."""


class DegenerateDerivativeWarning(DiffdslWarning):
    """A derivative was requested where the solution map is not (reliably) differentiable:
    strict complementarity fails, the backward system is singular or ill-conditioned, or the
    solution did not converge. The flagged elements are listed on the solution."""
