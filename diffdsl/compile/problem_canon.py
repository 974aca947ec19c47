"""Canonicalize a whole problem: variable attributes, constraints, objective.

Quadratic atoms in the objective go to P when the solver accepts P: the objective is split
into a weighted sum of terms (through +, −, scaling by data, division by constants), and a
term with a ``quadratic_form`` (sum_squares, quad_form, quad_over_lin with a constant
denominator, square, sums of squares weighted by constants: ``weighted_squares``) becomes
weight · ½ rᵀ Q r on its argument r when r is a variable block, expanded on the block when
r is a block shifted by data (``expand_shifted_square``), and on a fresh variable r = its
argument otherwise. Every other term is canonicalized with cones. Maximize f is solved as
minimize −f.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..atoms.affine_arithmetic import AddExpression, DivExpression, Multiply, NegExpression
from ..atoms.affine_structural import Sum
from ..atoms.powers import Power
from ..atoms.quadratic import Huber, SumSquares
from ..errors import DomainError
from ..expressions.expression import Expression
from .context import CanonContext
from .program import ParamConeProgram, build_program
from .tensor import AffineTensor


def canonicalize_problem(problem, parameters, quadratic_objective: bool,
                         parameters_as_constants: bool = False) -> ParamConeProgram:
    variables = problem.variables()
    ctx = CanonContext(parameters, variables, quadratic_objective, parameters_as_constants)
    for v in variables:
        variable_attributes(ctx, v)
    for c in problem.constraints:
        c.canonicalize(ctx)
    sign = 1.0 if problem.objective.sense == "minimize" else -1.0
    objective = objective_rows(ctx, problem.objective.expr, ctx.constant([sign]))
    return build_program(ctx, objective)


def variable_attributes(ctx: CanonContext, v) -> None:
    """nonneg, nonpos, symmetric, PSD, NSD as constraints on the variable's block."""
    x, a = ctx.canon(v), v.attributes
    if a.get("nonneg"):
        ctx.nonneg(x)
    if a.get("nonpos"):
        ctx.nonneg(-x)
    if a.get("symmetric") or a.get("PSD") or a.get("NSD"):
        ctx.symmetric(x, v.shape[0])
    if a.get("PSD"):
        ctx.psd(x, v.shape[0])
    if a.get("NSD"):
        ctx.psd(-x, v.shape[0])


def objective_rows(ctx: CanonContext, expr: Expression, weight: AffineTensor) -> AffineTensor:
    """One row: weight · expr, with quadratic terms moved to P where possible."""
    if ctx.quadratic_objective and expr.size == 1:
        if isinstance(expr, AddExpression):
            total = AffineTensor.zeros(1, ctx.P)
            for arg in expr.args:
                total = total + objective_rows(ctx, arg, weight)
            return total
        if isinstance(expr, NegExpression):
            return objective_rows(ctx, expr.args[0], -weight)
        if isinstance(expr, Multiply):
            for data, term in (expr.args, expr.args[::-1]):
                if not data.variables() and data.size == 1 and term.size == 1:
                    scaled = weight.rowwise_product(ctx.canon(data).select([0]))
                    return objective_rows(ctx, term, scaled)
        if isinstance(expr, DivExpression) and expr.args[1].size == 1:
            denominator = ctx.canon(expr.args[1])
            if denominator.is_variable_free() and denominator.is_parameter_free():
                value = denominator.constant_value()
                if np.any(value == 0):
                    raise DomainError(f"{expr}: division by a zero constant")
                return objective_rows(ctx, expr.args[0], weight.scale(1.0 / value))
        quadratic = quadratic_form(ctx, expr)
        if quadratic is not None:
            rows, Q, rest = quadratic
            offset = variable_block(rows)
            if offset is None:
                shifted = expand_shifted_square(ctx, rows, Q, weight)
                if shifted is not None:
                    return weight.rowwise_product(rest + shifted)
                r = ctx.new_variable(rows.rows)   # a fresh block r = rows carries it
                ctx.equal(r, rows)
                offset = ctx.n_vars - rows.rows
            ctx.add_quadratic(offset, Q, weight)
            return weight.rowwise_product(rest)
    rows = ctx.canon(expr)
    return weight.rowwise_product(rows.linear(np.ones((1, rows.rows))))


