"""Affine maps of (x, θ), the currency of canonicalization.

An ``AffineTensor`` with m rows represents

    v(x, θ)[r] = Σ_{c, p} M[r, (c, p)] · x̃_c · θ̃_p,   x̃ = [1; x],  θ̃ = [1; θ]

so every entry is affine in x for fixed θ and affine in θ for fixed x (never bilinear in a
single term: a term with c > 0 and p > 0 is a parameter times a variable). Columns are
keyed ``key = c · P + p`` with ``P = 1 + len(θ)``; each tensor stores only the keys it
uses, so its sparse matrix stays as small as its nonzeros. Rows follow the C-order
flattening of the expression's value.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class AffineTensor:
    """Rows of affine functions of (x, θ): a CSR matrix over a sorted array of column keys."""

    __slots__ = ("matrix", "keys", "n_params")

    def __init__(self, matrix: sp.csr_matrix, keys: np.ndarray, n_params: int) -> None:
        self.matrix = matrix
        self.keys = keys
        self.n_params = n_params   # P = 1 + len(θ)

    # construction ------------------------------------------------------------------
    @classmethod
    def from_entries(cls, m: int, rows, keys, vals, n_params: int) -> "AffineTensor":
        """Sum of entries (row, key, value); duplicates add up."""
        rows = np.asarray(rows, dtype=np.int64)
        keys = np.asarray(keys, dtype=np.int64)
        vals = np.asarray(vals, dtype=float)
        unique, cols = unique_inverse(keys)
        matrix = sp.csr_matrix((vals, (rows, cols)), shape=(m, len(unique)))
        matrix.sum_duplicates()
        return cls(matrix, unique, n_params)

    @classmethod
    def constant(cls, values, n_params: int) -> "AffineTensor":
        """Rows equal to the (C-order flattened) constant ``values``."""
        if sp.issparse(values):                    # C-order positions of the nonzeros
            coo = sp.coo_matrix(values)
            size = coo.shape[0] * coo.shape[1]
            nz = coo.row.astype(np.int64) * coo.shape[1] + coo.col
            matrix = sp.csr_matrix((coo.data.astype(float), (nz, np.zeros(nz.size, np.int64))),
                                   shape=(size, 1))
            matrix.sum_duplicates()
            return cls(matrix, np.zeros(1, np.int64), n_params)
        flat = np.asarray(values, dtype=float).reshape(-1)
        nz = np.flatnonzero(flat)
        indptr = np.zeros(flat.size + 1, np.int64)
        indptr[nz + 1] = 1
        matrix = sp.csr_matrix((flat[nz], np.zeros(nz.size, np.int64), np.cumsum(indptr)),
                               shape=(flat.size, 1))
        return cls(matrix, np.zeros(1, np.int64), n_params)

    @classmethod
    def variable(cls, offset: int, size: int, n_params: int) -> "AffineTensor":
        """Rows x[offset : offset + size] (variable index c = 1 + offset + i)."""
        return cls.diagonal((1 + offset + np.arange(size, dtype=np.int64)) * n_params, n_params)

    @classmethod
    def parameter(cls, offset: int, size: int, n_params: int) -> "AffineTensor":
        """Rows θ[offset : offset + size] (parameter index p = 1 + offset + i)."""
        return cls.diagonal(1 + offset + np.arange(size, dtype=np.int64), n_params)

    @classmethod
    def diagonal(cls, keys: np.ndarray, n_params: int) -> "AffineTensor":
        """Row i is the single term with (increasing) key ``keys[i]`` and coefficient 1."""
        size = keys.size
        matrix = sp.csr_matrix((np.ones(size), np.arange(size), np.arange(size + 1)),
                               shape=(size, size))
        return cls(matrix, keys, n_params)

    @classmethod
    def zeros(cls, m: int, n_params: int) -> "AffineTensor":
        return cls(sp.csr_matrix((m, 0)), np.zeros(0, np.int64), n_params)

    # queries -----------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return self.matrix.shape[0]

    def variable_index(self) -> np.ndarray:
        """c of every column (0 for the constant column)."""
        return self.keys // self.n_params

    def parameter_index(self) -> np.ndarray:
        """p of every column (0 for 'no parameter')."""
        return self.keys % self.n_params

    def is_parameter_free(self) -> bool:
        return not np.any(self.parameter_index()[self._used_columns()])

    def is_variable_free(self) -> bool:
        return not np.any(self.variable_index()[self._used_columns()])

    def _used_columns(self) -> np.ndarray:
        used = np.zeros(len(self.keys), dtype=bool)
        used[self.matrix.indices] = True
        return used

    def constant_value(self) -> np.ndarray:
        """The rows' values when the tensor has no variables and no parameters."""
        out = np.zeros(self.rows)
        zero = np.searchsorted(self.keys, 0)
        if zero < len(self.keys) and self.keys[zero] == 0:
            out = self.matrix[:, zero].toarray().reshape(-1)
        return out

    def evaluate(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Numeric rows at (x, θ) — for tests and recovery."""
        xt = np.concatenate([[1.0], np.asarray(x, float).reshape(-1)])
        tt = np.concatenate([[1.0], np.asarray(theta, float).reshape(-1)])
        weights = xt[self.variable_index()] * tt[self.parameter_index()]
        return self.matrix @ weights

    # algebra -----------------------------------------------------------------------
    def linear(self, L) -> "AffineTensor":
        """L @ rows, for a constant (sparse or dense) matrix L with ``self.rows`` columns."""
        return AffineTensor(sp.csr_matrix(L @ self.matrix), self.keys, self.n_params)

    def select(self, index: np.ndarray) -> "AffineTensor":
        """Rows ``index`` (any integer array, repeats allowed), in that order."""
        return AffineTensor(self.matrix[np.asarray(index, np.int64).reshape(-1)], self.keys,
                            self.n_params)

    def scale(self, factors) -> "AffineTensor":
        """Row r times the constant ``factors[r]`` (broadcast from a scalar)."""
        f = np.broadcast_to(np.asarray(factors, dtype=float).reshape(-1), (self.rows,))
        return AffineTensor(sp.csr_matrix(sp.diags(f) @ self.matrix), self.keys, self.n_params)

    def __neg__(self) -> "AffineTensor":
        return AffineTensor(-self.matrix, self.keys, self.n_params)

    def __add__(self, other: "AffineTensor") -> "AffineTensor":
        if other.rows != self.rows:
            raise ValueError(f"adding tensors with {self.rows} and {other.rows} rows")
        keys = sorted_union(self.keys, other.keys)
        return AffineTensor(self._recolumned(keys) + other._recolumned(keys), keys, self.n_params)

    def __sub__(self, other: "AffineTensor") -> "AffineTensor":
        return self + (-other)

    def _recolumned(self, keys: np.ndarray) -> sp.csr_matrix:
        new_cols = np.searchsorted(keys, self.keys)[self.matrix.indices]
        return sp.csr_matrix((self.matrix.data, new_cols, self.matrix.indptr),
                             shape=(self.rows, len(keys)))

    def rowwise_product(self, other: "AffineTensor") -> "AffineTensor":
        """Row r of the result is (row r of self) · (row r of other).

        Affine only when one side is variable-free and the other parameter-free (the DPP
        product rule), which the DCP/DPP analysis guarantees before canonicalization.
        """
        for const, rest in ((self, other), (other, self)):
            if const.is_variable_free() and const.is_parameter_free():
                return rest.scale(const.constant_value())
        if self.is_variable_free() and other.is_parameter_free():
            data_side, var_side = self, other
        elif other.is_variable_free() and self.is_parameter_free():
            data_side, var_side = other, self
        else:
            raise ValueError("product of two tensors that would not be affine in (x, θ)")
        a, b = data_side.matrix.tocsr(), var_side.matrix.tocsr()
        counts_b = np.diff(b.indptr)
        row_of_a = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
        reps = counts_b[row_of_a]                       # partners of each entry of a
        a_pos = np.repeat(np.arange(a.nnz), reps)
        starts = np.repeat(b.indptr[row_of_a], reps)
        within = np.arange(a_pos.size) - np.repeat(np.cumsum(reps) - reps, reps)
        b_pos = starts + within
        P = self.n_params
        keys = (var_side.keys[b.indices[b_pos]] // P) * P + data_side.keys[a.indices[a_pos]] % P
        vals = a.data[a_pos] * b.data[b_pos]
        rows = row_of_a[a_pos]
        return AffineTensor.from_entries(self.rows, rows, keys, vals, P)


def unique_inverse(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique values, index of each entry in them): np.unique by sorting, which is
    several times faster than NumPy's hash-based unique on large int64 arrays."""
    order = np.argsort(a, kind="stable")
    s = a[order]
    first = np.empty(s.size, dtype=bool)
    first[:1] = True
    first[1:] = s[1:] != s[:-1]
    inverse = np.empty(a.size, dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return s[first], inverse


def sorted_union(*arrays: np.ndarray) -> np.ndarray:
    """Union of sorted unique arrays."""
    if len(arrays) == 1:
        return arrays[0]
    s = np.sort(np.concatenate(arrays), kind="stable")
    keep = np.empty(s.size, dtype=bool)
    keep[:1] = True
    keep[1:] = s[1:] != s[:-1]
    return s[keep]


def vstack(tensors: list[AffineTensor], n_params: int) -> AffineTensor:
    """Rows of each tensor, one after another."""
    if not tensors:
        return AffineTensor.zeros(0, n_params)
    keys = sorted_union(*(t.keys for t in tensors))
    return AffineTensor(sp.vstack([t._recolumned(keys) for t in tensors], format="csr"), keys,
                        n_params)
