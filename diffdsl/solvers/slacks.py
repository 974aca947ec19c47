"""Slack substitution: square groups of inequality rows become bounds on their slacks.

For nonnegative rows R_g whose entries lie on variables V_g only, with |R_g| = |V_g| = k,
a constant invertible block C_g = A[R_g, V_g], no other inequality row on V_g and no
quadratic term on V_g, the change of variables to the rows' slacks u_g = b_R − C_g x_V,

    x_V = C_g⁻¹ (b_R − u_g),

turns the group's rows into bounds u_g ≥ 0 (row −u_g + s = 0), and the program stays one
of the same kind: A[:, V_g] → −A[:, V_g] C_g⁻¹, b → b − A[:, V_g] C_g⁻¹ b_R (the group's own
rows: −I and 0), c_V → −C_g⁻ᵀ c_V; y and s are unchanged. The lasso's ‖x‖₁ ≤ Σt rows
x_i − t_i ≤ 0, −x_i − t_i ≤ 0 are such pairs (u, v) = (t_i − x_i, t_i + x_i): after the
substitution every inequality row of the lasso bounds one variable, so the native method
eliminates them in closed form (``ipm.BoundSpace``) and its Newton systems have the
equality rows' size.

``SlackSubstitution.of(program)`` finds the groups (statically, from the patterns);
``data`` maps a batch's dense data; ``primal`` maps a solution back;
``SubstitutedDerivative`` answers for the original data. NumPy and PyTorch arrays (the
substitution writes into copies).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from . import ipm

MAX_GROUP = 4          # rows per group
MAX_CONDITION = 1e8    # of C_g


class SlackSubstitution:
    """The groups, by size k: ``groups[k] = (R (G, k), V (G, k), C (G, k, k), C⁻¹)``."""

    def __init__(self, groups: dict, n: int, m: int, bounds, columns) -> None:
        self.groups, self.n, self.m = groups, n, m
        #: per group size, the flat places (row·n + column) in A of the blocks A[touching, V]
        #: and of the groups' own entries A[R, V]
        self.places = {size: ((touching[:, None, None] * n + V[None]).ravel(),
                              (R[:, :, None] * n + V[:, None, :]).ravel())
                       for size, (R, V, touching, _, _) in groups.items()}
        #: the substituted program's bound rows and their variables (``ipm.bound_rows``)
        self.bounds = bounds
        #: its other rows' column classes (``ipm.ColumnClasses``)
        self.columns = columns

    @classmethod
    def of(cls, program) -> "SlackSubstitution | None":
        """The substitution of ``program`` (a ``ParamConeProgram``), or None if it has no
        such group."""
        cones, A = program.cones, program.A
        rows, cols = A.indices, A.columns
        zero, k = cones.zero, cones.zero + cones.nonneg
        inequality = rows >= zero
        constant = np.diff(A.T[:, 1:].tocsr().indptr) == 0
        per_row = defaultdict(list)
        for r, j in zip(rows[inequality], cols[inequality], strict=True):
            per_row[int(r)].append(int(j))
        touches = np.bincount(cols[inequality], minlength=program.n)   # inequality entries
        quadratic = np.zeros(program.n, bool)
        quadratic[program.P.indices] = quadratic[program.P.columns] = True
        candidates = defaultdict(list)
        for r, vs in per_row.items():
            if zero <= r < k and 2 <= len(vs) <= MAX_GROUP:
                candidates[tuple(sorted(vs))].append(r)
        entry = {(int(r), int(j)): e for e, (r, j) in enumerate(zip(rows, cols, strict=True))}
        values = A.T[:, 0].toarray()[:, 0]
        found = defaultdict(list)
        for vs, rs in candidates.items():
            if (len(rs) != len(vs) or touches[list(vs)].sum() != sum(map(len, (per_row[r]
                                                                              for r in rs)))
                    or quadratic[list(vs)].any()):
                continue
            at = [[entry.get((r, j)) for j in vs] for r in rs]
            if any(e is not None and not constant[e] for row in at for e in row):
                continue
            C = np.array([[0.0 if e is None else values[e] for e in row] for row in at])
            if np.linalg.cond(C) > MAX_CONDITION:
                continue
            found[len(vs)].append((rs, vs, C))
        if not found:
            return None
        groups, rows_of = {}, np.zeros((program.m, program.n), bool)
        rows_of[rows, cols] = True
        own = np.concatenate([np.ravel([it[0] for it in items]) for items in found.values()])
        rows_of[own] = False
        for size, items in found.items():
            R, V, C = (np.array([it[i] for it in items]) for i in range(3))
            touching = np.flatnonzero(rows_of[:, V.ravel()].any(1))   # other rows on V
            groups[size] = (R, V, touching, C, np.linalg.inv(C))
        # the substituted pattern: the groups' rows hold −1 on their own slack; a row that
        # touched a group's variables now touches all of them
        pattern = rows_of.copy()
        for R, V, touching, _, _ in groups.values():
            pattern[np.ix_(touching, V.ravel())] = True
            pattern[R.ravel(), V.ravel()] = True
        bounds = ipm.bound_rows(*np.nonzero(pattern), cones)
        # a group whose other rows touch one of its variables (x_i, not t_i) has slack
        # columns that are multiples of one another: the bound space's classes
        lead, scale = np.arange(program.n), np.ones(program.n)
        for _, V, _, _, Cinv in groups.values():
            used = rows_of[:, V].any(0)                                   # (G, k)
            for g in np.flatnonzero(used.sum(1) == 1):
                weights = Cinv[g, used[g].argmax()]      # the slacks' coefficients on it
                first = np.abs(weights).argmax()
                lead[V[g]] = V[g, first]
                scale[V[g]] = weights / weights[first]
        others = np.setdiff1d(np.arange(program.m), bounds[0])
        columns = ipm.ColumnClasses.of(lead, scale, pattern[others])
        return cls(groups, program.n, program.m, bounds, columns)

    # data ----------------------------------------------------------------------------
    def data(self, ops, P, c, A, b, overwrite: bool = False):
        """The substituted batch (P, c, A, b) — P unchanged (it is zero on the groups), A
        written in place with ``overwrite`` — and the original A's blocks on the groups'
        variables (``SubstitutedDerivative`` needs them)."""
        c = _copy(ops, c)
        A = ops.contiguous(A if overwrite else _copy(ops, A))
        flat = A.reshape(A.shape[0], -1)                    # a view of A's memory
        blocks = [ops.take(flat, block).reshape((-1, touching.size) + V.shape)  # (·, rows, G, k)
                  for (block, _), (_, V, touching, _, _) in zip(self.places.values(),
                                                                self.groups.values(),
                                                                strict=True)]
        b, _ = self.shift_rows(ops, b, blocks)
        for (_, V, _, _, Cinv), AV, (block, own) in zip(
                self._constants(ops, c), blocks, self.places.values(), strict=True):
            c[:, V] = -_apply(_t(Cinv), c[:, V])
            flat[:, block] = -_apply(_t(Cinv), AV).reshape(AV.shape[0], -1)
            flat[:, own] = -ops.constant(np.tile(np.eye(V.shape[1]).ravel(), len(V)), c)
        return P, c, A, b, blocks

    def shift_rows(self, ops, v, blocks):
        """(v − A Z v_R, Z v_R) for v on the rows: Z v_R is C_g⁻¹ v_{R_g} on the groups'
        variables (0 elsewhere), and v − A Z v_R is 0 on the groups' own rows (C C⁻¹ = I).
        ``blocks``: A on the groups' variables (``data``)."""
        v = _copy(ops, v)
        shift = ops.zeros((v.shape[0], self.n), v)
        for (R, V, touching, _, Cinv), AV in zip(self._constants(ops, v), blocks,
                                                  strict=True):
            z = _apply(Cinv, v[:, R])                            # (B, G, k)
            shift[:, V] = z
            v[:, touching] = v[:, touching] - ipm._mv(_flat(AV), _flat(z))
            v[:, R] = 0.0
        return v, shift

    def primal(self, ops, x, b):
        """x = T x' + C⁻¹ b_R on the groups' variables (x' of the substituted program)."""
        x = _copy(ops, x)
        for R, V, _, _, Cinv in self._constants(ops, x):
            x[:, V] = _apply(Cinv, b[:, R] - x[:, V])
        return x

    def substituted(self, ops, x, b):
        """The inverse of ``primal``: x' = b_R − C x_V on the groups' variables."""
        x = _copy(ops, x)
        for R, V, _, C, _ in self._constants(ops, x):
            x[:, V] = b[:, R] - _apply(C, x[:, V])
        return x

    def _constants(self, ops, like):
        for R, V, touching, C, Cinv in self.groups.values():
            yield R, V, touching, ops.constant(C, like), ops.constant(Cinv, like)


