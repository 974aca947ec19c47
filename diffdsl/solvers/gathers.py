"""Products with constant matrices that have a few entries per column, as gathers.

The native method's bound space moves vectors between index sets by constant matrices that
are mostly zero: bound rows onto their variables (one entry per row), variables onto their
column classes (a class's members) and back. As dense products those cost a (B, k) × (k, n)
multiplication each, several times per iteration; as gathers they cost a few elementwise
operations on (B, n) arrays (5× less at the lasso's sizes, B = 32, k = 200, n = 250).
Written with indexing and arithmetic only, so it runs in every array namespace.
"""
from __future__ import annotations

import functools

import numpy as np

MAX_DEPTH = 8     # entries per column above which the dense product is kept


class ColumnGather:
    """v ↦ v M for a constant M (k, n): (v M)_j = Σ_l M[src_l(j), j] v[src_l(j)], layer l
    holding each column's l-th entry (weight 0 in a column with fewer entries; no weights
    where a layer's are all 1). With more than ``MAX_DEPTH`` entries in some column, the
    dense product."""

    def __init__(self, ops, M, like=None) -> None:
        M = np.asarray(M, dtype=float)
        rows, cols = np.nonzero(M)
        self._build(ops, rows, cols, M[rows, cols], M.shape, like)

    @classmethod
    def of_entries(cls, ops, rows, cols, values, shape, like=None) -> "ColumnGather":
        """The gather of the (k, n) = ``shape`` matrix with ``values`` at (rows, cols)
        (each place at most once), without forming it."""
        gather = cls.__new__(cls)
        gather._build(ops, *(np.asarray(a) for a in (rows, cols, values)), shape, like)
        return gather

    def _build(self, ops, rows, cols, values, shape, like) -> None:
        self.ops, self.n = ops, shape[1]
        dense, layers = _layers(np.asarray(rows, np.int64).tobytes(),
                                np.asarray(cols, np.int64).tobytes(),
                                np.asarray(values, float).tobytes(), tuple(shape))
        self.dense = None if dense is None else ops.constant(dense, like)
        self.layers = [(src, None if weight is None else ops.constant(weight, like))
                       for src, weight in layers]
        # M = I (each bound its own variable, in order: x ≥ 0): no gather at all
        self.identity = (dense is None and len(layers) == 1 and layers[0][1] is None
                         and shape[0] == shape[1]
                         and np.array_equal(np.asarray(layers[0][0]), np.arange(shape[1])))

    def __call__(self, v):
        """v M for v (B, k)."""
        if self.identity:
            return v
        if self.dense is not None:
            return v @ self.dense
        if not self.layers:
            return self.ops.zeros((v.shape[0], self.n), v)
        out = None
        for src, weight in self.layers:
            term = self.ops.take(v, src)
            term = term if weight is None else term * weight
            out = term if out is None else out + term
        return out


@functools.lru_cache(maxsize=64)
def _layers(rows: bytes, cols: bytes, values: bytes, shape: tuple[int, int]):
    """The gather's static part, from M's entries (as bytes: a cache key; the same
    matrices recur every call): (M dense, ()) past ``MAX_DEPTH``, else (None, layers) —
    each layer a source row per column and its weights (None where all are 1)."""
    rows, cols = np.frombuffer(rows, np.int64), np.frombuffer(cols, np.int64)
    values = np.frombuffer(values, float)
    present = values != 0
    rows, cols, values = rows[present], cols[present], values[present]
    order = np.lexsort((rows, cols))                    # by column, then row
    rows, cols, values = rows[order], cols[order], values[order]
    first = np.searchsorted(cols, cols)                 # each column's first entry
    level = np.arange(cols.size) - first
    depth = int(level.max(initial=-1)) + 1
    if depth > MAX_DEPTH:
        M = np.zeros(shape)
        M[rows, cols] = values
        return M, ()
    layers = []
    for at in range(depth):
        on = level == at
        src, weight = np.zeros(shape[1], np.int64), np.zeros(shape[1])
        src[cols[on]], weight[cols[on]] = rows[on], values[on]
        layers.append((src, None if np.all(weight == 1.0) else weight))
    return None, tuple(layers)
