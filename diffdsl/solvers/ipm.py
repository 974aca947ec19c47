"""The native solver's batched primal-dual interior-point method and its derivative, written
once against an array namespace (``diffdsl.solvers.arrays``: NumPy, PyTorch, JAX).

    minimize ½xᵀPx + cᵀx   s.t.   A_e x = b_e            (zero-cone rows),
                                  A_i x + s = b_i,  s ∈ K (nonnegative rows, then SOCs)

Mehrotra's predictor-corrector with Nesterov–Todd scaling W (Wz = W⁻¹s = λ; ``Scaling``):
every iteration factors the reduced KKT matrices

    [[P + GᵀG + δI, A_eᵀ], [A_e, −δI]],   G = W⁻¹A_i,

of the whole batch with one batched LU, shared by the predictor and the corrector — or,
when P is definite (``RowSpace``), the m × m matrices S + diag(δI, W²) with S = AP⁻¹Aᵀ
formed once per batch, or with bound rows eliminated (``BoundSpace``) the other rows'
A_oQ⁻¹A_oᵀ + H_o; these two are symmetric definite and factored by Cholesky where the
whole batch allows (``ops.factor_definite``). Elements converge independently;
converged ones stay put. Each element keeps its best iterate (relative primal and dual
residuals and relative gap).
``solve_polished`` stops the iterations early and finishes by Newton's method on the KKT map
(``Derivative.polish``).

The derivative is the implicit one of ``diffdsl.diff.hsde`` at τ = 1: with v = y − s and
D = DΠ_K*(v) (1 on zero rows, [v > 0] on nonnegative rows, the SOC projection's Jacobian
on cones),

    M = [[P, AᵀD], [−A, I − D]],   dx, dv = −M⁻¹ (dP x + dAᵀy + dc,  −dA x + db),  dy = D dv,

factored once for the batch and reused by every product; ``polish`` first takes Newton
steps on the same residual map so the point (and so the derivative) is exact to rounding.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from . import fused
from .gathers import ColumnGather

REGULARIZATION = 1e-10
INACCURATE = 1e-6   # relative error still reported optimal_inaccurate
STALL = 5           # iterations without progress after which an accurate-enough element stops
POLISH_STEPS = 8    # Newton steps of the polish at most (from the early hand-off ~2–4)
STALL_POLISH = 3    # polish steps without progress after which an element is given up
AMBIGUOUS = 1e-4    # a solver's complementary pair with min/max above this is not split
EXACT_KINK = 1e-9   # an exact point's relative distance to a projection's kink below which
                    # strict complementarity is taken to fail
TINY = 1e-300
HANDOFF = 1e-8       # error at which ``solve_polished`` stops the iterations to polish
EARLY_HANDOFF = 1e-2  # ... where the derivative's system is no larger than the iterations'
                      # (from 1e-4, with a three-step polish, the portfolio benchmark took
                      # one more iteration, SOCP batches a quarter more time: more of their
                      # elements continued; their polish now takes up to POLISH_STEPS)
REFINE_BELOW = 1e-5  # relative error below which the row-space Newton solves are refined
DENSE_CONE_ROWS = 128  # cone rows up to which the NT scaling is held as dense blocks
STEP = 0.999         # fraction of the way to the cone's boundary each step goes (0.99 took
                     # 15% more iterations over 682 random LPs/QPs/SOCPs, none more accurate)

#: status codes of the kernel (the adapter maps them to SolveStatus)
OPTIMAL, OPTIMAL_INACCURATE, ITERATION_LIMIT = 0, 1, 2


class Cones:
    """The cone layout (zero, nonneg, SOC sizes) as constants of one array namespace:
    per-cone sums of the SOC rows are products with Eᵀ, E the (rows, cones) membership
    matrix, and per-cone values go back onto their rows by gathers (no scatter, so it runs
    under jit and vmap)."""

    def __init__(self, ops, zero: int, nonneg: int, soc: tuple[int, ...], like=None) -> None:
        self.ops, self.zero, self.nonneg, self.soc = ops, int(zero), int(nonneg), tuple(soc)
        mq, K = sum(self.soc), len(self.soc)
        E = np.zeros((mq, K))
        E[np.arange(mq), np.repeat(np.arange(K), self.soc)] = 1.0
        head = np.zeros(mq)
        head[(np.cumsum(self.soc) - np.asarray(self.soc, int)).astype(int)] = 1.0
        self.has_soc = K > 0
        self.ET = ops.constant(E.T, like)
        self.head = ops.constant(head[:, None], like)           # (mq, 1)
        self.tail = ops.constant(1 - head[:, None], like)
        self.J = ops.constant(2 * head[:, None] - 1, like)      # diag(1, −I) per cone
        self.block_mask = ops.constant(E @ E.T, like)           # block-diagonal pattern
        self.signs = ops.constant(np.outer(2 * head - 1, 2 * head - 1), like)   # J 1 1ᵀ J
        self.J_eye = ops.constant(np.diag(2 * head - 1), like)
        # each cone row's cone, and its cone's head row (spread and head values as gathers)
        cone_of_row = np.repeat(np.arange(K), self.soc)
        self.cone_of_row = ops.index(cone_of_row, like)
        self.head_of_row = ops.index(np.flatnonzero(head)[cone_of_row], like)
        self.degree = self.nonneg + K
        # compiled loops for the cone algebra on NumPy arrays (numba, where installed)
        self.kernels = fused.Kernels(self.nonneg, self.soc) if ops.compiled_loops() else None

    @classmethod
    def of(cls, ops, dims, like=None) -> "Cones":
        return cls(ops, dims.zero, dims.nonneg, dims.soc, like)

    # rows of an inequality vector (B, mi, k): nonnegative part, SOC part ---------------
    def split(self, X):
        return X[:, :self.nonneg], X[:, self.nonneg:]

    def join(self, linear, cones):
        if not self.has_soc:
            return linear
        return self.ops.cat([linear, cones], 1) if self.nonneg else cones

    def seg(self, X):
        """Per cone sums of the SOC rows: (B, mq, k) → (B, K, k)."""
        return self.ET @ X

    def spread(self, S):
        """Per cone values back onto their rows: (B, K, k) → (B, mq, k) — with one cone,
        S itself, (B, 1, k), which broadcasts over its rows."""
        return S if len(self.soc) == 1 else self.ops.take(S, self.cone_of_row)

    def heads(self, X):
        """Each row's cone's head entry: (B, mq, k) → (B, mq, k) (with one cone, (B, 1, k),
        broadcasting as ``spread``'s)."""
        return X[:, :1] if len(self.soc) == 1 else self.ops.take(X, self.head_of_row)

    # Jordan algebra on inequality vectors (B, mi) ---------------------------------------
    def identity(self, like):
        B = like.shape[0]
        return self.join(self.ops.full((B, self.nonneg), 1.0, like),
                         self.ops.full((B, 1), 1.0, like) * self.head[:, 0])

    def circ(self, u, v):
        """u ∘ v: u·v on nonnegative rows; (uᵀv, u₀v₁ + v₀u₁) on a cone."""
        if not self.has_soc:
            return u * v
        if self.kernels is not None:
            return self.kernels.circ(u, v)
        (ul, uq), (vl, vq) = self.split(u), self.split(v)
        uq, vq = uq[..., None], vq[..., None]
        cone = self.head * self.spread(self.seg(uq * vq)) + self.tail * (
            self.heads(uq) * vq + self.heads(vq) * uq)
        return self.join(ul * vl, cone[..., 0])

    def inv_circ(self, lam, v):
        """λ \\ v, the x with λ ∘ x = v (λ in the cone's interior)."""
        if not self.has_soc:
            return v / lam
        if self.kernels is not None:
            return self.kernels.inv_circ(lam, v)
        (ll, lq), (vl, vq) = self.split(lam), self.split(v)
        lq, vq = lq[..., None], vq[..., None]
        Jl = self.J * lq
        det = self.ops.maximum(self.seg(Jl * lq), TINY)
        x0 = self.spread(self.seg(Jl * vq) / det)
        cone = self.head * x0 + self.tail * (vq - x0 * lq) / self.heads(lq)
        return self.join(vl / ll, cone[..., 0])

    def min_eigenvalue(self, u):
        """Per element, the smallest of u's entries on nonnegative rows and of t − ‖x̄‖ on
        each cone (negative: u is outside K)."""
        ops = self.ops
        ul, uq = self.split(u)
        low = ops.amin(ul, 1)
        if self.has_soc:
            uq = uq[..., None]
            t = self.seg(self.head * uq)
            tail = ops.sqrt(self.seg((1 - self.head) * uq * uq))
            low = ops.minimum(low, ops.amin((t - tail)[..., 0], 1))
        return low

    def max_step(self, u, du):
        """Per element, the largest α with u + α du ∈ K, for u in K's interior (1/TINY if
        the ray stays inside): 1/max(−du/u) over nonnegative rows; on a cone, the first
        root of (u + α du)ᵀJ(u + α du) = 0 where the ray crosses it."""
        if self.kernels is not None:
            return self.kernels.max_step(u, du)
        ops = self.ops
        (ul, uq), (dl, dq) = self.split(u), self.split(du)
        worst = ops.amin(dl / ops.maximum(ul, TINY), 1)        # the fastest relative fall
        alpha = -1.0 / ops.minimum(worst, -TINY)
        if self.has_soc:
            uq, dq = uq[..., None], dq[..., None]
            Jd = self.J * dq
            a, b, c = self.seg(Jd * dq), self.seg(Jd * uq), self.seg(self.J * uq * uq)
            disc = b * b - a * c
            crosses = (a < 0) | ((b < 0) & (disc >= 0))
            root = c / ops.maximum(-b + ops.sqrt(ops.maximum(disc, 0.0)), TINY)
            alpha = ops.minimum(alpha, ops.amin(ops.where(crosses, root, np.inf)[..., 0], 1))
        return alpha

    def max_step_pair(self, s, ds, z, dz):
        """Per element, the largest α keeping both s + α ds and z + α dz in K: one
        ``max_step`` over the two stacked along the batch."""
        B, ops = s.shape[0], self.ops
        if self.kernels is not None:                      # (no stacking: one loop each)
            return ops.minimum(self.max_step(s, ds), self.max_step(z, dz))
        alpha = self.max_step(ops.cat([s, z], 0), ops.cat([ds, dz], 0))
        return ops.minimum(alpha[:B], alpha[B:])


@dataclasses.dataclass
class Scaling:
    """The Nesterov–Todd scaling at (s, z), W z = W⁻¹ s = λ: W = diag(√(s/z)) on
    nonnegative rows; on each cone W = η(−J + uuᵀ/(1 + w̄₀)), u = e + w̄, with the NT point
    w̄ = (s̄ + J z̄)/(2γ) of the normalized s̄, z̄, γ = √((1 + z̄ᵀs̄)/2) and
    η = (sᵀJs / zᵀJz)^¼; W⁻¹ = JWJ/η² (ECOS's form).

    Up to ``DENSE_CONE_ROWS`` cone rows, W and W⁻¹ on them are held as dense block-diagonal
    (B, mq, mq) arrays, so each product is one matrix product (about a dozen fewer array
    operations per product, which is what small batched problems pay for); above, W is
    applied in its rank-one form (O(mq) per column instead of O(mq²)); u, a and η serve
    that form only (the compiled kernels of ``fused`` leave them None beside the blocks)."""

    cones: Cones
    d: object            # (B, l)
    u: object            # (B, mq, 1): e + w̄
    a: object            # (B, mq, 1): 1 + w̄₀ on every row of its cone
    eta: object          # (B, mq, 1): η on every row of its cone
    block: object = None           # (B, mq, mq): W on the cone rows, when dense
    inverse_block: object = None   # (B, mq, mq): W⁻¹ on the cone rows, when dense

    @classmethod
    def at(cls, cones: Cones, s, z) -> "Scaling":
        if cones.kernels is not None and sum(cones.soc) <= DENSE_CONE_ROWS:
            d, block, inverse_block = cones.kernels.scaling(s, z)
            return cls(cones, d, None, None, None, block, inverse_block)
        ops = cones.ops
        (sl, sq), (zl, zq) = cones.split(s), cones.split(z)
        d = ops.sqrt(sl / zl)
        if not cones.has_soc:
            return cls(cones, d, None, None, None)
        sq, zq, J = sq[..., None], zq[..., None], cones.J
        s_norm = ops.sqrt(ops.maximum(cones.seg(J * sq * sq), TINY))      # √(sᵀJs) per cone
        z_norm = ops.sqrt(ops.maximum(cones.seg(J * zq * zq), TINY))
        sbar = sq / cones.spread(s_norm)
        zbar = zq / cones.spread(z_norm)
        gamma = ops.sqrt((1 + cones.seg(sbar * zbar)) / 2)
        wbar = (sbar + J * zbar) / cones.spread(2 * gamma)
        u = cones.head + wbar
        a = cones.heads(u)
        eta = cones.spread(ops.sqrt(s_norm / z_norm))
        W = cls(cones, d, u, a, eta)
        if sum(cones.soc) <= DENSE_CONE_ROWS:
            outer = u @ u.mT
            if len(cones.soc) > 1:
                outer = cones.block_mask * outer
            W.block = eta * (outer / a - cones.J_eye)
            W.inverse_block = cones.signs * W.block / (eta * eta)
        return W

    def apply(self, X, inverse: bool = False):
        """W X (or W⁻¹ X) for X (B, mi, k)."""
        cones = self.cones
        Xl, Xq = cones.split(X)
        linear = Xl / self.d[..., None] if inverse else Xl * self.d[..., None]
        if not cones.has_soc:
            return linear
        if self.block is not None:
            return cones.join(linear, (self.inverse_block if inverse else self.block) @ Xq)
        J = cones.J
        u = J * self.u if inverse else self.u
        cone = u * cones.spread(cones.seg(u * Xq)) / self.a - J * Xq
        return cones.join(linear, cone / self.eta if inverse else cone * self.eta)

    def vec(self, v, inverse: bool = False):
        """W v (or W⁻¹ v) for v (B, mi)."""
        cones = self.cones
        if not cones.has_soc:
            return v / self.d if inverse else v * self.d
        if self.block is None:
            return self.apply(v[..., None], inverse)[..., 0]
        block = self.inverse_block if inverse else self.block
        if cones.kernels is not None:
            return cones.kernels.scale(v, self.d, block, inverse)
        vl, vq = cones.split(v)
        return cones.join(vl / self.d if inverse else vl * self.d, _mv(block, vq))

    def squared(self, lead: int):
        """W² on the rows of A with ``lead`` equality rows first (zero there), as its
        diagonal (B, lead + mi) — s/z on nonnegative rows, 0 on cone rows — and the cones'
        dense block (B, mq, mq) (None without cones)."""
        ops, cones = self.cones.ops, self.cones
        B, like = self.d.shape[0], self.d
        diag = ops.cat([ops.zeros((B, lead), like), self.d * self.d,
                        ops.zeros((B, sum(cones.soc)), like)], 1)
        if not cones.has_soc:
            return diag, None
        if self.block is not None:
            return diag, self.block @ self.block
        mq = sum(cones.soc)
        X = ops.cat([ops.zeros((B, cones.nonneg, mq), like),
                     ops.zeros((B, mq, mq), like) + ops.eye(mq, like)], 1)
        return diag, self.apply(self.apply(X))[:, cones.nonneg:]


# --------------------------------------------------------------------------- the method
def _mv(M, v):
    """M v per element, M (B, r, c); a matrix the batch shares, (1, r, c), takes one
    matrix product for the whole batch."""
    if M.shape[0] == 1 and v.shape[0] != 1:
        return v @ M[0].mT
    return (M @ v[..., None])[..., 0]


def _mv_t(M, v):
    """Mᵀ v per element (see ``_mv``)."""
    if M.shape[0] == 1 and v.shape[0] != 1:
        return v @ M[0]
    return (v[..., None, :] @ M)[..., 0, :]


class DenseProducts:
    """Products with the batch's dense P and A (the ``BoundSpace`` has its own, which skip
    the bound rows' zeros); ``zero``: A's zero-cone rows, the first (``times_i``: A_i x)."""

    def __init__(self, P, A, zero: int = 0) -> None:
        self.P, self.A, self.A_i = P, A, A[:, zero:]

    def P_times(self, x):
        return _mv(self.P, x)

    def times(self, x):
        return _mv(self.A, x)

    def times_t(self, y):
        return _mv_t(self.A, y)

    def times_i(self, x):
        return _mv(self.A_i, x)

    def times_i_t(self, v):
        return _mv_t(self.A_i, v)


class RowSpace:
    """For P positive definite: P⁻¹, AP⁻¹ and S = AP⁻¹Aᵀ, computed once per batch. The
    systems of the method and of the derivative, in (x, one unknown per row of A), then
    reduce to row space: eliminating x leaves an m × m system whose only change between
    iterations is a (block) diagonal — no n × n product per iteration (qpth's device)."""

    def __init__(self, Pinv, A) -> None:
        self.Pinv, self.A = Pinv, A

    @functools.cached_property
    def APinv(self):
        return self.A @ self.Pinv

    @functools.cached_property
    def S(self):
        """AP⁻¹Aᵀ (formed on first use: a derivative in a ``BoundSpace`` may never need it)."""
        return self.APinv @ self.A.mT

    @classmethod
    def of(cls, ops, P, A, zero: int, limit: bool = True) -> "RowSpace | None":
        """The row space of this batch, or None where it does not exist (P not definite
        somewhere) or, with ``limit``, does not pay for the iterations (many more rows than
        the x-space system has unknowns)."""
        m, n = A.shape[-2:]
        if limit and not cls.pays(m, n, zero):
            return None
        Pinv, ok = ops.spd_inverse(P)
        return cls(Pinv, A) if ops.maybe_all(ok) else None

    @staticmethod
    def pays(m: int, n: int, zero: int) -> bool:
        """Whether a row space of m rows pays for the iterations against the x-space system
        of n + ``zero`` unknowns."""
        return m <= 1.5 * (n + zero) + 8

    @property
    def size(self) -> int:
        return self.A.shape[-2]

    @property
    def batch(self) -> int:
        return max(self.Pinv.shape[0], self.A.shape[0])

    def factor(self, ops, diag, block):
        """The factors of S + diag(diag) (+ the cones' block in the corner)."""
        return ops.factor_definite(ops.add_diagonal(self.S, diag, corner=block))

    def solve(self, ops, factors, a, c):
        """(dx, u) with P dx + Aᵀu = a, A dx − Hu = c: (S + H) u = AP⁻¹a − c,
        dx = P⁻¹(a − Aᵀu)."""
        u = ops.solve(factors, _mv(self.APinv, a) - c)
        return _mv(self.Pinv, a) - _mv_t(self.APinv, u), u


class BoundSpace:
    """For a diagonal P and nonnegative rows that each bound one variable (a_r x_j ≤ b_r:
    box constraints, x ≥ 0, ...): the Newton systems P dx + Aᵀu = a, A dx − Hu = c with
    the bound rows eliminated in closed form, u_b = (a_b dx_j − c_b)/h_b, leave the
    diagonal Q = P + A_bᵀH_b⁻¹A_b and the other rows' system

        (A_o Q⁻¹ A_oᵀ + H_o) u_o = A_o Q⁻¹ ã − c_o,   ã = a + A_bᵀH_b⁻¹c_b,
        dx = Q⁻¹(ã − A_oᵀu_o),

    of the other rows' size — 1 × 1 for a projection onto the simplex, 7 × 7 for the
    portfolio benchmark's SOCP, instead of m × m. Q changes every iteration (H_b does), so
    A_oQ⁻¹A_oᵀ is formed per iteration (B·m_o²·n operations). ``bounds``: the bound rows
    and their variables (static: ``bound_rows``); ``zero``: A's zero-cone rows."""

    def __init__(self, ops, p, A, bounds, zero: int,
                 columns: "ColumnClasses | None" = None) -> None:
        rows, cols = bounds
        m, n = A.shape[-2:]
        self.rows, self.cols, self.zero = rows, cols, zero
        # the other rows; (u_o, u_b) → u; the inequality rows' others and order (from zero)
        self.others, self.order, self.equalities, self.others_i, self.order_i = _row_sets(
            np.asarray(rows, np.int64).tobytes(), m, zero)
        self.p, self.a = p, ops.contiguous(A[:, rows, cols])              # (·, n), (·, nb)
        # A_bᵀv = onto_variables(a·v)
        self.onto_variables = ColumnGather.of_entries(ops, np.arange(rows.size), cols,
                                                      np.ones(rows.size), (rows.size, n), p)
        self.A_o = ops.take(A, self.others)
        self.size = self.others.size
        self.batch = max(p.shape[0], A.shape[0])
        self.ops = ops
        self.columns = columns
        if columns is not None:
            j, lead = columns.member_entries                # each variable's class
            scale, shape = columns.scale[j], columns.members.shape
            self.weights = ColumnGather.of_entries(ops, j, lead, scale * scale, shape, p)
            self.to_leads = ColumnGather.of_entries(ops, j, lead, scale, shape, p)
            self.from_leads = ColumnGather.of_entries(ops, lead, j, scale, shape[::-1], p)
            self.A_dense = ops.contiguous(self.A_o[:, :, columns.dense])
            self.a_single = ops.contiguous(self.A_o[:, columns.single_rows, columns.single])
            singles = columns.single_rows.size
            self.onto_single_rows = ColumnGather.of_entries(
                ops, np.arange(singles), columns.single_rows, np.ones(singles),
                (singles, columns.rows), p)

    def gram(self, q):
        """A_o diag(q) A_oᵀ (by the columns' classes where given: a class's weight is
        Σ scale² q over its columns; a lead with one entry adds to the diagonal only)."""
        c = self.columns
        if c is None:
            return self.ops.weighted_gram(self.A_o, q)
        w = self.weights(q)                                             # (B, leads)
        take = self.ops.take
        S = self.ops.weighted_gram(self.A_dense, take(w, c.dense_lead))
        diagonal = self.onto_single_rows(self.a_single * self.a_single * take(w, c.single_lead))
        return self.ops.add_diagonal(S, diagonal)

    def times_o(self, x):
        """A_o x (by the columns' classes where given: Σ scale x over a class, times its
        lead's column)."""
        c = self.columns
        if c is None:
            return _mv(self.A_o, x)
        lead = self.to_leads(x)
        take = self.ops.take
        return (_mv(self.A_dense, take(lead, c.dense_lead))
                + self.onto_single_rows(self.a_single * take(lead, c.single_lead)))

    def times_o_t(self, y):
        """A_oᵀ y."""
        c = self.columns
        if c is None:
            return _mv_t(self.A_o, y)
        empty = self.ops.zeros((y.shape[0], c.lead_order.size - c.dense.size - c.single.size),
                               y)
        take = self.ops.take
        lead = self.ops.cat([_mv_t(self.A_dense, y), self.a_single * take(y, c.single_rows),
                             empty], 1)
        return self.from_leads(take(lead, c.lead_order))

    def at_bounds(self, x):
        """x's entries at the bound rows' variables (x itself where every variable has
        one bound row, in order: x ≥ 0)."""
        return x if self.onto_variables.identity else self.ops.take(x, self.cols)

    def P_times(self, x):
        return self.p * x

    def times(self, x):
        """A x: the other rows' dense product, the bound rows' entries."""
        return self.ops.take(self.ops.cat([self.times_o(x), self.a * self.at_bounds(x)], 1),
                             self.order)

    def times_t(self, y):
        """Aᵀ y."""
        take = self.ops.take
        return (self.times_o_t(take(y, self.others))
                + self.onto_variables(self.a * take(y, self.rows)))

    def times_i(self, x):
        """A_i x, the inequality rows' products (the equality rows' not formed)."""
        bound = self.a * self.at_bounds(x)
        if not self.others_i.size:
            return bound                        # the bounds are the inequality rows, in order
        other = self.times_o(x)[:, self.equalities:]
        return self.ops.take(self.ops.cat([other, bound], 1), self.order_i)

    def times_i_t(self, v):
        """A_iᵀ v for v on the inequality rows."""
        out = self.onto_variables(self.a * self.ops.take(v, self.rows - self.zero))
        if not self.others_i.size:
            return out
        y_o = self.ops.cat([self.ops.zeros((v.shape[0], self.equalities), v),
                            self.ops.take(v, self.others_i - self.zero)], 1)
        return out + self.times_o_t(y_o)

    @classmethod
    def of(cls, ops, P, A, zero: int, bounds, rivals: int | None = None,
           columns: "ColumnClasses | None" = None) -> "BoundSpace | None":
        """The bound space of this batch where it applies (P diagonal, every variable with
        P_jj > 0 or a nonzero bound) and, given ``rivals``, its system is smaller than
        that many unknowns (the other spaces' size), else None. ``columns``: A_o's column
        classes, where known (``ColumnClasses``)."""
        if bounds is None or not len(bounds[0]) or (
                rivals is not None and A.shape[-2] - len(bounds[0]) >= rivals):
            return None
        n = P.shape[-1]
        p = P[:, np.arange(n), np.arange(n)]
        if not ops.maybe_all(ops.abs(P).sum(-1) == ops.abs(p)):
            return None                                   # P not diagonal
        space = cls(ops, p, A, bounds, zero, columns)
        reach = p + space.onto_variables(ops.where(space.a != 0, 1.0, 0.0))
        return space if ops.maybe_all((p >= 0) & (reach > 0)) else None

    def factor(self, ops, diag, block):
        """(factors of A_oQ⁻¹A_oᵀ + H_o, Q⁻¹, h_b) for H = diag(diag) (+ the cones' block,
        whose rows are the last of the others)."""
        h = ops.take(diag, self.rows)
        qinv = 1.0 / (self.p + self.onto_variables(self.a * self.a / h))
        if not self.size:
            return None, qinv, h
        S = self.gram(qinv)
        system = ops.add_diagonal(S, ops.take(diag, self.others), corner=block)
        return ops.factor_definite(system), qinv, h

    def solve_equalities(self, ops, factors, a, c_e):
        """(dx, u_e): ``solve`` with c zero off the equality rows (the method's starting
        point), and of u only the equality rows' (the first of the others)."""
        factors, qinv, _ = factors
        if not self.size:
            return qinv * a, c_e
        c_o = ops.cat([c_e, ops.zeros((c_e.shape[0], self.size - self.equalities), c_e)], 1)
        u_o = ops.solve(factors, self.times_o(qinv * a) - c_o)
        return qinv * (a - self.times_o_t(u_o)), u_o[:, :self.equalities]

    def solve(self, ops, factors, a, c):
        """(dx, u) with P dx + Aᵀu = a, A dx − Hu = c."""
        factors, qinv, h = factors
        cb = ops.take(c, self.rows)
        a = a + self.onto_variables(self.a * cb / h)
        if self.size:
            u_o = ops.solve(factors, self.times_o(qinv * a) - ops.take(c, self.others))
            dx = qinv * (a - self.times_o_t(u_o))
        else:
            u_o, dx = c[:, :0], qinv * a
        u_b = (self.a * self.at_bounds(dx) - cb) / h
        return dx, ops.take(ops.cat([u_o, u_b], 1), self.order)


class Deferred:
    """A value made on its first use (``resolved``)."""

    def __init__(self, make) -> None:
        self._make = make

    @functools.cached_property
    def value(self):
        return self._make()


def resolved(value):
    """``value``, or the value a ``Deferred`` makes."""
    return value.value if isinstance(value, Deferred) else value


def newton_spaces(ops, P, A, zero: int, bounds, row_space: bool = True,
                  columns: "ColumnClasses | None" = None):
    """(rows, bounds, bound_iterations): the spaces the method's Newton systems and its
    derivative are solved in. ``bounds``: the ``BoundSpace`` of the bound rows ``bounds``
    (``bound_rows``; None: none) where it applies — the derivative's system is never
    larger there — and ``bound_iterations``: whether the iterations' systems are solved in
    it too (it is smaller than the other spaces); ``rows``: the ``RowSpace``
    (``row_space``: P's pattern may be definite), ``Deferred`` where the bound space
    serves the iterations — then only the derivative's fallback needs it, and P⁻¹ costs a
    factorization and an inverse per call. ``columns``: the column classes of the bound
    space's other rows, where known (``ColumnClasses``)."""
    m, n = A.shape[-2:]
    row_space = row_space and RowSpace.pays(m, n, zero)
    space = None if bounds is None else BoundSpace.of(ops, P, A, zero, bounds,
                                                      columns=columns)
    bound_iterations = space is not None and space.size < (m if row_space else n + zero)
    if not row_space:
        rows = None
    elif bound_iterations:
        rows = Deferred(lambda: RowSpace.of(ops, P, A, zero))
    else:
        rows = RowSpace.of(ops, P, A, zero)
    return rows, space, bound_iterations


@dataclasses.dataclass
class ColumnClasses:
    """Static classes of A_o's columns (the rows other than the bounds): column j is
    ``scale[j]`` times column ``lead[j]`` (a lead: scale 1), as a substitution's slacks of
    one group are (``slacks``). ``members`` (n, leads): 1 at (j, j's lead);
    ``dense``/``single``: the leads (columns) with several entries in A_o and with one,
    ``dense_lead``/``single_lead`` their positions among the leads (``lead_order``: from
    dense then single back to lead order), ``single_rows`` the single entries' rows (among
    A_o's), ``rows`` A_o's row count m_o. (A lead without entries is among neither; its
    class's products are 0.)"""

    scale: np.ndarray
    members: np.ndarray
    lead_order: np.ndarray
    dense: np.ndarray
    dense_lead: np.ndarray
    single: np.ndarray
    single_lead: np.ndarray
    single_rows: np.ndarray
    rows: int

    @classmethod
    def of(cls, lead: np.ndarray, scale: np.ndarray, pattern_o: np.ndarray) -> "ColumnClasses":
        """From each column's lead and scale and A_o's pattern (m_o, n) (bool)."""
        leads, position = np.unique(lead, return_inverse=True)
        count = pattern_o[:, leads].sum(0)
        keep = count > 0                        # a class without entries contributes 0
        members = np.zeros((lead.size, leads.size))
        members[np.arange(lead.size), position] = keep[position]
        dense_lead, single_lead = np.flatnonzero(count > 1), np.flatnonzero(count == 1)
        empty = np.flatnonzero(count == 0)
        lead_order = np.argsort(np.concatenate([dense_lead, single_lead, empty]))
        single = leads[single_lead]
        single_rows = pattern_o[:, single].argmax(0)
        return cls(np.asarray(scale, float), members, lead_order, leads[dense_lead],
                   dense_lead, single, single_lead, single_rows, pattern_o.shape[0])

    @functools.cached_property
    def member_entries(self) -> tuple[np.ndarray, np.ndarray]:
        """``members``' entries: (variables, their leads)."""
        return np.nonzero(self.members)


@functools.lru_cache(maxsize=64)
def _row_sets(rows: bytes, m: int, zero: int):
    """``BoundSpace``'s static row sets from its bound rows (as bytes: a cache key)."""
    rows = np.frombuffer(rows, np.int64)
    other = np.ones(m, bool)
    other[rows] = False
    others = np.flatnonzero(other)
    order = np.argsort(np.concatenate([others, rows]))
    equalities = int(np.sum(others < zero))
    return (others, order, equalities, others[equalities:],
            np.argsort(np.concatenate([others[equalities:], rows])))


def bound_rows(rows, cols, cones) -> tuple[np.ndarray, np.ndarray]:
    """The nonnegative rows of A's sparsity pattern (``rows``, ``cols``: row and column of
    every stored entry) that hold a single entry: (those rows, their entries' columns)."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    count = np.bincount(rows, minlength=cones.zero + cones.nonneg)
    single = ((rows >= cones.zero) & (rows < cones.zero + cones.nonneg)
              & (count[rows] == 1))
    order = np.argsort(rows[single])
    return rows[single][order], cols[single][order]


class _KKT:
    """The Newton system of the method in (dx, dye), with G = W⁻¹A_i, factored once per
    iteration: [[P + GᵀG + δI, A_eᵀ], [A_e, −δI]] (no refinement: δ = 1e-10 perturbs a
    direction far less than the iteration's own error). Or, with a ``RowSpace``, the
    equivalent system in (dx, u), P dx + Aᵀu = r_x, A dx − Hu = (r_e, 0), H = diag(0, W²),
    solved in row space — (S + H + δ_e) u = AP⁻¹ r_x − (r_e, 0), dx = P⁻¹(r_x − Aᵀu),
    dye = u_e — with one step of refinement against it once the iterates near the solution
    (``refine``; P⁻¹ amplifies rounding, which matters below a gap of ~1e-6). A
    ``BoundSpace`` in place of the ``RowSpace`` solves the same system with the bound rows
    eliminated (its Q⁻¹ is elementwise: the method does not refine there). ``W=None``: the
    identity scaling."""

    def __init__(self, ops, P, A, me: int, W=None, rows: RowSpace | BoundSpace | None = None,
                 refine: bool = True) -> None:
        n, Ae, Ai = P.shape[-1], A[:, :me], A[:, me:]
        self.ops, self.n, self.me, self.rows = ops, n, me, rows
        self.refine = refine and not isinstance(rows, BoundSpace)
        self.products = rows if isinstance(rows, BoundSpace) else DenseProducts(P, A)
        if rows is not None:
            m = A.shape[-2]
            if W is None:
                B = rows.batch
                self.H = (ops.cat([ops.zeros((B, me), P), ops.full((B, m - me), 1.0, P)], 1),
                          None)
            else:
                self.H = W.squared(me)
            diag, block = self.H
            shift = ops.cat([ops.full((me,), REGULARIZATION, P), ops.full((m - me,), 0.0, P)], 0)
            self.factors = rows.factor(ops, diag + shift, block)
            return
        G = Ai if W is None else W.apply(Ai, inverse=True)
        K = ops.add_diagonal(P + G.mT @ G, ops.full((n,), REGULARIZATION, P))
        if me:
            B = K.shape[0]
            Ae = ops.broadcast(Ae, (B,) + Ae.shape[1:])
            corner = ops.zeros((B, me, me), P) - REGULARIZATION * ops.eye(me, P)
            K = ops.cat([ops.cat([K, Ae.mT], 2), ops.cat([Ae, corner], 2)], 1)
        self.factors = ops.factor(K)

    def solve(self, rhs_x, rhs_e):
        ops, rows = self.ops, self.rows
        if isinstance(rows, BoundSpace):
            return rows.solve_equalities(ops, self.factors, rhs_x, rhs_e)
        if rows is not None:
            m = self.H[0].shape[-1]
            dx, u = self.solve_rows(
                rhs_x, ops.cat([rhs_e, ops.zeros((rhs_x.shape[0], m - self.me), rhs_x)], 1))
            return dx, u[:, :self.me]
        rhs = ops.cat([rhs_x, rhs_e], 1) if rhs_e.shape[1] else rhs_x
        sol = ops.solve(self.factors, rhs)
        return sol[:, :self.n], sol[:, self.n:]

    def solve_rows(self, rhs_x, rhs_u):
        """(dx, u) with P dx + Aᵀu = rhs_x, A dx − Hu = rhs_u over all of A's rows (row or
        bound space), refined once where ``refine``."""
        dx, u = self._rows(rhs_x, rhs_u)
        if self.refine:
            prod = self.products
            ex, eu = self._rows(rhs_x - prod.P_times(dx) - prod.times_t(u),
                                rhs_u - prod.times(dx) + self._H(u))
            dx, u = dx + ex, u + eu
        return dx, u

    def _H(self, u):
        diag, block = self.H
        Hu = diag * u
        if block is None:
            return Hu
        k = u.shape[1] - block.shape[-1]
        return Hu + self.ops.cat([self.ops.zeros((u.shape[0], k), u), _mv(block, u[:, k:])], 1)

    def _rows(self, a, c):
        """(dx, u) with P dx + Aᵀu = a, A dx − Hu = c, through the reduced factors."""
        return self.rows.solve(self.ops, self.factors, a, c)


def interior_point(ops, cones: Cones, P, c, A, b, tol: float = 1e-10, max_iter: int = 50,
                   unrolled: bool = False, rows: RowSpace | BoundSpace | None = None,
                   handoff: float | None = None, start=None):
    """Solve the batch (P (B,n,n), c (B,n), A (B,m,n), b (B,m)) in namespace ``ops``; P and
    A may be (1, ·, ·), shared by every element (then their products are one matrix
    product for the whole batch, and ``RowSpace`` is computed once).

    Returns (x, y, s, status, iterations, error), per element: y and s over all m rows,
    status one of OPTIMAL, OPTIMAL_INACCURATE, ITERATION_LIMIT (as floats), iterations
    taken and the best iterate's relative error. ``unrolled``: the iterations are written
    so autodiff can follow them (JAX: a fixed-length ``fori_loop``). ``rows``: the batch's
    ``RowSpace`` (``RowSpace.of``) or ``BoundSpace``, for solving the Newton systems in it.
    ``handoff``: an element stops once its error is below this (≥ tol) because the caller
    polishes by Newton's method (``Derivative.polish``), which finishes in a step or two
    what the interior-point method would take several iterations for; the status still
    reports the error against ``tol`` (the caller upgrades elements polished exactly).
    ``start``: (x, y, s, iterations) as returned, to continue from (s and z = y's inequality
    rows in the cone's interior, or the point already within the stopping error: such an
    element is done at once); each element's iterations then count on from its own, up to
    ``max_iter`` in all."""
    zero = cones.zero
    be, bi = b[:, :zero], b[:, zero:]
    B = c.shape[0]
    ones = cones.identity(c)
    prod = rows if isinstance(rows, BoundSpace) else DenseProducts(P, A, zero)
    Ai_t = prod.times_i_t                           # A_iᵀ v for v on the inequality rows

    if start is None:
        # x from the KKT system with unit scaling, s shifted into the cone's interior
        x, ye = _KKT(ops, P, A, zero, rows=rows).solve(-c + Ai_t(bi), be)
        s = bi - prod.times_i(x)
        shift = ops.maximum(1.0 - cones.min_eigenvalue(s), 0.0)
        s = s + shift[:, None] * ones
        z, counts = ones, ops.zeros((B,), c)
    else:
        x, y, s, counts = start
        ye, z, s = y[:, :zero], y[:, zero:], s[:, zero:]
    scale_b = 1.0 + ops.amax(ops.abs(b), 1)
    scale_c = 1.0 + ops.amax(ops.abs(c), 1)
    degree = max(cones.degree, 1)
    stop = tol if handoff is None else max(tol, handoff)

    def residuals(x, ye, s, z, Px):
        rd = Px + c + prod.times_t(ops.cat([ye, z], 1))
        Ax = prod.times(x)
        return rd, Ax[:, :zero] - be, Ax[:, zero:] + s - bi

    def state_at(x, ye, s, z, best, iterations, stalled):
        Px = prod.P_times(x)
        rd, re, ri = residuals(x, ye, s, z, Px)
        error = stopping_error(cones, c, scale_b, scale_c, x, s, z, rd, re, ri, Px)
        better = error < best["error"]
        stalled = ops.where(better, 0.0, stalled + 1.0)
        now = dict(error=error, x=x, ye=ye, s=s, z=z)
        best = now if ops.maybe_all(better) else {       # (the selection skipped when moot)
            k: ops.where(better if k == "error" else better[:, None], v, best[k])
            for k, v in now.items()}
        done = ((best["error"] <= stop) | ((best["error"] <= INACCURATE) & (stalled >= STALL))
                | (iterations >= max_iter))
        return dict(x=x, ye=ye, s=s, z=z, rd=rd, re=re, ri=ri, best=best, done=done,
                    iterations=iterations, stalled=stalled, error=error)

    def step(st):
        done = st["done"]
        some_done = ops.maybe_any(done)
        # elements that are done take a harmless step at a safe point (so that neither the
        # iteration nor its derivative produces NaNs there), which is then discarded
        s, z, rd, re, ri = (st[k] for k in ("s", "z", "rd", "re", "ri"))
        if some_done:
            s, z = (ops.where(done[:, None], ones, v) for v in (s, z))
            rd, re, ri = (ops.where(done[:, None], 0.0, r) for r in (rd, re, ri))
        W = Scaling.at(cones, s, z)
        lam = W.vec(z)
        mu = ops.sum(s * z, 1) / degree
        # refinement of the row-space solves (P⁻¹ formed) pays once some element is near
        # its solution; the bound space's (Q⁻¹ elementwise) reached the same iterates without
        kkt = _KKT(ops, P, A, zero, W, rows, refine=isinstance(rows, RowSpace) and ops.maybe_any(
            ~done & (st["error"] < REFINE_BELOW)))

        W_ri = W.vec(ri, True)

        def newton(rc):
            rt = -cones.inv_circ(lam, rc) + W_ri
            if rows is not None:
                # the whole system, (dye, dz) its multipliers: the dual rows then hold to
                # the solve's accuracy (dz formed from dx as W⁻¹(rt + W⁻¹A dx) carries W's
                # conditioning into rd, which near an SOC's boundary stalled elements ~1e-6)
                dx, u = kkt.solve_rows(-rd, ops.cat([-re, -W.vec(rt)], 1))
                return dx, u[:, :zero], -ri - prod.times_i(dx), u[:, zero:]
            dx, dye = kkt.solve(-rd - Ai_t(W.vec(rt, True)), -re)
            Adx = prod.times_i(dx)
            return dx, dye, -ri - Adx, W.vec(rt + W.vec(Adx, True), True)

        lamlam = cones.circ(lam, lam)
        dx, dye, ds, dz = newton(lamlam)                            # predictor
        alpha = ops.minimum(cones.max_step_pair(s, ds, z, dz), 1.0)
        a = alpha[:, None]
        mu_aff = ops.sum((s + a * ds) * (z + a * dz), 1) / degree
        sigma = (mu_aff / ops.maximum(mu, TINY)) ** 3
        rc = lamlam + cones.circ(W.vec(ds, True), W.vec(dz)) - (sigma * mu)[:, None] * ones
        dx, dye, ds, dz = newton(rc)                                # corrector
        alpha = ops.minimum(STEP * cones.max_step_pair(s, ds, z, dz), 1.0)
        moves = ((st["x"], st["x"], dx), (st["ye"], st["ye"], dye), (st["s"], s, ds),
                 (st["z"], z, dz))
        if not some_done:
            a = alpha[:, None]
            new = [v + a * dv for _, v, dv in moves]
            return state_at(*new, st["best"], st["iterations"] + 1.0, st["stalled"])
        a = ops.where(done, 0.0, alpha)[:, None]
        keep = done[:, None]
        new = [ops.where(keep, old, v + a * dv) for old, v, dv in moves]
        iterations = st["iterations"] + ops.where(done, 0.0, 1.0)
        return state_at(*new, st["best"], iterations, st["stalled"])

    first = dict(error=ops.full((B,), np.inf, c), x=x, ye=ye, s=s, z=z)
    state = state_at(x, ye, s, z, first, counts, ops.zeros((B,), c))
    run = ops.unrolled_loop if unrolled else ops.loop
    state = run(step, lambda st: st["done"], state, max_iter)
    best = state["best"]
    error = best["error"]
    y = ops.cat([best["ye"], best["z"]], 1)
    slack = ops.cat([ops.zeros((B, zero), c), best["s"]], 1)
    status = ops.where(error <= tol, float(OPTIMAL), ops.where(
        error <= INACCURATE, float(OPTIMAL_INACCURATE), float(ITERATION_LIMIT)))
    return best["x"], y, slack, status, state["iterations"], error


def stopping_error(cones: Cones, c, scale_b, scale_c, x, s, z, rd, re, ri, Px):
    """The method's relative error per element: max(‖rd‖∞/scale_c, max(‖re‖∞, ‖ri‖∞)/scale_b,
    sᵀz/(1 + |xᵀPx| + |cᵀx|)), for residuals rd (dual), re (equality rows), ri (inequality
    rows)."""
    if cones.kernels is not None and c.shape[0] == x.shape[0]:
        return cones.kernels.relative_error(x, s, z, rd, re, ri, Px, c, scale_b, scale_c)
    ops = cones.ops
    gap = ops.sum(s * z, 1) / (1.0 + ops.abs(ops.sum(x * Px, 1)) + ops.abs(ops.sum(c * x, 1)))
    primal = ops.maximum(ops.amax(ops.abs(re), 1), ops.amax(ops.abs(ri), 1))
    return ops.maximum(ops.maximum(ops.amax(ops.abs(rd), 1) / scale_c, primal / scale_b), gap)


def solve_polished(ops, cones: Cones, P, c, A, b, tol: float = 1e-10, max_iter: int = 50,
                   rows: RowSpace | Deferred | None = None, bounds: BoundSpace | None = None,
                   bar: bool = False, bound_iterations: bool = True):
    """``interior_point`` stopped early and polished (``Derivative.polish``): Newton's
    method makes a point with the right active set exact in a step or two, where the
    iterations would take several more. The hand-off is at ``HANDOFF``; at
    ``EARLY_HANDOFF`` where the derivative's system is no larger than the iterations' —
    these in row space (P definite), or in the bound space with a quadratic term on every
    variable (the derivative's bound system is then the iterations' other rows): from
    there the polish (whose factorization is the size of one iteration's) saves two or
    three iterations. Elements it does not make exact (and whose iterations had not
    reached ``tol``) then continue their iterations from where they stopped — to
    ``HANDOFF`` after the early hand-off, else to ``tol`` — and are polished again (the
    batch's derivative is factored anew; the others stay where they are); after the early
    hand-off, elements still unfinished then continue to ``tol``. Elsewhere the
    derivative's system is larger than the iterations', so stopping early costs more than
    it saves. ``bounds``: the derivative's system is solved in it where D allows (``rows``
    is then its fallback), and with ``bound_iterations`` the iterations' Newton systems
    (else in ``rows``, or x space). ``bar``: an element also keeps a polished point no
    worse than the solver's own (see ``Derivative.polish``). Returns (x, y, s, status,
    iterations, derivative), the derivative factored at the returned points; status
    OPTIMAL where they are exact."""
    space = bounds if bounds is not None and bound_iterations else resolved(rows)
    # early where the polish's system is no larger than an iteration's: row space, or a
    # bound space whose variables all have a quadratic term (the derivative keeps none)
    early = isinstance(space, RowSpace) or (
        space is bounds and bounds is not None and ops.maybe_all(bounds.p > 0))
    x, y, s, status, iterations, _ = interior_point(
        ops, cones, P, c, A, b, tol, max_iter, rows=space,
        handoff=EARLY_HANDOFF if early else HANDOFF)

    def polished_at(x, y, s):
        d = Derivative(ops, cones, P, A, x, y, s, rows, bounds)
        residual = solver_residual(ops, P, c, A, b, x, y, s, d.products) if bar else None
        return d, d.polish(c, b, bar=residual)

    d, polished = polished_at(x, y, s)
    # unfinished elements continue: after the early hand-off to HANDOFF and, still
    # unfinished, to tol (a JAX trace, which cannot look, takes the first stage only)
    for stage, stop in enumerate((HANDOFF, None) if early else (None,)):
        if not ops.maybe_any(~d.exact & (status != OPTIMAL), unknown=stage == 0):
            break
        keep = d.exact[:, None]
        start = [ops.where(keep, new, old) for new, old in zip(polished, (x, y, s), strict=True)]
        x, y, s, again, iterations, _ = interior_point(
            ops, cones, P, c, A, b, tol, max_iter, rows=space, handoff=stop,
            start=(*start, iterations))
        status = ops.where(d.exact, status, again)
        d, polished = polished_at(x, y, s)
    return (*polished, polished_status(ops, status, d.exact), iterations, d)


def data_gradients(x, y, wx, wv):
    """Dense gradients (P, c, A, b) from the adjoint vectors (w_x, w_v) at (x, y): a change
    dA moves the residual map as (dAᵀy, −dA x) in (c, b) would, and dP as (dP x, 0)."""
    grad_P = wx[:, :, None] * x[:, None, :]
    grad_A = y[:, :, None] * wx[:, None, :] - wv[:, :, None] * x[:, None, :]
    return grad_P, wx, grad_A, wv


def pattern_gradient_A(x, y, wx, wv, rows, cols):
    """``data_gradients``' ∂A on A's stored entries only (NumPy arrays): y_r w_x,c − w_v,r x_c
    at each entry (rows, cols), gathered row-major (``a[:, index]`` leaves the batch
    innermost, and the products then run at a third of the speed)."""
    return (np.take(y, rows, 1) * np.take(wx, cols, 1)
            - np.take(wv, rows, 1) * np.take(x, cols, 1))


def solver_residual(ops, P, c, A, b, x, y, s, products=None):
    """‖(Px + Aᵀy + c, −Ax + b − s)‖ per element: the KKT residual short of complementarity
    (``products``: P's and A's, where not the dense ones)."""
    prod = DenseProducts(P, A) if products is None else products
    r = ops.cat([prod.P_times(x) + prod.times_t(y) + c, -prod.times(x) + b - s], 1)
    return ops.sqrt(ops.sum(r * r, 1))


def polished_status(ops, status, exact):
    """OPTIMAL where the polish reached an exact KKT point (F = 0 at y = Π_K*(v),
    s = y − v: feasible, dual feasible, complementary), else the method's own status."""
    return ops.where(exact, float(OPTIMAL), status)


