"""Leaves of the expression tree: Variable, Parameter, Constant.

Attributes follow CVXPY: ``nonneg``, ``nonpos``, ``symmetric``, ``PSD`` (and ``NSD`` for
variables). Setting ``Parameter.value`` validates shape, finiteness and attributes.
"""
from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp

from ..errors import ParameterValueError, ShapeError
from .dcp import Curvature, Sign
from .expression import Expression, finalize_value, is_number
from .shapes import as_shape, format_shape

#: Tolerance for symmetry and semidefiniteness checks of data (CVXPY uses the same).
EIGVAL_TOL = 1e-10
_ids = itertools.count(1)


class Leaf(Expression):
    """A leaf with a shape and declared attributes."""

    _attribute_names: tuple[str, ...] = ()
    _default_prefix = "leaf"

    def __init__(self, shape=(), name: str | None = None, **attributes: bool) -> None:
        self.shape = as_shape(shape)
        self.id = next(_ids)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self.name = name if name is not None else f"{self._default_prefix}{self.id}"
        unknown = set(attributes) - set(self._attribute_names)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown attribute(s) {sorted(unknown)}; "
                            f"allowed: {', '.join(self._attribute_names)}")
        self.attributes = {k: bool(attributes.get(k, False)) for k in self._attribute_names}
        self._check_attributes()
        self._value = None

    def _check_attributes(self) -> None:
        a = self.attributes
        if a.get("nonneg") and a.get("nonpos"):
            raise ValueError(f"{self.name}: nonneg and nonpos together fix the leaf at zero; "
                             "use a Constant 0 instead")
        if a.get("PSD") and a.get("NSD"):
            raise ValueError(f"{self.name}: PSD and NSD cannot both be set")
        for key in ("symmetric", "PSD", "NSD"):
            if a.get(key) and (len(self.shape) != 2 or self.shape[0] != self.shape[1]):
                raise ShapeError(f"{self.name}: {key}=True needs a square 2-d shape, "
                                 f"got {self.shape}")

    # analysis ---------------------------------------------------------------
    def _sign(self) -> Sign:
        return Sign.of(self.attributes.get("nonneg", False), self.attributes.get("nonpos", False))

    def is_psd(self) -> bool:
        return self.attributes.get("PSD", False)

    def is_nsd(self) -> bool:
        return self.attributes.get("NSD", False)

    def is_symmetric(self) -> bool:
        a = self.attributes
        return (super().is_symmetric() or a.get("symmetric", False) or a.get("PSD", False)
                or a.get("NSD", False))

    def format(self) -> str:
        return self.name

    def __repr__(self) -> str:
        attrs = "".join(f", {k}=True" for k, v in self.attributes.items() if v)
        return f"{type(self).__name__}({self.shape}, name={self.name!r}{attrs})"

    # values ------------------------------------------------------------------
    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, val) -> None:
        self._value = None if val is None else self._validated(val)

    def _validated(self, val):
        """Check a proposed value against shape, finiteness and attributes."""
        what = f"{type(self).__name__} {self.name!r}"
        if sp.issparse(val):
            val = val.toarray()
        try:
            arr = np.asarray(val, dtype=float)
        except (TypeError, ValueError):
            raise ParameterValueError(
                f"{what}: value must be real numbers, got {type(val).__name__}") from None
        if np.iscomplexobj(np.asarray(val)):
            raise ParameterValueError(f"{what}: value must be real, got complex entries")
        if arr.shape != self.shape:
            if arr.size == 1 and self.size == 1:
                arr = arr.reshape(self.shape)
            else:
                raise ParameterValueError(f"{what}: value has shape {arr.shape}, "
                                          f"expected {self.shape}")
        self.check_batch(arr.reshape((1,) + self.shape))
        return finalize_value(arr, self.shape)

    def check_batch(self, arr: np.ndarray) -> None:
        """Check finiteness and attributes of a stack of values, shape (B, *self.shape)."""
        what = f"{type(self).__name__} {self.name!r}"
        bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
        if bad.any():
            raise ParameterValueError(f"{what}: value contains NaN or Inf"
                                      + batch_note(bad, len(arr)))
        a = self.attributes
        flat = arr.reshape(len(arr), -1)
        if a.get("nonneg") and (flat < 0).any():
            raise ParameterValueError(f"{what}: declared nonneg, but the value has negative "
                                      f"entries (min {flat.min():g})"
                                      + batch_note((flat < 0).any(axis=1), len(arr)))
        if a.get("nonpos") and (flat > 0).any():
            raise ParameterValueError(f"{what}: declared nonpos, but the value has positive "
                                      f"entries (max {flat.max():g})"
                                      + batch_note((flat > 0).any(axis=1), len(arr)))
        if self.is_symmetric() and self.ndim == 2:
            asym = np.abs(arr - np.swapaxes(arr, 1, 2)).reshape(len(arr), -1).max(axis=1)
            if (asym > EIGVAL_TOL).any():
                raise ParameterValueError(f"{what}: declared symmetric/PSD/NSD, but the value "
                                          "is not symmetric" + batch_note(asym > EIGVAL_TOL,
                                                                          len(arr)))
        for key, sign, word in (("PSD", 1, "negative"), ("NSD", -1, "positive")):
            if a.get(key):
                eig = sign * np.linalg.eigvalsh(arr)
                scale = np.maximum(1.0, np.abs(arr).reshape(len(arr), -1).max(axis=1))
                bad = eig.min(axis=1) < -EIGVAL_TOL * scale
                if bad.any():
                    raise ParameterValueError(
                        f"{what}: declared {key}, but the value has a {word} eigenvalue "
                        f"({sign * eig.min():g})" + batch_note(bad, len(arr)))


