"""Base classes of inner nodes. An atom declares only local facts:

* ``shape_from_args()``  – its shape;
* ``sign_from_args()``   – the sign of its value given its arguments' signs;
* ``atom_curvature(dpp)`` – the curvature of the function itself (AFFINE, CONVEX, CONCAVE or
  UNKNOWN when it is neither for these arguments, e.g. a product of two variables);
* ``monotonicity(i)``    – how it varies with argument ``i`` (may depend on argument signs);
* ``domain()``           – constraints its arguments must satisfy;
* ``numeric(values)``    – its value.

Curvature of the composition comes from ``dcp.compose``, the single DCP rule.
"""
from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np

from ..errors import ShapeError
from ..expressions.dcp import Curvature, Monotonicity, Sign, compose
from ..expressions.expression import Expression, as_expression
from ..expressions.shapes import Shape, broadcast, normalize_axis, reduce_shape


class Atom(Expression):
    """A function applied to argument expressions."""

    name: ClassVar[str] = "atom"
    #: Curvature of the function itself when it does not depend on the arguments.
    curvature_of_atom: ClassVar[Curvature] = Curvature.UNKNOWN
    #: Monotonicity in every argument when it does not depend on argument signs.
    monotonicity_of_atom: ClassVar[Monotonicity] = Monotonicity.NONMONOTONE

    def __init__(self, *args) -> None:
        self.args = tuple(as_expression(a) for a in args)
        self.shape = self.shape_from_args()

    # local facts ----------------------------------------------------------
    def shape_from_args(self) -> Shape:
        raise NotImplementedError

    def sign_from_args(self) -> Sign:
        return Sign.UNKNOWN

    def atom_curvature(self, dpp: bool) -> Curvature:
        return self.curvature_of_atom

    def monotonicity(self, i: int) -> Monotonicity:
        return self.monotonicity_of_atom

    def domain(self) -> list:
        """Constraints the arguments must satisfy for the atom to be finite."""
        return []

    def _constant(self, dpp: bool) -> bool:
        return self.size == 0 or all(a.is_constant(dpp) for a in self.args)

    # analysis --------------------------------------------------------------
    def _sign(self) -> Sign:
        return self.sign_from_args()

    def _curvature(self, dpp: bool) -> Curvature:
        if self._constant(dpp):
            return Curvature.CONSTANT
        return compose(self.atom_curvature(dpp),
                       [a.curvature_in(dpp) for a in self.args],
                       [self.monotonicity(i) for i in range(len(self.args))])

    @property
    def label(self) -> str:
        """The name a user wrote (e.g. ``sqrt`` for ``power(x, 0.5)``)."""
        return self.name

    def why_unknown(self, dpp: bool) -> str | None:
        """When ``atom_curvature`` is UNKNOWN, why (overridden by atoms where it can be)."""
        return None

    # printing --------------------------------------------------------------
    def format_data(self) -> list[str]:
        """Non-expression arguments to print after the expression arguments."""
        return []

    def format(self) -> str:
        parts = [a.format() for a in self.args] + self.format_data()
        return f"{self.name}({', '.join(parts)})"


class Elementwise(Atom):
    """An atom applied entry by entry; its arguments broadcast like NumPy arrays."""

    def shape_from_args(self) -> Shape:
        return broadcast(*(a.shape for a in self.args), op=self.name)

    def broadcast_args(self, args):
        """The arguments' rows broadcast to the atom's shape."""
        from ..compile.context import broadcast_rows
        return [broadcast_rows(t, a.shape, self.shape) for t, a in zip(args, self.args,
                                                                        strict=True)]

    def is_symmetric(self) -> bool:
        return is_square(self) and all(a.is_symmetric() for a in self.args)


def is_square(expr: Expression) -> bool:
    return expr.ndim == 2 and expr.shape[0] == expr.shape[1]


def monotone_semidefinite(atom: Atom, psd: bool) -> bool:
    """PSD (or NSD) by monotonicity: each argument is PSD where the atom increases in it and
    NSD where it decreases (sound for sums, negation, transpose and scaling)."""
    if not is_square(atom):
        return False
    for i, arg in enumerate(atom.args):
        mono = atom.monotonicity(i)
        same, other = (arg.is_psd(), arg.is_nsd()) if psd else (arg.is_nsd(), arg.is_psd())
        if not ((mono.is_incr and same) or (mono.is_decr and other)):
            return False
    return True


class MonotoneSemidefinite:
    """Mixin: PSD/NSD/symmetric inferred from monotonicity in each argument."""

    def is_psd(self) -> bool:
        return monotone_semidefinite(self, True)

    def is_nsd(self) -> bool:
        return monotone_semidefinite(self, False)

    def is_symmetric(self) -> bool:
        return is_square(self) and all(a.is_symmetric() for a in self.args)


class AxisAtom(Atom):
    """A reduction of one argument over all entries (``axis=None``) or along an axis."""

    def __init__(self, x, axis: int | None = None, keepdims: bool = False) -> None:
        x = as_expression(x)
        self.axis = normalize_axis(axis, x.ndim)
        self.keepdims = bool(keepdims)
        super().__init__(x)

    def shape_from_args(self) -> Shape:
        return reduce_shape(self.args[0].shape, self.axis, self.keepdims)

    def format_data(self) -> list[str]:
        out = [] if self.axis is None else [f"axis={self.axis}"]
        return out + (["keepdims=True"] if self.keepdims else [])

    def output_index(self) -> np.ndarray:
        """For each C-order entry of the argument, the output entry it reduces into."""
        shape = self.args[0].shape
        if self.axis is None:
            return np.zeros(self.args[0].size, np.int64)
        coords = np.indices(shape).reshape(len(shape), -1)
        kept = [c for i, c in enumerate(coords) if i != self.axis]
        return np.ravel_multi_index(kept, [d for i, d in enumerate(shape) if i != self.axis])

    def lines(self, x):
        """The argument's rows regrouped so each output's entries are contiguous, and the
        length of each group."""
        order = np.argsort(self.output_index(), kind="stable")
        return x.select(order), self.args[0].size // max(self.size, 1)


def signed_monotonicity(arg: Expression) -> Monotonicity:
    """Increasing where the argument is nonnegative, decreasing where nonpositive
    (the monotonicity of |x|-like functions)."""
    return Monotonicity.of(arg.is_nonneg(), arg.is_nonpos())


def require_number(value, what: str) -> float:
    """A plain real number argument (not an expression)."""
    if isinstance(value, Expression):
        raise TypeError(f"{what} must be a number, not an expression ({value})")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a real number, got {value!r}") from None
    if not np.isfinite(out):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return out


def require_ndim(x: Expression, ndims: Sequence[int], what: str) -> None:
    if x.ndim not in ndims:
        raise ShapeError(f"{what} needs a {' or '.join(f'{d}-d' for d in ndims)} argument, "
                         f"got shape {x.shape}")