# ----------------------------------------------------------------------- the derivative
def project_dual(cones: Cones, v):
    """Π_K*(v): the identity on zero rows (K* is free there), max(v, 0) on nonnegative
    rows, the projection onto each second-order cone."""
    if cones.kernels is not None:
        return cones.kernels.project(v, cones.zero)
    ops, zero, k = cones.ops, cones.zero, cones.zero + cones.nonneg
    parts = [v[:, :zero], ops.maximum(v[:, zero:k], 0.0)]
    if cones.has_soc:
        vq, h = v[:, k:, None], cones.head
        t, norm = _cone_parts(cones, vq)
        boundary = cones.spread((t + norm) / 2) * (
            h + (1 - h) * vq / cones.spread(ops.maximum(norm, TINY)))
        inside, polar = (cones.spread(branch) for branch in _soc_branches(t, norm))
        parts.append(ops.where(inside, vq, ops.where(polar, 0.0, boundary))[..., 0])
    return ops.cat(parts, 1)


def _soc_branches(t, norm):
    """Per cone, from its ``_cone_parts``: v inside the cone (‖v̄‖ ≤ v₀: Π(v) = v, D = I),
    v in its polar and not inside (Π(v) = 0, D = 0); on neither, the boundary's branch."""
    inside = norm <= t
    return inside, (norm <= -t) & ~inside