def batch_note(bad: np.ndarray, batch: int) -> str:
    """' (batch elements [...])' when checking a real batch, else ''."""
    if batch == 1:
        return ""
    return f" (batch elements {np.flatnonzero(bad)[:10].tolist()})"


class Variable(Leaf):
    """An optimization variable.

    ``Variable(shape=(), name=None, *, nonneg=False, nonpos=False, symmetric=False,
    PSD=False, NSD=False)``. Its ``value`` is set by a solve.
    """

    _attribute_names = ("nonneg", "nonpos", "symmetric", "PSD", "NSD")
    _default_prefix = "x"

    def __init__(self, shape=(), name: str | None = None, *, nonneg: bool = False,
                 nonpos: bool = False, symmetric: bool = False, PSD: bool = False,
                 NSD: bool = False) -> None:
        super().__init__(shape, name, nonneg=nonneg, nonpos=nonpos, symmetric=symmetric,
                         PSD=PSD, NSD=NSD)

    def _curvature(self, dpp: bool) -> Curvature:
        return Curvature.AFFINE if self.size else Curvature.CONSTANT


class Parameter(Leaf):
    """A problem parameter θ: constant for DCP, affine for DPP.

    ``Parameter(shape=(), name=None, *, value=None, nonneg=False, nonpos=False,
    symmetric=False, PSD=False)``.
    """

    _attribute_names = ("nonneg", "nonpos", "symmetric", "PSD")
    _default_prefix = "param"

    def __init__(self, shape=(), name: str | None = None, *, value=None, nonneg: bool = False,
                 nonpos: bool = False, symmetric: bool = False, PSD: bool = False) -> None:
        super().__init__(shape, name, nonneg=nonneg, nonpos=nonpos, symmetric=symmetric,
                         PSD=PSD)
        self.value = value

    def _curvature(self, dpp: bool) -> Curvature:
        return Curvature.AFFINE if dpp and self.size else Curvature.CONSTANT


class Constant(Leaf):
    """A fixed numeric value: a Python number, a NumPy array or a scipy.sparse matrix.

    Its sign and semidefiniteness are read off the data.
    """

    _default_prefix = "const"

    def __init__(self, value, name: str | None = None) -> None:
        if isinstance(value, Expression):
            raise TypeError("Constant() takes numeric data, not an expression")
        if sp.issparse(value):
            data = sp.csc_matrix(value, dtype=float)
        else:
            array_like = isinstance(value, (list, tuple, np.ndarray, np.generic))
            if isinstance(value, bool) or not (is_number(value) or array_like):
                raise TypeError(f"cannot use {type(value).__name__} as a constant; expected a "
                                "number, a NumPy array or a scipy.sparse matrix")
            arr = np.asarray(value)
            if np.iscomplexobj(arr):
                raise TypeError("complex constants are not supported (real arithmetic only)")
            try:
                data = arr.astype(float)
            except (TypeError, ValueError):
                raise TypeError(f"constant data must be numeric, got dtype {arr.dtype}") from None
        super().__init__(data.shape, name)
        if not sp.issparse(data) and not np.all(np.isfinite(data)):
            raise ValueError("constants must be finite (no NaN or Inf)")
        self._value = data

    @property
    def value(self):
        return self._value

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self._value)

    def _dense(self) -> np.ndarray:
        return self._value.toarray() if self.is_sparse else self._value

    def _curvature(self, dpp: bool) -> Curvature:
        return Curvature.CONSTANT

    def _sign(self) -> Sign:
        data = self._value.data if self.is_sparse else self._value
        if self.is_sparse and self._value.nnz < self.size:
            data = np.append(data, 0.0)
        return Sign.of(bool(np.all(data >= 0)), bool(np.all(data <= 0)))

    def _eigenvalues(self):
        if self.ndim != 2 or self.shape[0] != self.shape[1]:
            return None
        m = self._dense()
        if not np.allclose(m, m.T, atol=EIGVAL_TOL, rtol=0):
            return None
        return np.linalg.eigvalsh(m)

    def is_psd(self) -> bool:
        if self.ndim == 0:
            return self.is_nonneg()
        eig = self._eigenvalues()
        return eig is not None and eig.min() >= -EIGVAL_TOL

    def is_nsd(self) -> bool:
        if self.ndim == 0:
            return self.is_nonpos()
        eig = self._eigenvalues()
        return eig is not None and eig.max() <= EIGVAL_TOL

    def is_symmetric(self) -> bool:
        return self.size == 1 and self.ndim != 1 or self._eigenvalues() is not None

    def format(self) -> str:
        if self.name != f"{self._default_prefix}{self.id}":
            return self.name
        if self.ndim == 0:
            return f"{float(self._value):g}"
        if self.is_sparse or self.size > 6:
            return f"[{format_shape(self.shape)} {'sparse ' if self.is_sparse else ''}data]"
        text = np.array2string(self._value, separator=", ", max_line_width=10**6,
                               formatter={"float_kind": lambda v: f"{v:g}"})
        return " ".join(text.split())

    def __repr__(self) -> str:
        return f"Constant({self.format()})"

