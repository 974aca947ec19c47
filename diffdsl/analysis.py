"""Explaining DCP/DPP verdicts: find the smallest offending subexpression, name the rule it
breaks, and suggest a rewrite for common mistakes; print a curvature report.
"""
from __future__ import annotations

from typing import Iterator

from .atoms.affine_arithmetic import (AddExpression, BinaryProduct, DivExpression, MatMul,
                                      Multiply)
from .atoms.affine_structural import Transpose
from .atoms.atom import Atom
from .atoms.norms import NormAtom
from .atoms.powers import Power
from .atoms.quadratic import QuadOverLin, SumSquares
from .constraints.constraint import Comparison, Constraint, meets
from .errors import DCPError, DPPError
from .expressions.dcp import Curvature, arg_keeps_concavity, arg_keeps_convexity
from .expressions.expression import Expression


def find_culprit(expr: Expression, dpp: bool = False) -> Expression | None:
    """The smallest subexpression of unknown curvature whose arguments all have known
    curvature (the place where the composition rule first fails); None if ``expr`` is DCP."""
    if expr.curvature_in(dpp).is_dcp:
        return None
    node = expr
    while True:
        bad = [a for a in node.args if not a.curvature_in(dpp).is_dcp]
        if not bad:
            return node
        node = bad[0]


def explain_node(node: Expression, dpp: bool) -> str:
    """The rule that ``node`` (of unknown curvature, with known-curvature arguments) breaks."""
    if not isinstance(node, Atom):
        return "unknown curvature"
    atom = node.atom_curvature(dpp)
    if atom is Curvature.UNKNOWN:
        return node.why_unknown(dpp) or f"{node.label} is neither convex nor concave here"
    if isinstance(node, AddExpression):
        kinds = ", ".join(f"{a} is {a.curvature_in(dpp).value}" for a in node.args
                          if not a.curvature_in(dpp).is_affine)
        return ("a sum is convex only if every term is convex, and concave only if every "
                f"term is concave; here {kinds}")
    parts = []
    for i, arg in enumerate(node.args):
        curv, mono = arg.curvature_in(dpp), node.monotonicity(i)
        breaks_cvx = atom.is_convex and not arg_keeps_convexity(curv, mono)
        breaks_ccv = atom.is_concave and not arg_keeps_concavity(curv, mono)
        if breaks_cvx or breaks_ccv:
            parts.append(f"argument {i + 1} ({arg}) is {curv.value} and {node.label} is "
                         f"{mono.value} in it")
    shape = "affine" if atom.is_affine else atom.value
    return (f"{node.label} is {shape}; " + "; ".join(parts) + ". DCP composes a convex "
            "function only with affine arguments, convex arguments where it is increasing, or "
            "concave arguments where it is decreasing (a concave function: the mirror image)")


def suggest_rewrite(node: Expression, dpp: bool) -> str | None:
    """A rewrite for common non-DCP/non-DPP patterns at ``node``, or None."""
    sum_of_squares = (SumSquares, QuadOverLin)
    if isinstance(node, Power) and node.p == 0.5 and isinstance(node.args[0], sum_of_squares):
        inner = node.args[0].args[0]
        return f"sqrt(sum_squares(x)) is the Euclidean norm: write norm({inner})"
    if isinstance(node, BinaryProduct):
        x, y = node.args
        if x.variables() and y.variables():
            base_x = x.args[0] if isinstance(x, Transpose) else x
            if base_x is y or str(base_x) == str(y):
                return (f"write square({y}) for an elementwise square" if isinstance(node, Multiply)
                        else f"write sum_squares({y}) for {node}")
            if isinstance(x, MatMul) and x.args[0] is y:
                return f"write quad_form({y}, {x.args[1]}) for {node}"
            return ("a product of two variables is not convex; if one factor is really data, "
                    "make it a Parameter, or reformulate (e.g. with a change of variables)")
        if dpp and x.parameters() and y.parameters() and node.variables():
            names = " · ".join(sorted({p.name for f in (x, y) for p in f.parameters()}))
            return (f"both factors depend on parameters; introduce one Parameter for the "
                    f"product of the parameters ({names}) and set its value before each solve")
        if dpp:
            data = node if not node.variables() else (x if not x.variables() else y)
            return (f"introduce one Parameter for {data} (shape {data.shape}) and set its value "
                    f"to ({data}).value before each solve: a product of parameters, or a "
                    "non-affine function of parameters, may not multiply a variable")
    if isinstance(node, DivExpression) and dpp and node.args[1].parameters():
        return (f"introduce a Parameter r for 1 / ({node.args[1]}), set r.value = 1 / "
                f"({node.args[1]}).value, and write ({node.args[0]}) * r")
    return None


def _square_of_norm(expr: Expression) -> Expression | None:
    for node in walk(expr):
        if isinstance(node, Power) and node.p == 2 and isinstance(node.args[0], NormAtom):
            return node
    return None


def walk(expr: Expression) -> Iterator[Expression]:
    """Every node of the tree, depth first."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.args))


def role_error(expr: Expression, need: str, where: str, dpp: bool) -> DCPError | None:
    """An error if ``expr`` does not have curvature ``need`` ('affine'|'convex'|'concave')."""
    error_cls = DPPError if dpp else DCPError
    curvature = expr.curvature_in(dpp)
    if meets(curvature, need):
        return None
    culprit = find_culprit(expr, dpp)
    if culprit is not None:
        return error_cls(culprit, culprit.curvature_in(dpp), explain_node(culprit, dpp),
                         suggest_rewrite(culprit, dpp), where)
    rewrite = None
    squared = _square_of_norm(expr)
    if squared is not None:
        inner = squared.args[0].args[0]
        rewrite = (f"{squared} is convex, so it can only be bounded above ({squared} <= t); "
                   f"note it equals sum_squares({inner}), which is cheaper to canonicalize")
    elif need == "convex" and curvature is Curvature.CONCAVE:
        rewrite = "maximize a concave objective instead, or move the term to the other side"
    elif need == "concave" and curvature is Curvature.CONVEX:
        rewrite = "minimize a convex objective instead, or move the term to the other side"
    return error_cls(expr, curvature, f"{where} must be {need}, but {expr} is {curvature.value}",
                     rewrite, where)


def constraint_error(constraint: Constraint, dpp: bool) -> DCPError | None:
    if constraint.is_dcp(dpp):
        return None
    for expr, need, role in constraint.requirements():
        err = role_error(expr, need, f"the {role} in constraint `{constraint}`", dpp)
        if err is not None:
            return err
    if isinstance(constraint, Comparison):  # both sides fine alone, not together
        return role_error(constraint.expr, constraint.requirements()[0][1],
                          f"constraint `{constraint}` (as lhs − rhs)", dpp)
    raise AssertionError("a non-DCP constraint without a failing requirement")  # pragma: no cover


def curvature_report(expr: Expression) -> str:
    """A table of every subexpression (as a tree) with its shape, sign, curvature, and
    curvature under DPP (parameters treated as affine)."""
    rows = [("node", "shape", "sign", "curvature", "under DPP")]

    def visit(node: Expression, depth: int) -> None:
        label = node.label if isinstance(node, Atom) else str(node)
        shape = "scalar" if node.ndim == 0 else "×".join(map(str, node.shape))
        rows.append(("  " * depth + label, shape, node.sign.value, node.curvature.value,
                     node.curvature_in(True).value))
        for arg in node.args:
            visit(arg, depth + 1)

    visit(expr, 0)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)
