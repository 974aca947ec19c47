"""Sign and curvature lattices, and the one DCP composition rule.

An atom declares only local facts: the sign of its value given its arguments' signs, the
curvature of the function itself, and its monotonicity in each argument. ``compose`` turns
those facts and the arguments' curvatures into the curvature of the composition:

    f(g_1, ..., g_k) is convex  if f is convex and, for every i, g_i is affine, or g_i is
    convex and f is increasing in argument i, or g_i is concave and f is decreasing in it;
    concave symmetrically (swap convex and concave).

DPP (disciplined parametrized programming) is the same analysis with parameters treated as
affine instead of constant; see ``Expression.analysis``.
"""
from __future__ import annotations

import enum
from typing import Iterable, Sequence


class Sign(enum.Enum):
    """Elementwise sign of an expression's value."""

    ZERO = "zero"
    NONNEG = "nonnegative"
    NONPOS = "nonpositive"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, nonneg: bool, nonpos: bool) -> "Sign":
        if nonneg and nonpos:
            return cls.ZERO
        if nonneg:
            return cls.NONNEG
        if nonpos:
            return cls.NONPOS
        return cls.UNKNOWN

    @property
    def is_nonneg(self) -> bool:
        return self in (Sign.ZERO, Sign.NONNEG)

    @property
    def is_nonpos(self) -> bool:
        return self in (Sign.ZERO, Sign.NONPOS)

    def __neg__(self) -> "Sign":
        return Sign.of(self.is_nonpos, self.is_nonneg)


def sum_sign(signs: Iterable[Sign]) -> Sign:
    """Sign of a sum: nonnegative if every term is, nonpositive if every term is."""
    signs = list(signs)
    return Sign.of(all(s.is_nonneg for s in signs), all(s.is_nonpos for s in signs))


def mul_sign(a: Sign, b: Sign) -> Sign:
    """Sign of a product: zero if a factor is zero, else the rule of signs."""
    zero = a is Sign.ZERO or b is Sign.ZERO
    nonneg = zero or (a.is_nonneg and b.is_nonneg) or (a.is_nonpos and b.is_nonpos)
    nonpos = zero or (a.is_nonneg and b.is_nonpos) or (a.is_nonpos and b.is_nonneg)
    return Sign.of(nonneg, nonpos)


class Curvature(enum.Enum):
    """DCP curvature. CONSTANT ⊂ AFFINE ⊂ CONVEX ∩ CONCAVE."""

    CONSTANT = "constant"
    AFFINE = "affine"
    CONVEX = "convex"
    CONCAVE = "concave"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, convex: bool, concave: bool) -> "Curvature":
        if convex and concave:
            return cls.AFFINE
        if convex:
            return cls.CONVEX
        if concave:
            return cls.CONCAVE
        return cls.UNKNOWN

    @property
    def is_affine(self) -> bool:
        return self in (Curvature.CONSTANT, Curvature.AFFINE)

    @property
    def is_convex(self) -> bool:
        return self is not Curvature.CONCAVE and self is not Curvature.UNKNOWN

    @property
    def is_concave(self) -> bool:
        return self is not Curvature.CONVEX and self is not Curvature.UNKNOWN

    @property
    def is_dcp(self) -> bool:
        return self is not Curvature.UNKNOWN


class Monotonicity(enum.Enum):
    """How a function varies with one of its arguments (given the arguments' signs)."""

    INCREASING = "increasing"
    DECREASING = "decreasing"
    CONSTANT = "constant"          # both nondecreasing and nonincreasing, e.g. 0 * x
    NONMONOTONE = "nonmonotone"

    @classmethod
    def of(cls, incr: bool, decr: bool) -> "Monotonicity":
        if incr and decr:
            return cls.CONSTANT
        if incr:
            return cls.INCREASING
        if decr:
            return cls.DECREASING
        return cls.NONMONOTONE

    @property
    def is_incr(self) -> bool:
        return self in (Monotonicity.INCREASING, Monotonicity.CONSTANT)

    @property
    def is_decr(self) -> bool:
        return self in (Monotonicity.DECREASING, Monotonicity.CONSTANT)


def arg_keeps_convexity(arg: Curvature, mono: Monotonicity) -> bool:
    """Whether a convex function stays convex when this argument is plugged in."""
    return arg.is_affine or (arg.is_convex and mono.is_incr) or (arg.is_concave and mono.is_decr)


def arg_keeps_concavity(arg: Curvature, mono: Monotonicity) -> bool:
    """Whether a concave function stays concave when this argument is plugged in."""
    return arg.is_affine or (arg.is_concave and mono.is_incr) or (arg.is_convex and mono.is_decr)


def compose(atom: Curvature, args: Sequence[Curvature], monos: Sequence[Monotonicity]) -> Curvature:
    """The DCP composition rule: curvature of f(g_1..g_k) for a non-constant composition.

    ``atom`` is the curvature of f itself (AFFINE, CONVEX, CONCAVE or UNKNOWN).
    """
    convex = atom.is_convex and all(map(arg_keeps_convexity, args, monos))
    concave = atom.is_concave and all(map(arg_keeps_concavity, args, monos))
    return Curvature.of(convex, concave)
