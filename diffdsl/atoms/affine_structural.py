"""Affine atoms that move, select, reduce or stack entries.

Indexing, transpose, reshape/vec, sum, cumsum, diag, trace, hstack/vstack/bmat and kron.
Each is a linear map; except kron (whose constant factor is data), its coefficients are
0/1 selection or summation matrices. Shapes follow NumPy.
"""
from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from ..errors import ShapeError
from ..expressions.dcp import Curvature, Monotonicity, Sign, mul_sign, sum_sign
from ..expressions.expression import PREC_POSTFIX, Expression, as_expression
from ..expressions.shapes import (Shape, as_shape, is_vector_shape, normalize_axis,
                                  reduce_shape, require_square, size_of)
from .affine_arithmetic import is_param_free
from .atom import Atom, MonotoneSemidefinite


class AffineAtom(Atom):
    """Affine, increasing in every argument; sign is the sign of a sum of the arguments."""

    curvature_of_atom = Curvature.AFFINE
    monotonicity_of_atom = Monotonicity.INCREASING

    def sign_from_args(self) -> Sign:
        return sum_sign(a.sign for a in self.args)


class Index(AffineAtom):
    """``x[key]`` with NumPy's semantics: ints, slices, integer and boolean arrays."""

    name = "index"
    precedence = PREC_POSTFIX

    def __init__(self, x, key) -> None:
        x = as_expression(x)
        self.key = key
        try:
            #: flat (C-order) positions in x of the selected entries, shaped like the result
            self.selection = np.arange(x.size).reshape(x.shape)[key]
        except (IndexError, TypeError, ValueError) as err:
            raise IndexError(f"invalid index {format_key(key)} for an expression of shape "
                             f"{x.shape}: {err}") from None
        if self.selection.ndim > 2:
            raise ShapeError(f"index {format_key(key)} gives {self.selection.ndim} dimensions; "
                             "expressions have at most 2")
        super().__init__(x)

    def shape_from_args(self) -> Shape:
        return self.selection.shape

    def numeric(self, values):
        return values[0].reshape(-1)[self.selection]

    def canonicalize(self, args, ctx):
        return args[0].select(self.selection.reshape(-1))

    def format(self) -> str:
        from .affine_arithmetic import parenthesize
        return f"{parenthesize(self.args[0], PREC_POSTFIX)}[{format_key(self.key)}]"


def format_key(key) -> str:
    def one(k):
        if isinstance(k, slice):
            parts = ["" if v is None else str(v) for v in (k.start, k.stop, k.step)]
            return ":".join(parts[:2]) + (f":{parts[2]}" if k.step is not None else "")
        if isinstance(k, (list, np.ndarray)):
            arr = np.asarray(k)
            return np.array2string(arr, separator=", ", threshold=6) if arr.size else "[]"
        if k is Ellipsis:
            return "..."
        return str(k)
    return ", ".join(one(k) for k in key) if isinstance(key, tuple) else one(key)


class Transpose(MonotoneSemidefinite, AffineAtom):
    name = "transpose"
    precedence = PREC_POSTFIX

    def shape_from_args(self) -> Shape:
        return self.args[0].shape[::-1]

    def numeric(self, values):
        return values[0].T

    def canonicalize(self, args, ctx):
        return args[0].select(np.arange(self.size).reshape(self.args[0].shape).T.reshape(-1))

    def format(self) -> str:
        from .affine_arithmetic import parenthesize
        return f"{parenthesize(self.args[0], PREC_POSTFIX)}.T"


class Reshape(AffineAtom):
    """Reshape in column-major ('F', CVXPY's default) or row-major ('C') order."""

    name = "reshape"

    def __init__(self, x, shape, order: str = "F") -> None:
        x = as_expression(x)
        if order not in ("F", "C"):
            raise ValueError(f"reshape order must be 'F' or 'C', got {order!r}")
        self.target = infer_shape(shape, x.size)
        self.order = order
        super().__init__(x)

    def shape_from_args(self) -> Shape:
        return self.target

    def numeric(self, values):
        return np.reshape(values[0], self.target, order=self.order)

    def canonicalize(self, args, ctx):
        return args[0].select(self.numeric([np.arange(self.size).reshape(self.args[0].shape)]))

    def format_data(self) -> list[str]:
        return [str(self.target), f"order={self.order!r}"]