def expand_shifted_square(ctx: CanonContext, rows: AffineTensor, Q, weight: AffineTensor):
    """For rows = x_block + v (a variable block shifted by a variable-free v, e.g. y − θ in
    a projection ‖y − θ‖²): the quadratic goes on the block itself, expanded as

        ½(x + v)ᵀQ(x + v) = ½xᵀQx + (Qv)ᵀx + ½vᵀQv,

    so no variable r = x + v and no equality rows are added (the program keeps a definite P
    on x, which the native solver and the derivative's LDLᵀ need). Returns the terms
    beyond ½xᵀQx as one affine row, or None where rows are not of that form, or where the
    expansion would not be affine in θ (the weight and v both depending on parameters,
    which DPP rules out). ½vᵀQv is recorded as a quadratic offset of the objective when v
    depends on parameters (then the weight is a constant)."""
    keys_var = rows.keys // rows.n_params
    columns = rows.matrix.tocsc()
    variable = AffineTensor(columns[:, keys_var > 0].tocsr(), rows.keys[keys_var > 0],
                            rows.n_params)
    shift = AffineTensor(columns[:, keys_var == 0].tocsr(), rows.keys[keys_var == 0],
                         rows.n_params)
    offset = variable_block(variable)
    if offset is None or not (shift.is_parameter_free() or weight.is_parameter_free()):
        return None
    ctx.add_quadratic(offset, Q, weight)
    cross = variable.rowwise_product(shift.linear(Q)).linear(np.ones((1, rows.rows)))
    if shift.is_parameter_free():
        v = shift.constant_value()
        return cross + AffineTensor.constant([0.5 * v @ (Q @ v)], ctx.P)
    ctx.add_quadratic_offset(Q * float(weight.constant_value()[0]), shift)
    return cross


def weighted_squares(ctx: CanonContext, product: Multiply):
    """Σ w ∘ r² for constant weights w ≥ 0 (``sum(multiply(w, square(r)))``, weighted least
    squares): (rows r, Q = 2 diag(w), no rest), or None for any other product."""
    for data, term in (product.args, product.args[::-1]):
        if (isinstance(term, Power) and term.p == 2 and not data.variables()
                and not data.parameters() and data.size in (1, term.size)
                and product.shape == term.shape):
            w = np.broadcast_to(np.asarray(data.value, float), term.shape).reshape(-1)
            if np.all(w >= 0):
                return (ctx.canon(term.args[0]), sp.diags(2.0 * w, format="csr"),
                        AffineTensor.zeros(1, ctx.P))
    return None


def variable_block(rows: AffineTensor) -> int | None:
    """The offset k when rows are exactly x[k], x[k+1], … (a variable block), else None."""
    M = rows.matrix
    if M.nnz != rows.rows or not np.array_equal(M.indptr, np.arange(rows.rows + 1)) \
            or not np.all(M.data == 1.0):
        return None
    keys = rows.keys[M.indices]
    var, par = keys // rows.n_params, keys % rows.n_params
    if np.any(par) or var[0] == 0 or not np.array_equal(var, var[0] + np.arange(rows.rows)):
        return None
    return int(var[0]) - 1


def quadratic_form(ctx: CanonContext, expr: Expression):
    """(rows r, Q, rest) with expr = ½ rᵀ Q r + rest (rest: one affine row), or None."""
    if isinstance(expr, Sum) and expr.axis is None and isinstance(expr.args[0], Power) \
            and expr.args[0].p == 2:
        expr = SumSquares(expr.args[0].args[0])
    if isinstance(expr, Sum) and expr.axis is None and isinstance(expr.args[0], Huber):
        expr = expr.args[0]                   # Σ huber(x_i): huber's form sums its entries
    if isinstance(expr, Sum) and expr.axis is None and isinstance(expr.args[0], Multiply):
        weighted = weighted_squares(ctx, expr.args[0])
        if weighted is not None:
            return weighted
    if not expr.variables() or not hasattr(expr, "quadratic_form"):
        return None
    form = expr.quadratic_form([ctx.canon(a) for a in expr.args], ctx)
    if form is None or len(form) == 3:
        return form
    return (*form, AffineTensor.zeros(1, ctx.P))
