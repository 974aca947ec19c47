"""Cones of the standard form, in their fixed order: zero, nonnegative, second-order, PSD,
exponential, 3-d power.

Conventions (stated once, used by every solver adapter):

* second-order cone of dimension k:  {(t, x) ∈ R × R^{k−1} : ‖x‖₂ ≤ t};
* PSD cone of order n: svec(X) ∈ R^{n(n+1)/2}, the lower triangle of the symmetric matrix X
  in column-major order with off-diagonal entries scaled by √2 (so ⟨svec X, svec Y⟩ = tr XY);
* exponential cone: cl{(x, y, z) : y > 0, y·exp(x/y) ≤ z};
* 3-d power cone with α ∈ (0, 1): {(x, y, z) : x^α y^(1−α) ≥ |z|, x, y ≥ 0}.
"""
from __future__ import annotations

import dataclasses

import numpy as np


class Cone:
    """A block of the product cone."""

    kind = "cone"

    @property
    def size(self) -> int:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class ZeroCone(Cone):
    dim: int
    kind = "zero"

    @property
    def size(self) -> int:
        return self.dim


@dataclasses.dataclass(frozen=True)
class NonnegativeCone(Cone):
    dim: int
    kind = "nonneg"

    @property
    def size(self) -> int:
        return self.dim


@dataclasses.dataclass(frozen=True)
class SecondOrderCone(Cone):
    dims: tuple[int, ...]
    kind = "soc"

    @property
    def size(self) -> int:
        return int(sum(self.dims))


@dataclasses.dataclass(frozen=True)
class PSDCone(Cone):
    orders: tuple[int, ...]
    kind = "psd"

    @property
    def size(self) -> int:
        return int(sum(n * (n + 1) // 2 for n in self.orders))


@dataclasses.dataclass(frozen=True)
class ExponentialCone(Cone):
    count: int
    kind = "exp"

    @property
    def size(self) -> int:
        return 3 * self.count


@dataclasses.dataclass(frozen=True)
class PowerCone(Cone):
    alphas: tuple[float, ...]
    kind = "pow"

    @property
    def size(self) -> int:
        return 3 * len(self.alphas)


CONE_ORDER = ("zero", "nonneg", "soc", "psd", "exp", "pow")


@dataclasses.dataclass(frozen=True)
class ConeDims:
    """The product cone K, block sizes in the fixed order."""

    zero: int = 0
    nonneg: int = 0
    soc: tuple[int, ...] = ()
    psd: tuple[int, ...] = ()
    exp: int = 0
    pow: tuple[float, ...] = ()

    def cones(self) -> list[Cone]:
        out: list[Cone] = []
        if self.zero:
            out.append(ZeroCone(self.zero))
        if self.nonneg:
            out.append(NonnegativeCone(self.nonneg))
        if self.soc:
            out.append(SecondOrderCone(self.soc))
        if self.psd:
            out.append(PSDCone(self.psd))
        if self.exp:
            out.append(ExponentialCone(self.exp))
        if self.pow:
            out.append(PowerCone(self.pow))
        return out

    @property
    def size(self) -> int:
        return sum(c.size for c in self.cones())

    def kinds(self) -> set[str]:
        return {c.kind for c in self.cones()}

    def offsets(self) -> dict[str, int]:
        """Row where each kind's block starts."""
        out, row = {}, 0
        for kind, cone in zip(CONE_ORDER, [ZeroCone(self.zero), NonnegativeCone(self.nonneg),
                                           SecondOrderCone(self.soc), PSDCone(self.psd),
                                           ExponentialCone(self.exp), PowerCone(self.pow)],
                              strict=True):
            out[kind] = row
            row += cone.size
        return out


def svec_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the lower triangle of an n×n matrix in column-major order."""
    cols, rows = np.triu_indices(n)     # upper (col, row) pairs in row-major = lower col-major
    return rows, cols


def svec_to_matrix(v: np.ndarray, n: int) -> np.ndarray:
    """The symmetric n×n matrix whose svec is v."""
    rows, cols = svec_indices(n)
    M = np.zeros((n, n))
    M[rows, cols] = v / np.where(rows == cols, 1.0, np.sqrt(2.0))
    return M + np.tril(M, -1).T


def matrix_to_svec(M: np.ndarray) -> np.ndarray:
    """svec of a symmetric matrix (lower triangle, column-major, √2 off the diagonal)."""
    rows, cols = svec_indices(M.shape[0])
    return M[rows, cols] * np.where(rows == cols, 1.0, np.sqrt(2.0))