def infer_shape(shape, size: int) -> Shape:
    shape = tuple(int(d) for d in ((shape,) if isinstance(shape, numbers.Integral) else shape))
    if len(shape) > 2:
        raise ShapeError(f"expressions have at most 2 dimensions, got reshape to {shape}")
    if shape.count(-1) > 1:
        raise ShapeError("reshape: only one dimension can be -1")
    if -1 in shape:
        known = size_of(tuple(d for d in shape if d != -1))
        if known == 0 or size % known:
            raise ShapeError(f"cannot reshape {size} entries into {shape}")
        shape = tuple(size // known if d == -1 else d for d in shape)
    if size_of(shape) != size:
        raise ShapeError(f"cannot reshape an expression with {size} entries into {shape}")
    return as_shape(shape)


class Sum(AffineAtom):
    """Sum of entries, over all axes or along one."""

    name = "sum"

    def __init__(self, x, axis: int | None = None, keepdims: bool = False) -> None:
        x = as_expression(x)
        self.axis = normalize_axis(axis, x.ndim)
        self.keepdims = bool(keepdims)
        super().__init__(x)

    def shape_from_args(self) -> Shape:
        return reduce_shape(self.args[0].shape, self.axis, self.keepdims)

    def numeric(self, values):
        return np.sum(values[0], axis=self.axis, keepdims=self.keepdims)

    def canonicalize(self, args, ctx):
        return args[0].linear(reduction_matrix(self.args[0].shape, self.axis))

    def format_data(self) -> list[str]:
        out = [] if self.axis is None else [f"axis={self.axis}"]
        return out + (["keepdims=True"] if self.keepdims else [])


class Cumsum(AffineAtom):
    """Cumulative sum along ``axis`` (default 0, as in CVXPY); ``axis=None`` runs over the
    entries in C order, like ``numpy.cumsum``."""

    name = "cumsum"

    def __init__(self, x, axis: int | None = 0) -> None:
        x = as_expression(x)
        self.axis = None if axis is None or x.ndim == 0 else normalize_axis(axis, x.ndim)
        super().__init__(x)

    def shape_from_args(self) -> Shape:
        x = self.args[0]
        return (x.size,) if self.axis is None else x.shape

    def numeric(self, values):
        return np.cumsum(values[0], axis=self.axis)

    def canonicalize(self, args, ctx):
        shape = self.args[0].shape
        if self.axis is None or len(shape) <= 1:
            return args[0].linear(lower_ones(self.size))
        a, b = shape
        L = (sp.kron(lower_ones(a), sp.identity(b)) if self.axis == 0
             else sp.kron(sp.identity(a), lower_ones(b)))
        return args[0].linear(L)

    def format_data(self) -> list[str]:
        return [f"axis={self.axis}"]


class DiagVec(AffineAtom):
    """A vector placed on the k-th diagonal of a square matrix."""

    name = "diag"

    def __init__(self, x, k: int = 0) -> None:
        self.k = int(k)
        super().__init__(x)

    def shape_from_args(self) -> Shape:
        n = self.args[0].size + abs(self.k)
        return (n, n)

    def numeric(self, values):
        return np.diag(values[0].reshape(-1, order="F"), self.k)

    def canonicalize(self, args, ctx):
        n, N = self.args[0].size, self.shape[0]
        i = np.arange(n)
        rows, cols = (i, i + self.k) if self.k >= 0 else (i - self.k, i)
        return args[0].linear(sp.csr_matrix((np.ones(n), (rows * N + cols, i)), shape=(N * N, n)))

    def is_psd(self) -> bool:
        return self.k == 0 and self.args[0].is_nonneg()

    def is_nsd(self) -> bool:
        return self.k == 0 and self.args[0].is_nonpos()

    def is_symmetric(self) -> bool:
        return self.k == 0

    def format_data(self) -> list[str]:
        return [f"k={self.k}"] if self.k else []


class DiagMat(AffineAtom):
    """The k-th diagonal of a square matrix, as a vector."""

    name = "diag"

    def __init__(self, x, k: int = 0) -> None:
        x = as_expression(x)
        self.k = int(k)
        if abs(self.k) >= max(x.shape[0], 1):
            raise ShapeError(f"diag offset k={k} out of range for shape {x.shape}")
        super().__init__(x)

    def shape_from_args(self) -> Shape:
        return (self.args[0].shape[0] - abs(self.k),)

    def sign_from_args(self) -> Sign:
        """The diagonal of a PSD matrix is nonnegative."""
        X = self.args[0]
        return Sign.of(X.is_nonneg() or (self.k == 0 and X.is_psd()), X.is_nonpos())

    def numeric(self, values):
        return np.diag(values[0], self.k)

    def canonicalize(self, args, ctx):
        n = self.args[0].shape[0]
        return args[0].select(np.diag(np.arange(n * n).reshape(n, n), self.k))

    def format_data(self) -> list[str]:
        return [f"k={self.k}"] if self.k else []


class Trace(AffineAtom):
    name = "trace"

    def __init__(self, x) -> None:
        x = as_expression(x)
        require_square(x.shape, "trace")
        super().__init__(x)

    def shape_from_args(self) -> Shape:
        return ()

    def sign_from_args(self) -> Sign:
        """The trace of a PSD (NSD) matrix is nonnegative (nonpositive)."""
        X = self.args[0]
        return Sign.of(X.is_nonneg() or X.is_psd(), X.is_nonpos() or X.is_nsd())

    def numeric(self, values):
        return np.trace(values[0])

    def canonicalize(self, args, ctx):
        n = self.args[0].shape[0]
        diagonal = np.arange(n) * (n + 1)
        return args[0].linear(sp.csr_matrix((np.ones(n), (np.zeros(n, int), diagonal)),
                                            shape=(1, n * n)))


class Stack(AffineAtom):
    """Concatenation with NumPy's hstack/vstack shape rules."""

    numpy_stack = staticmethod(np.hstack)

    def __init__(self, *args) -> None:
        if not args:
            raise ValueError(f"{self.name} needs at least one expression")
        super().__init__(*args)

    def shape_from_args(self) -> Shape:
        try:
            shape = self.numpy_stack([np.zeros(a.shape) for a in self.args]).shape
        except ValueError as err:
            raise ShapeError(f"{self.name}: incompatible shapes "
                             f"{[a.shape for a in self.args]}: {err}") from None
        return as_shape(shape)

    def numeric(self, values):
        return self.numpy_stack(values)

    def canonicalize(self, args, ctx):
        from ..compile.tensor import vstack
        starts = np.cumsum([0] + [a.size for a in self.args])
        blocks = [start + np.arange(a.size).reshape(a.shape)
                  for start, a in zip(starts, self.args, strict=False)]
        return vstack(args, ctx.P).select(self.numpy_stack(blocks).reshape(-1))

    def format(self) -> str:
        return f"{self.name}([{', '.join(a.format() for a in self.args)}])"


class HStack(Stack):
    name = "hstack"
    numpy_stack = staticmethod(np.hstack)


class VStack(Stack):
    name = "vstack"
    numpy_stack = staticmethod(np.vstack)


class Kron(Atom):
    """Kronecker product of two 2-d expressions, one of them constant.

    Under DPP both factors must be parameter-free (CVXPY's rule).
    """

    name = "kron"

    def __init__(self, a, b) -> None:
        a, b = as_expression(a), as_expression(b)
        if a.ndim != 2 or b.ndim != 2:
            raise ShapeError(f"kron needs two 2-d arguments, got shapes {a.shape} and {b.shape}")
        super().__init__(a, b)

    def shape_from_args(self) -> Shape:
        (m, n), (p, q) = self.args[0].shape, self.args[1].shape
        return (m * p, n * q)

    def sign_from_args(self) -> Sign:
        return mul_sign(self.args[0].sign, self.args[1].sign)

    def atom_curvature(self, dpp: bool) -> Curvature:
        a, b = self.args
        ok = a.is_constant(dpp) or b.is_constant(dpp)
        if dpp:
            ok = ok and is_param_free(a) and is_param_free(b)
        return Curvature.AFFINE if ok else Curvature.UNKNOWN

    def why_unknown(self, dpp: bool) -> str:
        if dpp:
            return "kron with a parameter-dependent factor is not DPP"
        return "kron is affine only when one factor is constant"

    def monotonicity(self, i: int) -> Monotonicity:
        const = self.args[0] if self.args[0].is_constant() else self.args[1]
        return Monotonicity.of(const.is_nonneg(), const.is_nonpos())

    def numeric(self, values):
        return np.kron(values[0], values[1])

    def canonicalize(self, args, ctx):
        """out[i p + r, j q + s] = A[i, j] B[r, s]: a linear map of the non-constant factor."""
        (m, n), (p, q) = self.args[0].shape, self.args[1].shape
        i, j, r, s = (g.reshape(-1) for g in np.meshgrid(
            np.arange(m), np.arange(n), np.arange(p), np.arange(q), indexing="ij"))
        out = (i * p + r) * (n * q) + (j * q + s)
        if args[0].is_variable_free() and args[0].is_parameter_free():
            coef, src, x, width = args[0].constant_value()[i * n + j], r * q + s, args[1], p * q
        else:
            coef, src, x, width = args[1].constant_value()[r * q + s], i * n + j, args[0], m * n
        L = sp.csr_matrix((coef, (out, src)), shape=(self.size, width))
        L.eliminate_zeros()
        return x.linear(L)


def reduction_matrix(shape: tuple, axis: int | None) -> sp.csr_matrix:
    """The 0/1 matrix summing C-order entries of ``shape`` over ``axis`` (all when None)."""
    size = int(np.prod(shape, dtype=int))
    if axis is None:
        return sp.csr_matrix(np.ones((1, size)))
    coords = np.indices(shape).reshape(len(shape), -1)
    kept = [c for i, c in enumerate(coords) if i != axis]
    out_shape = [d for i, d in enumerate(shape) if i != axis]
    rows = np.ravel_multi_index(kept, out_shape) if kept else np.zeros(size, int)
    return sp.csr_matrix((np.ones(size), (rows, np.arange(size))),
                         shape=(int(np.prod(out_shape, dtype=int)), size))


def lower_ones(n: int) -> sp.csr_matrix:
    """n×n lower-triangular matrix of ones (a cumulative sum)."""
    return sp.csr_matrix(np.tril(np.ones((n, n))))


# ---------------------------------------------------------------------------- functions
def index(x, key) -> Expression:
    return Index(x, key)


def transpose(x) -> Expression:
    x = as_expression(x)
    return x if x.ndim < 2 else Transpose(x)


def reshape(x, shape, order: str = "F") -> Expression:
    """Reshape ``x`` to ``shape`` (one entry may be -1) in 'F' (column-major) or 'C' order."""
    return Reshape(x, shape, order)


def vec(x, order: str = "F") -> Expression:
    """Flatten ``x`` to 1-d in 'F' (column-major) or 'C' order."""
    x = as_expression(x)
    return Reshape(x, (x.size,), order)


def sum(x, axis: int | None = None, keepdims: bool = False) -> Expression:  # noqa: A001
    """Sum of the entries of ``x``, over all axes or along ``axis``."""
    return Sum(x, axis, keepdims)


def cumsum(x, axis: int | None = 0) -> Expression:
    return Cumsum(x, axis)


def diag(x, k: int = 0) -> Expression:
    """A vector (or n×1 / 1×n matrix) to a diagonal matrix; a square matrix to its diagonal."""
    x = as_expression(x)
    if x.ndim == 0 or is_vector_shape(x.shape):
        return DiagVec(x, k)
    if x.ndim == 2 and x.shape[0] == x.shape[1]:
        return DiagMat(x, k)
    raise ShapeError(f"diag needs a vector or a square matrix, got shape {x.shape}")


def trace(x) -> Expression:
    return Trace(x)


def hstack(args) -> Expression:
    """Concatenate horizontally (NumPy's hstack rules)."""
    return HStack(*args)


def vstack(args) -> Expression:
    """Stack vertically (NumPy's vstack rules)."""
    return VStack(*args)


def bmat(blocks) -> Expression:
    """Block matrix from a list of rows, each a list of 2-d blocks."""
    return vstack([hstack(row) for row in blocks])


def kron(a, b) -> Expression:
    return Kron(a, b)


__all__ = ["index", "transpose", "reshape", "vec", "sum", "cumsum", "diag", "trace",
           "hstack", "vstack", "bmat", "kron"]
