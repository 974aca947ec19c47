"""Atoms: one module per family, each holding the atoms' declarations (sign, curvature,
monotonicity, domain, value) next to where their canonicalization lives."""
from .affine_arithmetic import divide, matmul, multiply
from .affine_structural import (bmat, cumsum, diag, hstack, kron, reshape, sum, trace,
                                transpose, vec, vstack)
from .exponential import entr, exp, kl_div, log, log1p, log_sum_exp, logistic, rel_entr
from .norms import norm, norm1, norm2, norm_inf, pnorm
from .piecewise_linear import abs, max, maximum, min, minimum, neg, pos, sum_largest, sum_smallest
from .powers import geo_mean, inv_pos, power, sqrt, square
from .quadratic import huber, quad_form, quad_over_lin, sum_squares
from .spectral import lambda_max, lambda_min, log_det, normNuc, sigma_max

__all__ = [
    "multiply", "matmul", "divide", "sum", "cumsum", "diag", "trace", "hstack", "vstack",
    "bmat", "kron", "reshape", "vec", "transpose",
    "abs", "pos", "neg", "maximum", "minimum", "max", "min", "sum_largest", "sum_smallest",
    "power", "square", "sqrt", "inv_pos", "geo_mean",
    "exp", "log", "log1p", "entr", "logistic", "kl_div", "rel_entr", "log_sum_exp",
    "sum_squares", "quad_form", "quad_over_lin", "huber",
    "norm", "norm1", "norm2", "norm_inf", "pnorm",
    "lambda_max", "lambda_min", "log_det", "sigma_max", "normNuc",
]
