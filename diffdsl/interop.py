"""``from_cvxpy``: an equivalent diffdsl problem from a CVXPY problem, so that existing CVXPY
(and cvxpylayers) models migrate in one line. CVXPY is imported only when this is called."""
from __future__ import annotations

import functools
import operator
import numpy as np

from . import atoms as A
from .constraints import PSD, SOC, Equality, ExpCone, Inequality, PowCone3D
from .expressions.leaves import Constant, Parameter, Variable
from .problem import Maximize, Minimize, Problem


class Translator:
    """CVXPY → diffdsl, memoizing leaves so shared leaves stay shared."""

    def __init__(self) -> None:
        self.leaves: dict[int, object] = {}   # CVXPY leaf id → diffdsl leaf
        self.pairs: dict = {}                 # CVXPY leaf → diffdsl leaf

    def leaf(self, e):
        import cvxpy as cp
        if isinstance(e, cp.Constant):
            return Constant(e.value)
        if e.id in self.leaves:
            return self.leaves[e.id]
        else:
            attrs = {k: True for k in ("nonneg", "nonpos", "symmetric", "PSD", "NSD")
                     if e.attributes.get(k) is True}
            unsupported = [k for k, v in e.attributes.items()
                           if v is not False and v is not None and k not in attrs
                           and k not in ("sparsity",)]
            if unsupported:
                raise TypeError(f"{e.name()}: CVXPY attribute(s) {unsupported} have no diffdsl "
                                "counterpart")
            if isinstance(e, cp.Parameter):
                attrs.pop("NSD", None)
                out = Parameter(e.shape, e.name(), value=e.value, **attrs)
            else:
                out = Variable(e.shape, e.name(), **attrs)
            self.pairs[e] = out
        self.leaves[e.id] = out
        return out

    def expr(self, e):  # noqa: C901 - one dispatch table
        if not e.args:
            return self.leaf(e)
        a = [self.expr(arg) for arg in e.args]
        name = type(e).__name__
        data = e.get_data() or []
        axis = getattr(e, "axis", None)
        keep = getattr(e, "keepdims", False)
        table = {
            "AddExpression": lambda: functools.reduce(operator.add, a),
            "NegExpression": lambda: -a[0],
            "MulExpression": lambda: A.matmul(a[0], a[1]),
            "multiply": lambda: A.multiply(a[0], a[1]),
            "DivExpression": lambda: A.divide(a[0], a[1]),
            "index": lambda: a[0][e.key],
            "special_index": lambda: a[0][data[0]],
            "transpose": lambda: a[0].T,
            "reshape": lambda: A.reshape(a[0], data[0], data[1]),
            "broadcast_to": lambda: A.multiply(np.ones(e.shape), a[0]),
            "Promote": lambda: A.multiply(np.ones(e.shape), a[0]),
            "Sum": lambda: A.sum(a[0], axis, keep),
            "cumsum": lambda: A.cumsum(a[0], data[0]),
            "diag_vec": lambda: A.diag(a[0], data[0]),
            "diag_mat": lambda: A.diag(a[0], data[0]),
            "trace": lambda: A.trace(a[0]),
            "Hstack": lambda: A.hstack(a),
            "Vstack": lambda: A.vstack(a),
            "kron": lambda: A.kron(a[0], a[1]),
            "abs": lambda: A.abs(a[0]),
            "maximum": lambda: A.maximum(*a),
            "minimum": lambda: A.minimum(*a),
            "max": lambda: A.max(a[0], axis, keep),
            "min": lambda: A.min(a[0], axis, keep),
            "norm1": lambda: A.norm1(a[0], axis, keep),
            "norm_inf": lambda: A.norm_inf(a[0], axis, keep),
            "Pnorm": lambda: A.pnorm(a[0], float(e.p), axis, keep),
            "PnormApprox": lambda: A.pnorm(a[0], float(e.p), axis, keep),
            "Power": lambda: A.power(a[0], float(e.p.value)),
            "PowerApprox": lambda: A.power(a[0], float(e.p.value)),
            "power": lambda: A.power(a[0], float(e.p.value)),
            "exp": lambda: A.exp(a[0]),
            "log": lambda: A.log(a[0]),
            "log1p": lambda: A.log1p(a[0]),
            "entr": lambda: A.entr(a[0]),
            "logistic": lambda: A.logistic(a[0]),
            "huber": lambda: A.huber(a[0], float(e.M.value)),
            "kl_div": lambda: A.kl_div(a[0], a[1]),
            "rel_entr": lambda: A.rel_entr(a[0], a[1]),
            "log_sum_exp": lambda: A.log_sum_exp(a[0], axis, keep),
            "geo_mean": lambda: A.geo_mean(a[0], _weights(e)),
            "GeoMeanApprox": lambda: A.geo_mean(a[0], _weights(e)),
            "lambda_max": lambda: A.lambda_max(a[0]),
            "log_det": lambda: A.log_det(a[0]),
            "sigma_max": lambda: A.sigma_max(a[0]),
            "normNuc": lambda: A.normNuc(a[0]),
            "QuadForm": lambda: A.quad_form(a[0], a[1]),
            "quad_over_lin": lambda: (A.sum_squares(a[0], axis, keep)
                                      if _is_one(e.args[1]) else A.quad_over_lin(a[0], a[1])),
            "sum_largest": lambda: A.sum_largest(a[0], int(data[0])),
        }
        if name not in table:
            raise NotImplementedError(f"CVXPY atom {name} has no diffdsl translation")
        return table[name]()

    def constraint(self, c):
        name = type(c).__name__
        a = [self.expr(arg) for arg in c.args]
        if name == "Equality":
            return Equality(a[0], a[1])
        if name == "Zero":
            return Equality(a[0], 0)
        if name == "Inequality":
            return Inequality(a[0], a[1])
        if name == "NonNeg":
            return Inequality(0, a[0])
        if name == "NonPos":
            return Inequality(a[0], 0)
        if name == "PSD":
            return PSD(a[0], 0)
        if name == "SOC":
            return SOC(a[0], a[1], axis=c.axis)
        if name == "ExpCone":
            return ExpCone(*a)
        if name == "PowCone3D":
            return PowCone3D(a[0], a[1], a[2], c.alpha.value)
        raise NotImplementedError(f"CVXPY constraint {name} has no diffdsl translation")


def _is_one(e) -> bool:
    import cvxpy as cp
    return isinstance(e, cp.Constant) and e.size == 1 and float(e.value) == 1.0


def _weights(e) -> np.ndarray:
    """CVXPY drops trailing zero weights; restore one weight per entry."""
    w = np.zeros(e.args[0].size)
    p = np.asarray(e.p, dtype=float).reshape(-1)
    w[:p.size] = p
    return w


def from_cvxpy(problem):
    """An equivalent diffdsl ``Problem`` and the {CVXPY leaf: diffdsl leaf} mapping of its
    variables and parameters."""
    t = Translator()
    sense = Minimize if type(problem.objective).__name__ == "Minimize" else Maximize
    objective = sense(t.expr(problem.objective.expr))
    constraints = [t.constraint(c) for c in problem.constraints]
    return Problem(objective, constraints), t.pairs