def _cone_parts(cones: Cones, vq):
    """(t, ‖x̄‖) per cone, (B, K, 1) each, for SOC rows vq (B, mq, 1)."""
    t = cones.seg(cones.head * vq)
    return t, cones.ops.sqrt(cones.seg((1 - cones.head) * vq * vq))


class Derivative:
    """The batch's solution-map derivative at (x, y, s), M factored once (see the module
    docstring). ``usable``: elements whose system factors and whose solver point is
    strictly complementary with a margin (``_strictly_complementary``). With a
    ``RowSpace`` (P definite), M's solves go through row space: x = P⁻¹(r₁ − AᵀDw) and
    (SD + I − D) w = r₂ + AP⁻¹r₁, an m × m system instead of (n + m) × (n + m). With a
    ``BoundSpace`` (P diagonal), the bound rows are eliminated in closed form where D
    allows (``_bound_system``), leaving the other rows' system (and the free variables
    without a quadratic term); else row space, else x space."""

    def __init__(self, ops, cones: Cones, P, A, x, y, s, rows: RowSpace | Deferred | None = None,
                 bounds: BoundSpace | None = None):
        self.ops, self.cones, self.P, self.A, self._rows = ops, cones, P, A, rows
        self.bounds = bounds
        # M's products: the bound space's skip the bound rows' zeros
        self.products = DenseProducts(P, A) if bounds is None else bounds
        self.n = P.shape[-1]
        self.raw = (y, s)                                   # the solver's own point
        self.clear = self._strictly_complementary(y, s)
        self._at(x, project_dual(cones, y - s), y - s)

    @property
    def rows(self) -> RowSpace | None:
        """The row space (made here where it was ``Deferred``)."""
        return resolved(self._rows)

    def _at(self, x, y, v) -> None:
        """D at v, and the factorization of M (or of SD + I − D in row space)."""
        ops, cones, P, A = self.ops, self.cones, self.P, self.A
        zero, k = cones.zero, cones.zero + cones.nonneg
        self.x, self.y, self.v = x, y, v
        B, (m, n) = x.shape[0], A.shape[-2:]
        diag = [ops.full((B, zero), 1.0, x), ops.where(v[:, zero:k] > 0, 1.0, 0.0)]
        self.d = ops.cat(diag, 1)                         # D on zero and nonnegative rows
        self.Dq = self._soc_jacobian(v[:, k:, None]) if cones.has_soc else None

        def times_D(X):                                  # the (·, m) matrix X ↦ X D
            return self._times_D(X, self.d)
        # I − D: 1 − d on the diagonal, I − DΠ_SOC in the cones' corner
        diagonal = ops.cat([1.0 - self.d, ops.full((B, m - k), 1.0, x)], 1)
        corner = None if self.Dq is None else -self.Dq
        self.keep = None
        self.reduced = None
        if self.bounds is not None and self._bound_system(corner):
            pass
        elif self.rows is not None:
            self.system = ops.add_diagonal(times_D(self.rows.S), diagonal, corner)
        else:
            I_minus_D = ops.add_diagonal(ops.zeros((B, m, m), x), diagonal, corner)
            self.system = ops.cat([ops.cat([ops.broadcast(P, (B, n, n)), times_D(A.mT)], 2),
                                   ops.cat([-ops.broadcast(A, (B, m, n)), I_minus_D], 2)], 1)
            self._set_aside_free_variables(times_D)
        self.factors = ops.factor(self.system)
        self.singular = ~ops.pivots_ok(self.factors)
        self._pinv = None
        self.usable = self.clear & ~self.singular

    def _bound_system(self, corner) -> bool:
        """The other rows' system of M with the bound rows eliminated, where D allows: an
        active bound row (D = 1) fixes its variable, x_j = −r₂/a, an inactive one (D = 0)
        drops out, w = r₂ + a x_j. The free variables with P_jj > 0 are eliminated too
        (Q = P on them); those with P_jj = 0 (kept, K: a free slack of the lasso's
        substituted program) stay, their row of M reading (A_oᵀD_o w_o)_K = r₁_K:

            [[A_o Q⁻¹ A_oᵀ D_o + I − D_o, −A_oK], [A_oKᵀ D_o, 0]] (w_o, x_K)
                = (r₂ₒ + A_o(Q⁻¹ r₁ + x_fixed), r₁_K)

        (Q⁻¹ zero off the eliminated variables; K gathered per element and padded to the
        batch's largest, the padding's unknowns set to 0). False (row space or x space
        instead) where a variable has two active bounds (M is then singular) or that
        cannot be known (a JAX trace)."""
        ops, bounds = self.ops, self.bounds
        active = ops.take(self.d, bounds.rows)                   # (B, nb): D on bound rows
        fixed = bounds.onto_variables(active)                    # (B, n): active bounds
        if not ops.maybe_all(fixed <= 1.0):
            return False
        k = self.cones.zero + self.cones.nonneg
        linear = bounds.others[bounds.others < k]                # others' zero/nonneg rows
        curved = bounds.p > 0
        qinv = (1.0 - fixed) * ops.where(curved, 1.0, 0.0) / ops.where(curved, bounds.p, 1.0)
        d_o = ops.take(self.d, linear)                           # D on the other rows
        B = d_o.shape[0]

        def times_D(X):                                          # X D_o
            return self._times_D(X, d_o)

        S = bounds.gram(qinv)
        diagonal = ops.cat([1.0 - d_o, ops.full((B, bounds.size - linear.size), 1.0, d_o)], 1)
        system = ops.add_diagonal(times_D(S), diagonal, corner)
        kept, size = None, 0
        if not ops.maybe_all(curved):
            mask = (fixed < 0.5) & ~curved
            order, count = ops.first_where(mask)
            size = int(ops.to_numpy(count).max())
        if size:
            index = order[:, :size]
            valid = ops.where(ops.constant(np.arange(size), d_o)[None, :] < count[:, None],
                              1.0, 0.0)                          # (B, K): not padding
            A_K = ops.take_columns(bounds.A_o, index) * valid[:, None, :]
            coupled = times_D(A_K.mT)                            # A_Kᵀ D_o
            if ops.maybe_any((ops.amax(ops.abs(coupled), 2) == 0) & (valid > 0)):
                return False           # a variable the data cannot move: x space sets it aside
            corner_K = ops.add_diagonal(ops.zeros((B, size, size), d_o), 1.0 - valid)
            system = ops.cat([ops.cat([system, -A_K], 2), ops.cat([coupled, corner_K], 2)], 1)
            kept = (index, valid)
        self.reduced = (active, qinv, d_o, kept)
        self.system = system
        return True

    def _bound_solve(self, rhs, transpose: bool, least_squares: bool = True):
        """M⁻¹ rhs (or M⁻ᵀ rhs) through the bound rows' elimination (``_bound_system``)."""
        ops, bounds, n = self.ops, self.bounds, self.n
        active, qinv, d_o, kept = self.reduced
        a, onto, A_o = bounds.a, bounds.onto_variables, bounds.A_o
        r1, r2 = rhs[:, :n], rhs[:, n:]
        r2b, r2o = ops.take(r2, bounds.rows), ops.take(r2, bounds.others)

        def D_o(w):                                           # D on the other rows
            return self._D(w, d_o)

        def solve(top, r):
            """(w_o, x_K scattered over the variables) from the system with right side
            (top, r_K)."""
            if kept is None:
                return self._system_solve(top, transpose, least_squares), 0.0
            index, valid = kept
            sol = self._system_solve(ops.cat([top, ops.take_along(r, index, 1) * valid], 1),
                                     transpose, least_squares)
            return sol[:, :bounds.size], ops.put_along(n, index, sol[:, bounds.size:] * valid)

        if transpose:            # Mᵀ = [[P, −Aᵀ], [DA, I − D]]
            x_fixed = onto(active * r2b / a)
            known = (1.0 - active) * r2b                      # w on inactive bound rows
            g = r1 + onto(a * known)
            w_o, x_K = solve(r2o - D_o(_mv(A_o, qinv * g + x_fixed)), g)
            x = qinv * (g + _mv_t(A_o, w_o)) + x_fixed + x_K
            t = bounds.p * x - _mv_t(A_o, w_o) - onto(a * known) - r1
            w_b = ops.where(active > 0.5, bounds.at_bounds(t) / a, r2b)
        else:                    # M = [[P, AᵀD], [−A, I − D]]
            x_fixed = onto(-active * r2b / a)
            w_o, x_K = solve(r2o + _mv(A_o, qinv * r1 + x_fixed), r1)
            back = _mv_t(A_o, D_o(w_o))
            x = qinv * (r1 - back) + x_fixed + x_K
            t = r1 - bounds.p * x - back
            w_b = ops.where(active > 0.5, bounds.at_bounds(t) / a,
                            r2b + a * bounds.at_bounds(x))
        return ops.cat([x, ops.take(ops.cat([w_o, w_b], 1), bounds.order)], 1)

    def _strictly_complementary(self, y, s):
        """Per element: every complementary pair of the solver's (y, s) clearly split — on a
        nonnegative row min(y, s) ≤ AMBIGUOUS · max(y, s); on a cone, v = y − s at a
        relative distance above AMBIGUOUS from the projection's kinks ‖v̄‖ = ±v₀, and not
        both (near) zero."""
        ops, cones = self.ops, self.cones
        rows = slice(cones.zero, cones.zero + cones.nonneg)
        low = ops.minimum(y[:, rows], s[:, rows])
        high = ops.maximum(ops.maximum(y[:, rows], s[:, rows]), TINY)
        ok = ops.amax(low / high, 1) <= AMBIGUOUS
        if cones.has_soc:
            k = rows.stop
            yq, sq = y[:, k:, None], s[:, k:, None]
            t, norm = _cone_parts(cones, yq - sq)
            size = ops.maximum(ops.sqrt(cones.seg(yq * yq)), ops.sqrt(cones.seg(sq * sq)))
            scale = ops.maximum(ops.amax(ops.abs(y - s), 1), 1.0)[:, None, None]
            gap = ops.minimum(ops.abs(norm - t), ops.abs(norm + t))
            clear = (gap > AMBIGUOUS * size) & (size > AMBIGUOUS * scale)
            ok = ok & (ops.amin(ops.where(clear, 1.0, 0.0)[..., 0], 1, empty=1.0) >= 1.0)
        return ok

    def _soc_jacobian(self, vq):
        """DΠ_SOC per cone as one block-diagonal (B, mq, mq) array: I inside, 0 in the
        polar cone, else ½wwᵀ + ((1 + t/‖x̄‖)/2)(I_tail − x̂x̂ᵀ) with x̂ = x̄/‖x̄‖, w = (1, x̂)."""
        ops, cones = self.ops, self.cones
        if cones.kernels is not None:
            return cones.kernels.projection_jacobian(vq[..., 0])
        h = cones.head
        t, norm = _cone_parts(cones, vq)
        xhat = (1 - h) * vq / cones.spread(ops.maximum(norm, TINY))
        w = h + xhat
        r = cones.spread((1 + t / ops.maximum(norm, TINY)) / 2)          # (B, mq, 1)
        mask = cones.block_mask
        eye = ops.eye(mask.shape[0], vq)
        boundary = mask * (0.5 * w @ w.mT - r * (xhat @ xhat.mT)) + eye * (r * (1 - h))
        inside, polar = (ops.where(cones.spread(branch), 1.0, 0.0)
                         for branch in _soc_branches(t, norm))
        return inside * mask * eye + (1 - inside) * (1 - polar) * boundary

    def D(self, w):
        """D w for w (B, m)."""
        return self._D(w, self.d)

    def _D(self, w, d):
        """D w on rows whose zero/nonnegative part has D's diagonal ``d`` (B, k), the cones'
        rows after them: d·w there, DΠ_SOC on the cones."""
        k = d.shape[1]
        if self.Dq is None:
            return d * w[:, :k]
        return self.ops.cat([d * w[:, :k], _mv(self.Dq, w[:, k:])], 1)

    def _times_D(self, X, d):
        """X D for X (B, ·, rows) on such rows (``_D``)."""
        k = d.shape[1]
        left = X[:, :, :k] * d[:, None, :]
        return left if self.Dq is None else self.ops.cat([left, X[:, :, k:] @ self.Dq], 2)

    def matvec(self, z, transpose: bool = False):
        """M z (or Mᵀ z): M = [[P, AᵀD], [−A, I − D]], Mᵀ = [[P, −Aᵀ], [DA, I − D]] (with
        set-aside variables' rows and columns those of the identity)."""
        n, prod, keep = self.n, self.products, self.keep
        if keep is not None:
            z, kept = keep * z, z
        zx, zw = z[:, :n], z[:, n:]
        if transpose:
            out = self.ops.cat([prod.P_times(zx) - prod.times_t(zw),
                                self.D(prod.times(zx) - zw) + zw], 1)
        else:
            Dw = self.D(zw)
            out = self.ops.cat([prod.P_times(zx) + prod.times_t(Dw),
                                -prod.times(zx) + zw - Dw], 1)
        return out if keep is None else keep * out + (1.0 - keep) * kept

    def solve(self, rhs, transpose: bool = False, refine: bool = True,
              least_squares: bool = True):
        """M⁻¹ rhs (or M⁻ᵀ rhs), refined once (``refine``); set-aside variables get 0.
        ``least_squares=False``: singular elements get the LU's answer (any values),
        not their least-squares solution."""
        if self.keep is not None:
            rhs = self.keep * rhs
        sol = self._solve(rhs, transpose, least_squares)
        if not refine:
            return sol
        return sol + self._solve(rhs - self.matvec(sol, transpose), transpose, least_squares)

    def _solve(self, rhs, transpose: bool, least_squares: bool = True):
        if self.reduced is not None:
            return self._bound_solve(rhs, transpose, least_squares)
        ops, rows, n = self.ops, self.rows, self.n
        if rows is None:
            return self._system_solve(rhs, transpose, least_squares)
        r1, r2 = rhs[:, :n], rhs[:, n:]
        if transpose:                # (DS + I − D) w = r₂ − D AP⁻¹ r₁, x = P⁻¹(r₁ + Aᵀw)
            w = self._system_solve(r2 - self.D(_mv(rows.APinv, r1)), True, least_squares)
            return ops.cat([_mv(rows.Pinv, r1) + _mv_t(rows.APinv, w), w], 1)
        w = self._system_solve(r2 + _mv(rows.APinv, r1), False, least_squares)
        return ops.cat([_mv(rows.Pinv, r1) - _mv_t(rows.APinv, self.D(w)), w], 1)

    def _set_aside_free_variables(self, times_D) -> None:
        """Variables the data cannot move — zero in P and absent from every row where D is
        nonzero, like an epigraph variable free in an interval — make M singular; each is
        set aside (its row and column replaced by the identity's, its derivative 0), as
        ``diffdsl.diff.system`` does."""
        ops, n, P = self.ops, self.n, self.P
        coupling = ops.amax(ops.abs(times_D(ops.abs(self.A.mT))), 2)            # (B, n)
        free = (ops.amax(ops.abs(P), 2) == 0) & (coupling == 0)
        if not ops.maybe_any(free):
            return
        B, size = free.shape[0], self.system.shape[-1]
        self.keep = ops.cat([ops.where(free, 0.0, 1.0), ops.full((B, size - n), 1.0, P)], 1)
        self.system = ops.add_diagonal(self.system * self.keep[:, :, None]
                                       * self.keep[:, None, :], 1.0 - self.keep)

    def _system_solve(self, rhs, transpose: bool, least_squares: bool = True):
        """The factored system's solve; on singular elements its least-squares solution
        (their pseudo-inverses, computed on first need), flagged through ``usable``.
        (Under a JAX trace singularity is unknown and the LU's answer stands.)"""
        ops = self.ops
        sol = ops.solve(self.factors, rhs, transpose)
        if not least_squares or not ops.maybe_any(self.singular, unknown=False):
            return sol
        if self._pinv is None:
            singular = np.flatnonzero(np.asarray(ops.to_numpy(self.singular)))
            self._pinv = singular, ops.pinv(self.system[singular])
        singular, pinv = self._pinv
        least_squares = _mv(pinv.mT if transpose else pinv, rhs[singular])
        # back in batch order: the singular elements' solutions, then the others' LU ones
        others = np.setdiff1d(np.arange(rhs.shape[0]), singular)
        order = np.argsort(np.concatenate([singular, others]))
        return ops.cat([least_squares, sol[others]], 0)[order]

    def residual(self, c, b, x, v):
        """F(x, v) = (Px + Aᵀy + c, −Ax + b − s) with y = Π_K*(v), s = y − v."""
        y, prod = project_dual(self.cones, v), self.products
        return self.ops.cat([prod.P_times(x) + prod.times_t(y) + c, -prod.times(x) + b - (y - v)],
                            1)

    def polish(self, c, b, steps: int | None = None, bar=None):
        """Semismooth Newton on F from the solver's point: full steps (``steps``, default
        ``POLISH_STEPS``), M refactored at each new point (an active set or a cone's v may
        have moved), each element's best point kept (a step from an ambiguous active set
        may raise ‖F‖ before the next one lands on the solution); the steps end once every
        element is exact or has gone ``STALL_POLISH`` steps without gain. A singular
        element's step is the LU's answer (its pseudo-inverse, an SVD, is kept for the
        derivative): a bad step is never kept. An element keeps its polished point when it
        is exact to rounding or, given ``bar`` (per element), no worse than that; the others
        keep the solver's own point. Whether D is clear of kinks is then judged on the exact
        point (|v| away from the kinks by ``EXACT_KINK`` relative), else on the solver's
        pairs."""
        ops, n = self.ops, self.n
        x0, v0 = self.x, self.v
        x, v = x0, v0
        F = self.residual(c, b, x, v)
        steps = POLISH_STEPS if steps is None else steps
        best = (x, v, ops.sqrt(ops.sum(F * F, 1)))
        stalled = ops.zeros(best[2].shape, F)        # steps since an element's last gain
        for k in range(steps):
            if k:
                size = ops.sqrt(ops.sum(best[0] ** 2, 1) + ops.sum(best[1] ** 2, 1))
                if ops.maybe_all((best[2] <= 1e-12 * (1.0 + size)) | (stalled >= STALL_POLISH)):
                    break                        # every element exact, or stuck
                self._move_to(x, v)
            # (unrefined: the next step squares a step's error away, and exactness is
            # judged on F itself)
            step = self.solve(F, refine=False, least_squares=False)
            x, v = x - step[:, :n], v - step[:, n:]
            F = self.residual(c, b, x, v)
            norm = ops.sqrt(ops.sum(F * F, 1))
            better = norm < best[2]                      # NaN (singular M) never is
            stalled = ops.where(better, 0.0, stalled + 1.0)
            best = (ops.where(better[:, None], x, best[0]),
                    ops.where(better[:, None], v, best[1]), ops.where(better, norm, best[2]))
        x, v, norm = best
        size = ops.sqrt(ops.sum(x * x, 1) + ops.sum(v * v, 1))
        exact = norm <= 1e-12 * (1.0 + size)
        polished = exact if bar is None else exact | (norm <= bar)
        keep = polished[:, None]
        x, v = ops.where(keep, x, x0), ops.where(keep, v, v0)
        self.clear = ops.where(exact, self._clear_of_kinks(v), self.clear)
        self.exact = exact
        self._move_to(x, v)
        # elements left unpolished keep the solver's own (y, s), not their projection
        y = ops.where(keep, self.y, self.raw[0])
        s = ops.where(keep, y - v, self.raw[1])
        self.y = y
        return x, y, s

    def _move_to(self, x, v) -> None:
        """The derivative at (x, v): M is refactored only when D changed — an active set
        of the nonnegative rows, or a cone's D (it moves with v where v is off both the
        cone and its polar; it is I or 0 on either)."""
        cones, ops = self.cones, self.ops
        k = cones.zero + cones.nonneg
        moved = ops.maybe_any((v[:, cones.zero:k] > 0) != (self.v[:, cones.zero:k] > 0))
        if cones.has_soc and not moved:
            (inside, polar), (was_inside, was_polar) = (
                _soc_branches(*_cone_parts(cones, u[:, k:, None])) for u in (v, self.v))
            moved = not ops.maybe_all((inside & was_inside) | (polar & was_polar))
        if moved:
            self._at(x, project_dual(cones, v), v)
        else:
            self.x, self.v, self.y = x, v, project_dual(cones, v)
        self.usable = self.clear & ~self.singular

    def _clear_of_kinks(self, v):
        """Per element: an exact point's v away from every projection's kink — |vᵢ| on
        nonnegative rows, |‖v̄‖ ∓ v₀| on cones — by ``EXACT_KINK`` relative to max |v|."""
        ops, cones = self.ops, self.cones
        k = cones.zero + cones.nonneg
        scale = ops.maximum(ops.amax(ops.abs(v), 1), 1.0)
        ok = ops.amin(ops.abs(v[:, cones.zero:k]), 1) > EXACT_KINK * scale
        if cones.has_soc:
            t, norm = _cone_parts(cones, v[:, k:, None])
            gap = ops.minimum(ops.abs(norm - t), ops.abs(norm + t))[..., 0]
            ok = ok & (ops.amin(gap, 1) > EXACT_KINK * scale)
        return ok

    def vjp(self, gx, gy):
        """Dense gradients (P (B,n,n), c, A (B,m,n), b) of ⟨gx, x⟩ + ⟨gy, y⟩:
        ∂P = w_x xᵀ, ∂c = w_x, ∂A = y w_xᵀ − w_v xᵀ, ∂b = w_v (``adjoint``)."""
        return data_gradients(self.x, self.y, *self.adjoint(gx, gy))

    def adjoint(self, gx, gy):
        """(w_x, w_v) = −M⁻ᵀ(gx, D gy): the vectors every data gradient is built from."""
        w = -self.solve(self.ops.cat([gx, self.D(gy)], 1), transpose=True)
        return w[:, :self.n], w[:, self.n:]

    def jvp(self, dP, dc, dA, db):
        """(dx, dy, ds) for dense data tangents."""
        n, x, y = self.n, self.x, self.y
        rhs = self.ops.cat([_mv(dP, x) + _mv_t(dA, y) + dc, -_mv(dA, x) + db], 1)
        dz = -self.solve(rhs)
        dv = dz[:, n:]
        dy = self.D(dv)
        return dz[:, :n], dy, dy - dv
