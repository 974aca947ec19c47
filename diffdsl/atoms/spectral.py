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
import scipy.sparse as sp

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


def block_matrix(ctx, blocks):
    """Rows (C order) of the block matrix [[B00, B01], [B10, B11], ...]; each block is a
    (tensor, (rows, cols)) pair."""
    from ..compile.tensor import vstack
    tensors, index_rows, start = [], [], 0
    for row in blocks:
        index_row = []
        for tensor, (r, c) in row:
            tensors.append(tensor)
            index_row.append(start + np.arange(r * c).reshape(r, c))
            start += r * c
        index_rows.append(index_row)
    return vstack(tensors, ctx.P).select(np.block(index_rows).reshape(-1))


def scaled_identity(ctx, t, n: int):
    """Rows of t · I_n for a one-row tensor t."""
    return t.select(np.zeros(n * n, np.int64)).scale(np.eye(n).reshape(-1))


def transpose_rows(X, shape):
    return X.select(np.arange(shape[0] * shape[1]).reshape(shape).T.reshape(-1))


def _symmetric_eigenvalues(X: np.ndarray) -> np.ndarray:
    return np.linalg.eigvalsh((X + X.T) / 2)


class LambdaMax(MatrixAtom):
    name = "lambda_max"
    curvature_of_atom = Curvature.CONVEX

    def domain(self) -> list:
        return [self.args[0] == self.args[0].T]

    def numeric(self, values):
        return _symmetric_eigenvalues(values[0]).max()

    def canonicalize(self, args, ctx):
        """t I − X ⪰ 0 (X − t I ⪰ 0 for lambda_min), with X = Xᵀ."""
        n = self.args[0].shape[0]
        X, t = args[0], ctx.new_variable(1)
        if not self.args[0].is_symmetric():
            ctx.symmetric(X, n)
        tI = scaled_identity(ctx, t, n)
        ctx.psd(tI - X if self.curvature_of_atom is Curvature.CONVEX else X - tI, n)
        return t


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

    def canonicalize(self, args, ctx):
        """log det X ≥ t ⇐ [[X, Z], [Zᵀ, diag(Z)]] ⪰ 0 with Z lower triangular and
        t ≤ Σ log Z_ii (one exponential cone per diagonal entry)."""
        n = self.args[0].shape[0]
        rows, cols = np.tril_indices(n)
        z = ctx.new_variable(rows.size)
        Z = z.linear(sp.csr_matrix((np.ones(rows.size), (rows * n + cols, np.arange(rows.size))),
                                   shape=(n * n, rows.size)))
        diagonal = np.arange(n) * (n + 1)
        D = Z.linear(sp.csr_matrix((np.ones(n), (diagonal, diagonal)), shape=(n * n, n * n)))
        M = block_matrix(ctx, [[(args[0], (n, n)), (Z, (n, n))],
                               [(transpose_rows(Z, (n, n)), (n, n)), (D, (n, n))]])
        ctx.psd(M, 2 * n)
        u = ctx.new_variable(n)
        ctx.exp_cone(u, ctx.ones(n), Z.select(diagonal))
        return u.linear(np.ones((1, n)))


class SigmaMax(MatrixAtom):
    name = "sigma_max"
    square = False
    curvature_of_atom = Curvature.CONVEX

    def sign_from_args(self) -> Sign:
        return Sign.NONNEG

    def numeric(self, values):
        return np.linalg.norm(values[0], 2)

    def canonicalize(self, args, ctx):
        """[[t I, X], [Xᵀ, t I]] ⪰ 0."""
        (m, n), t = self.args[0].shape, ctx.new_variable(1)
        X = args[0]
        M = block_matrix(ctx, [[(scaled_identity(ctx, t, m), (m, m)), (X, (m, n))],
                               [(transpose_rows(X, (m, n)), (n, m)),
                                (scaled_identity(ctx, t, n), (n, n))]])
        ctx.psd(M, m + n)
        return t


class NormNuc(SigmaMax):
    name = "normNuc"

    def numeric(self, values):
        return np.linalg.norm(values[0], "nuc")

    def canonicalize(self, args, ctx):
        """‖X‖_* = min {(tr U + tr V)/2 : [[U, X], [Xᵀ, V]] ⪰ 0}."""
        (m, n), X = self.args[0].shape, args[0]
        U, V = ctx.new_variable(m * m), ctx.new_variable(n * n)
        M = block_matrix(ctx, [[(U, (m, m)), (X, (m, n))],
                               [(transpose_rows(X, (m, n)), (n, m)), (V, (n, n))]])
        ctx.psd(M, m + n)
        traces = sp.hstack([sp.csr_matrix(np.eye(m).reshape(1, -1)),
                            sp.csr_matrix(np.eye(n).reshape(1, -1))]) * 0.5
        from ..compile.tensor import vstack
        return vstack([U, V], ctx.P).linear(traces)


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
