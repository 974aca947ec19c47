"""Spectral atoms of matrices, canonicalized with PSD cones.

    lambda_max(X)  largest eigenvalue of symmetric X,   convex,  domain X = Xᵀ
    lambda_min(X)  smallest eigenvalue of symmetric X,  concave, domain X = Xᵀ
    log_det(X)     log det X,                           concave, domain X ⪰ 0
    sigma_max(X)   largest singular value,              convex,  ≥ 0
    normNuc(X)     sum of singular values,              convex,  ≥ 0
None is monotone in X under the entrywise order DCP uses.
"""
from __future__ import annotations

import numpy as np

from ..expressions.dcp import Curvature, Sign
from ..expressions.expression import Expression, as_expression
from ..expressions.shapes import Shape, require_square
from .atom import Atom, require_ndim


class MatrixAtom(Atom):
    """A scalar function of one matrix argument."""

    square = True

    def __init__(self, X) -> None:
        X = as_expression(X)
        if self.square:
            require_square(X.shape, self.name)
        else:
            require_ndim(X, (2,), self.name)
        super().__init__(X)

    def shape_from_args(self) -> Shape:
        return ()

    @property
    def value(self):
        """NaN when the argument has non-finite entries (the linear algebra is undefined)."""
        X = self.args[0].value
        if X is not None and not np.all(np.isfinite(X)):
            return np.float64(np.nan)
        return super().value


def _symmetric_eigenvalues(X: np.ndarray) -> np.ndarray:
    return np.linalg.eigvalsh((X + X.T) / 2)


class LambdaMax(MatrixAtom):
    name = "lambda_max"
    curvature_of_atom = Curvature.CONVEX

    def domain(self) -> list:
        return [self.args[0] == self.args[0].T]

    def numeric(self, values):
        return _symmetric_eigenvalues(values[0]).max()


class LambdaMin(LambdaMax):
    name = "lambda_min"
    curvature_of_atom = Curvature.CONCAVE

    def numeric(self, values):
        return _symmetric_eigenvalues(values[0]).min()


class LogDet(MatrixAtom):
    name = "log_det"
    curvature_of_atom = Curvature.CONCAVE

    def domain(self) -> list:
        return [self.args[0] >> 0]

    def numeric(self, values):
        eig = _symmetric_eigenvalues(values[0])
        return np.log(eig).sum() if eig.min() > 0 else -np.inf


class SigmaMax(MatrixAtom):
    name = "sigma_max"
    square = False
    curvature_of_atom = Curvature.CONVEX

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def numeric(self, values):
        return np.linalg.norm(values[0], 2)


class NormNuc(SigmaMax):
    name = "normNuc"

    def numeric(self, values):
        return np.linalg.norm(values[0], "nuc")


def lambda_max(X) -> Expression:
    return LambdaMax(X)


def lambda_min(X) -> Expression:
    return LambdaMin(X)


def log_det(X) -> Expression:
    return LogDet(X)


def sigma_max(X) -> Expression:
    return SigmaMax(X)


def normNuc(X) -> Expression:  # noqa: N802 (CVXPY's name)
    return NormNuc(X)
