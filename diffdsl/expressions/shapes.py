"""Shape rules: validation, NumPy broadcasting, ``@`` with NumPy's 1-d rules, axis reductions.

Expressions have 0, 1 or 2 dimensions, like CVXPY.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from ..errors import ShapeError

Shape = tuple[int, ...]


def as_shape(shape) -> Shape:
    """Normalize an int or a sequence of ints to a shape tuple with at most 2 dimensions."""
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),)
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise ShapeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
    if len(shape) > 2:
        raise ShapeError(f"expressions have at most 2 dimensions, got shape {shape}")
    if any(d < 0 for d in shape):
        raise ShapeError(f"shape dimensions must be nonnegative, got {shape}")
    return shape


def size_of(shape: Shape) -> int:
    return int(np.prod(shape, dtype=int))


def broadcast(*shapes: Shape, op: str = "elementwise operation") -> Shape:
    """NumPy broadcasting of ``shapes``; raises ShapeError naming ``op`` when they do not fit."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(
            f"cannot broadcast shapes {', '.join(map(str, shapes))} for {op}; "
            "shapes must be equal or 1 (or missing) along every axis"
        ) from None


def matmul_shape(a: Shape, b: Shape) -> Shape:
    """Shape of ``a @ b`` under NumPy's rules (1-d operands are promoted then squeezed)."""
    if len(a) == 0 or len(b) == 0:
        raise ShapeError("matrix multiplication with a scalar operand: use * for scaling")
    a2 = (1, a[0]) if len(a) == 1 else a
    b2 = (b[0], 1) if len(b) == 1 else b
    if a2[1] != b2[0]:
        raise ShapeError(f"matmul: inner dimensions differ, {a} @ {b}")
    out = []
    if len(a) == 2:
        out.append(a2[0])
    if len(b) == 2:
        out.append(b2[1])
    return tuple(out)


def normalize_axis(axis, ndim: int) -> int | None:
    if axis is None:
        return None
    if not isinstance(axis, numbers.Integral):
        raise ShapeError(f"axis must be None or an int, got {axis!r}")
    if not -max(ndim, 1) <= axis < max(ndim, 1) or ndim == 0:
        raise ShapeError(f"axis {axis} is out of bounds for an expression with {ndim} dimensions")
    return int(axis) % ndim


def reduce_shape(shape: Shape, axis: int | None, keepdims: bool) -> Shape:
    """Shape after reducing ``shape`` along ``axis`` (all axes when None)."""
    if axis is None:
        return tuple(1 for _ in shape) if keepdims else ()
    if keepdims:
        return tuple(1 if i == axis else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i != axis)


def is_vector_shape(shape: Shape) -> bool:
    """True for 1-d shapes and for 2-d shapes with one dimension equal to 1."""
    return len(shape) == 1 or (len(shape) == 2 and min(shape) == 1)


def require_square(shape: Shape, what: str) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ShapeError(f"{what} needs a square 2-d argument, got shape {shape}")


def format_shape(shape: Sequence[int]) -> str:
    return "scalar" if len(shape) == 0 else "×".join(map(str, shape))
