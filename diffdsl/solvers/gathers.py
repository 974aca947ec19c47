"""Products with constant matrices that have a few entries per column, as gathers.

The native method's bound space moves vectors between index sets by constant matrices that
are mostly zero: bound rows onto their variables (one entry per row), variables onto their
column classes (a class's members) and back. As dense products those cost a (B, k) × (k, n)
multiplication each, several times per iteration; as gathers they cost a few elementwise
operations on (B, n) arrays (5× less at the lasso's sizes, B = 32, k = 200, n = 250).
Written with indexing and arithmetic only, so it runs in every array namespace.
"""
from __future__ import annotations

import numpy as np

MAX_DEPTH = 8     # entries per column above which the dense product is kept


class ColumnGather:
    """v ↦ v M for a constant M (k, n): (v M)_j = Σ_l M[src_l(j), j] v[src_l(j)], layer l
    holding each column's l-th entry (weight 0 in a column with fewer entries; no weights
    where a layer's are all 1). With more than ``MAX_DEPTH`` entries in some column, the
    dense product."""

    def __init__(self, ops, M, like=None) -> None:
        M = np.asarray(M, dtype=float)
        self.ops, self.n = ops, M.shape[1]
        present = M != 0
        depth = int(present.sum(0).max(initial=0))
        self.dense = ops.constant(M, like) if depth > MAX_DEPTH else None
        order = np.argsort(~present, axis=0, kind="stable")    # each column's entries first
        self.layers = []
        for level in range(depth if self.dense is None else 0):
            src = order[level]
            weight = M[src, np.arange(self.n)]
            self.layers.append((src, None if np.all(weight == 1.0)
                                else ops.constant(weight, like)))

    def __call__(self, v):
        """v M for v (B, k)."""
        if self.dense is not None:
            return v @ self.dense
        if not self.layers:
            return self.ops.zeros((v.shape[0], self.n), v)
        out = None
        for src, weight in self.layers:
            term = v[:, src] if weight is None else v[:, src] * weight
            out = term if out is None else out + term
        return out