class SubstitutedDerivative:
    """An ``ipm.Derivative`` of the substituted program, answering for the original data
    (the same ``x``, ``y``, ``usable``, ``exact``, ``adjoint``, ``vjp`` and ``jvp``).
    With x = T x' + Z b_R (T: −C_g⁻¹ on V_g, the identity elsewhere; Z places C_g⁻¹ b_{R_g}
    on V_g), c' = Tᵀc and b' = b − A Z b_R:

        w_x = T w_x',   w_v = w_v' + Zᵀ(g_x − Aᵀ w_v') on the groups' rows,

    where (w_x', w_v') is the substituted adjoint of (Tᵀ g_x, g_y); A and P's gradients
    follow from (w_x, w_v) as for any program (``ipm.data_gradients``). Forward mode maps
    the tangents' effective (dc, db) the same way. ``blocks``: the original A on the
    groups' variables (from ``SlackSubstitution.data``)."""

    def __init__(self, ops, substitution: SlackSubstitution, derivative, blocks, b) -> None:
        self.ops, self.sub, self.derivative, self.blocks = ops, substitution, derivative, blocks
        self.x = substitution.primal(ops, derivative.x, b)

    @property
    def y(self):
        return self.derivative.y

    @property
    def usable(self):
        return self.derivative.usable

    @property
    def exact(self):
        return self.derivative.exact

    def _groups(self, like):
        return zip(self.sub._constants(self.ops, like), self.blocks, strict=True)

    def _T(self, v, transpose: bool = False):
        """T v (or Tᵀ v): −C⁻¹ v_V (−C⁻ᵀ v_V) on the groups' variables."""
        v = _copy(self.ops, v)
        for _, V, _, _, Cinv in self.sub._constants(self.ops, v):
            v[:, V] = -_apply(_t(Cinv) if transpose else Cinv, v[:, V])
        return v

    def adjoint(self, gx, gy):
        wx, wv = self.derivative.adjoint(self._T(gx, transpose=True), gy)
        out = _copy(self.ops, wv)
        for (R, V, touching, C, Cinv), AV in self._groups(wv):
            # (Aᵀ w_v')_V: the other rows' blocks and the group's own C
            At_wv = (ipm._mv_t(_flat(AV), wv[:, touching]).reshape((-1,) + V.shape)
                     + _apply(_t(C), wv[:, R]))
            out[:, R] = out[:, R] + _apply(_t(Cinv), gx[:, V] - At_wv)
        return self._T(wx), out

    def vjp(self, gx, gy):
        return ipm.data_gradients(self.x, self.y, *self.adjoint(gx, gy))

    def jvp(self, dP, dc, dA, db):
        ops, d, n = self.ops, self.derivative, self.sub.n
        dc = ipm._mv(dP, self.x) + ipm._mv_t(dA, self.y) + dc
        db, shift = self.sub.shift_rows(ops, db - ipm._mv(dA, self.x), self.blocks)
        dz = -d.solve(ops.cat([self._T(dc, transpose=True), db], 1))
        dv = dz[:, n:]
        dy = d.D(dv)
        return self._T(dz[:, :n]) + shift, dy, dy - dv


def _copy(ops, a):
    return a.clone() if ops.name == "torch" else np.array(a)


def _apply(M, v):
    """M_g v_g per group: M (G, k, k), v (..., G, k) → (..., G, k), as G matrix products
    over the leading axes (an elementwise form was 10× slower in NumPy)."""
    G, k = M.shape[0], M.shape[-1]
    X = v.reshape(-1, G, k).swapaxes(0, 1)                          # (G, N, k)
    return (X @ _t(M)).swapaxes(0, 1).reshape(v.shape)


def _flat(X):
    """X (B, ..., G, k) with its last two axes as one."""
    return X.reshape(X.shape[:-2] + (-1,))


def _t(M):
    return M.swapaxes(-1, -2)
