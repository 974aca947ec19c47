"""A generator of random expressions over every atom, shape and sign class.

``Corpus(seed).expression()`` returns a random diffdsl expression of depth ≤ ``max_depth``
built from a small pool of leaves (shared, so products like x * x and p * q occur) and
random constants of every sign class. Shapes: scalar, (3,), (2, 3) and (3, 3).
"""
from __future__ import annotations

import numpy as np

import diffdsl as dd

SHAPES = [(), (3,), (2, 3), (3, 3)]


class Corpus:
    def __init__(self, seed: int, max_depth: int = 4) -> None:
        self.rng = np.random.default_rng(seed)
        self.max_depth = max_depth
        r = self.rng
        self.variables = {
            (): [dd.Variable(name="t"), dd.Variable(name="u", nonneg=True),
                 dd.Variable(name="w", nonpos=True)],
            (3,): [dd.Variable(3, name="x"), dd.Variable(3, name="y", nonneg=True),
                   dd.Variable(3, name="v", nonpos=True)],
            (2, 3): [dd.Variable((2, 3), name="X"), dd.Variable((2, 3), name="Z", nonneg=True)],
            (3, 3): [dd.Variable((3, 3), name="S", symmetric=True),
                     dd.Variable((3, 3), name="Q", PSD=True), dd.Variable((3, 3), name="M")],
        }
        B = r.normal(size=(3, 3))
        self.parameters = {
            (): [dd.Parameter(name="p", nonneg=True, value=1.3), dd.Parameter(name="q", value=-0.7),
                 dd.Parameter(name="n", nonpos=True, value=-2.0)],
            (3,): [dd.Parameter(3, name="a", value=r.normal(size=3)),
                   dd.Parameter(3, name="b", nonneg=True, value=r.uniform(0, 2, 3))],
            (2, 3): [dd.Parameter((2, 3), name="G", value=r.normal(size=(2, 3)))],
            (3, 3): [dd.Parameter((3, 3), name="P", PSD=True, value=B @ B.T),
                     dd.Parameter((3, 3), name="R", value=r.normal(size=(3, 3)))],
        }
        self.all_leaves = [v for vs in self.variables.values() for v in vs]
        self.all_leaves += [p for ps in self.parameters.values() for p in ps]

    # leaves ------------------------------------------------------------------
    def constant(self, shape):
        r = self.rng
        kind = r.choice(["pos", "neg", "mixed", "zero", "psd", "nsd"] if shape == (3, 3)
                        else ["pos", "neg", "mixed", "zero"], p=None)
        if kind == "zero":
            return dd.Constant(np.zeros(shape))
        if kind in ("psd", "nsd"):
            B = r.normal(size=(3, 3))
            return dd.Constant((1 if kind == "psd" else -1) * B @ B.T)
        val = np.round(r.uniform(0.5, 2.0, size=shape), 2)
        if kind == "neg":
            val = -val
        elif kind == "mixed":
            val = val * r.choice([-1, 1], size=shape) if shape else -val
        return dd.Constant(val)

    def leaf(self, shape):
        kind = self.rng.choice(["var", "var", "param", "const"])
        pool = self.variables[shape] if kind == "var" else (
            self.parameters[shape] if kind == "param" else None)
        if pool is None:
            return self.constant(shape)
        return pool[self.rng.integers(len(pool))]

    def data(self, shape):
        """A constant or a parameter (data that may multiply variables)."""
        if self.rng.random() < 0.5 and shape in self.parameters:
            pool = self.parameters[shape]
            return pool[self.rng.integers(len(pool))]
        return self.constant(shape)

    # expressions -------------------------------------------------------------
    def expression(self, shape=None, depth=0):
        if shape is None:
            shape = SHAPES[self.rng.integers(len(SHAPES))]
        expr = self._expression(shape, depth)
        assert expr.shape == shape, (expr, shape)
        return expr

    def _expression(self, shape, depth):
        if depth >= self.max_depth or self.rng.random() < 0.15 + 0.12 * depth:
            return self.leaf(shape)
        builders = [self.elementwise, self.binary, self.scaled, self.affine_reshape]
        if shape == ():
            builders += [self.reduction] * 4 + [self.matrix_scalar, self.quadratic]
        if shape == (3,):
            builders += [self.matvec, self.axis_reduction, self.stack_or_diag]
        if shape == (2, 3):
            builders += [self.matvec, self.stack_or_diag]
        if shape == (3, 3):
            builders += [self.stack_or_diag]
        builder = builders[self.rng.integers(len(builders))]
        return builder(shape, depth + 1)

    def elementwise(self, shape, d):
        r = self.rng
        name = r.choice(["abs", "pos", "neg", "power", "sqrt", "square", "inv_pos", "exp", "log",
                         "log1p", "entr", "logistic", "huber"])
        x = self.expression(shape, d)
        if name == "power":
            return dd.power(x, float(r.choice([-1.5, -1, 0, 0.3, 0.5, 1, 2, 3, 4, 6])))
        if name == "huber":
            return dd.huber(x, float(r.choice([0.5, 1.0, 2.0])))
        return getattr(dd, name)(x)

    def binary(self, shape, d):
        r = self.rng
        op = r.choice(["+", "-", "*", "/", "maximum", "minimum", "kl_div", "rel_entr", "multiply"])
        other_shape = shape if r.random() < 0.7 else ()
        x, y = self.expression(shape, d), self.expression(other_shape, d)
        if r.random() < 0.5:
            x, y = y, x
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return dd.multiply(x, y) if x.ndim and y.ndim else x * y
        if op == "/":
            numerator = x if x.shape == shape else y
            return numerator / (self.data(()) if r.random() < 0.6 else self.expression((), d))
        return getattr(dd, op)(x, y)

    def scaled(self, shape, d):
        c = self.data(())
        x = self.expression(shape, d)
        return c * x if self.rng.random() < 0.5 else x * c

    def affine_reshape(self, shape, d):
        r = self.rng
        kind = r.choice(["index", "transpose", "reshape", "cumsum", "neg"])
        if kind == "transpose" and shape == (3, 3):
            return self.expression(shape, d).T
        if kind == "reshape" and shape:
            size = int(np.prod(shape))
            src = {3: [(3,)], 6: [(2, 3)], 9: [(3, 3)]}[size][0]
            return dd.reshape(self.expression(src, d), shape, order=str(r.choice(["F", "C"])))
        if kind == "cumsum" and shape:
            return dd.cumsum(self.expression(shape, d), axis=int(r.integers(len(shape))))
        if kind == "index":
            return self.indexed(shape, d)
        return -self.expression(shape, d)

    def indexed(self, shape, d):
        r = self.rng
        if shape == ():
            src = [(3,), (2, 3), (3, 3)][r.integers(3)]
            key = tuple(int(r.integers(n)) for n in src)
            return self.expression(src, d)[key if len(key) > 1 else key[0]]
        if shape == (3,):
            choice = r.integers(4)
            if choice == 0:
                return self.expression((3, 3), d)[:, int(r.integers(3))]
            if choice == 1:
                return self.expression((2, 3), d)[int(r.integers(2))]
            if choice == 2:
                return self.expression((3,), d)[np.array([2, 0, 1])]
            return self.expression((3, 3), d)[np.eye(3, dtype=bool)]
        if shape == (2, 3):
            return self.expression((3, 3), d)[0:2, :]
        return self.expression((3, 3), d)[::-1]

    def reduction(self, shape, d):
        r = self.rng
        src = [(3,), (2, 3), (3, 3)][r.integers(3)]
        x = self.expression(src, d)
        name = r.choice(["sum", "max", "min", "norm1", "norm2", "norm_inf", "pnorm", "sum_squares",
                         "log_sum_exp", "sum_largest", "sum_smallest", "geo_mean", "norm_fro",
                         "trace"])
        if name == "pnorm":
            return dd.pnorm(x, float(r.choice([3.0, 1.5, 0.5])))
        if name in ("sum_largest", "sum_smallest"):
            return getattr(dd, name)(x, 2)
        if name == "geo_mean":
            weights = [None, [1, 2, 0], [0, 1, 0]][r.integers(3)]
            return dd.geo_mean(self.expression((3,), d), weights)
        if name == "norm_fro":
            return dd.norm(x, "fro")
        if name == "trace":
            return dd.trace(self.expression((3, 3), d))
        return getattr(dd, name)(x)

    def axis_reduction(self, shape, d):
        r = self.rng
        name = r.choice(["sum", "max", "min", "norm1", "norm_inf", "log_sum_exp", "sum_squares",
                         "norm2"])
        x = self.expression((2, 3), d)
        return getattr(dd, name)(x, axis=0)

    def matrix_scalar(self, shape, d):
        r = self.rng
        name = r.choice(["lambda_max", "lambda_min", "log_det", "sigma_max", "normNuc", "norm2mat"])
        if name in ("sigma_max", "normNuc"):
            return getattr(dd, name)(self.expression([(2, 3), (3, 3)][r.integers(2)], d))
        if name == "norm2mat":
            return dd.norm(self.expression((2, 3), d), 2)
        return getattr(dd, name)(self.expression((3, 3), d))

    def quadratic(self, shape, d):
        r = self.rng
        if r.random() < 0.5:
            P = self.parameters[(3, 3)][0] if r.random() < 0.3 else self.constant((3, 3))
            P = P if P.is_symmetric() else dd.Constant(P.value + P.value.T)
            return dd.quad_form(self.expression((3,), d), P)
        y = self.expression((), d) if r.random() < 0.5 else self.data(())
        return dd.quad_over_lin(self.expression((3,), d), y)

    def matvec(self, shape, d):
        r = self.rng
        if shape == (3,):
            if r.random() < 0.5:
                return self.data((3, 3)) @ self.expression((3,), d)
            return self.expression((3, 3), d) @ self.expression((3,), d)
        return self.data((2, 3)) @ self.expression((3, 3), d)

    def stack_or_diag(self, shape, d):
        r = self.rng
        if shape == (3,):
            if r.random() < 0.5:
                return dd.diag(self.expression((3, 3), d))
            if r.random() < 0.5:
                return dd.hstack([self.expression((), d) for _ in range(3)])
            return dd.hstack([self.expression((3,), d)[0:1], self.expression((3,), d)[1:3]])
        if shape == (2, 3):
            if r.random() < 0.5:
                return dd.vstack([self.expression((3,), d), self.expression((3,), d)])
            row = dd.reshape(self.expression((3,), d), (1, 3), order="C")
            return dd.kron(self.constant((2, 1)), row)
        if r.random() < 0.5:
            return dd.diag(self.expression((3,), d))
        row = dd.reshape(self.expression((3,), d), (1, 3), order="F")
        return dd.bmat([[self.expression((2, 3), d)], [row]])

    # values ------------------------------------------------------------------
    def randomize_values(self):
        """Random values for every leaf, respecting attributes."""
        r = self.rng
        for v in self.all_leaves:
            val = r.normal(size=v.shape)
            if v.attributes.get("nonneg"):
                val = np.abs(val)
            if v.attributes.get("nonpos"):
                val = -np.abs(val)
            if v.attributes.get("symmetric"):
                val = (val + val.T) / 2
            if v.attributes.get("PSD"):
                val = val @ val.T
            v.value = val
