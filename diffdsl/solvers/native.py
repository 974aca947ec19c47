"""``solver="native"``: a batched primal-dual interior-point method for LPs and QPs.

    minimize ½xᵀPx + cᵀx   s.t.   A_e x = b_e   (zero-cone rows),
                                  A_i x + s = b_i,  s ≥ 0   (nonnegative rows)

Mehrotra's predictor-corrector on the whole batch at once: every iteration forms the
reduced KKT matrices [[P + A_iᵀ(Z/S)A_i + δI, A_eᵀ], [A_e, −δI]] of all elements as one
(B, n + m_e, n + m_e) array and factors them with one batched LU (PyTorch's, when
installed), which the predictor, the corrector and their refinement steps share.
Elements converge independently; the rest keep iterating. Dense, so for small and medium
problems (a few hundred variables), where per-element solver calls cost more than the
arithmetic.

Each element returns its best iterate. Status: optimal when its relative primal and dual
residuals and relative gap are below ``tol``; otherwise optimal_inaccurate below 1e-6 and
iteration_limit above (``refine=True`` then polishes an inaccurate answer to ~1e-15 where
the solution map is smooth). This method has no infeasibility certificates: an
infeasible or unbounded element ends at the iteration limit (use clarabel to classify it).
"""
from __future__ import annotations

import time

import numpy as np

from ..diff.threads import single_threaded_blas
from .base import RawSolution, SolverAdapter, SolveStatus, register

REGULARIZATION = 1e-10
INACCURATE = 1e-6   # relative error still reported optimal_inaccurate at the iteration limit
STALL = 5           # iterations without progress after which an accurate-enough element stops
AMBIGUOUS = 1e-4    # min/max of a complementary pair above which its side is unclear


class NativeAdapter(SolverAdapter):
    name = "native"
    cone_kinds = frozenset({"zero", "nonneg"})
    accepts_quadratic = True
    default_options = {"tol": 1e-10, "max_iter": 50}
    tolerance_keys = ("tol",)

    def solve(self, data, opts, warm=None) -> RawSolution:
        """One instance (the batched path, ``solve_batch``, is what CompiledProblem uses)."""
        P = np.triu(data.P.toarray())
        P = P + np.triu(P, 1).T
        return solve_dense(P[None], data.c[None], data.A.toarray()[None], data.b[None],
                           data.cones.zero, self.options(opts))[0]

    def solve_batch(self, program, values, opts) -> list[RawSolution]:
        """Every element of a ``ProgramValues`` batch in one run."""
        B, n, m = values.batch, program.n, program.m
        P = np.zeros((values.P.shape[1], n, n))
        pr, pc = program.P.indices, program.P.columns
        P[:, pr, pc] = values.P.T
        P[:, pc, pr] = values.P.T
        A = np.zeros((values.A.shape[1], m, n))
        A[:, program.A.indices, program.A.columns] = values.A.T
        P, A = (np.broadcast_to(M, (B,) + M.shape[1:]) for M in (P, A))
        with single_threaded_blas():      # NumPy's small products; the LU is PyTorch's
            raws = solve_dense(P, values.c.T, A, values.b.T, program.cones.zero,
                               self.options(opts))
            derivative = BatchDerivative(program, P, A, raws)
            derivative.polish(P, A, values.b.T, values.c.T, raws)
        for raw in raws:
            raw.derivative = derivative
        return raws


def solve_dense(P, c, A, b, zero: int, opts) -> list[RawSolution]:
    """The batched IPM on dense data: P (B, n, n), c (B, n), A (B, m, n), b (B, m).
    (An infeasible or unbounded element diverges; its overflow is expected, not reported.)"""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _interior_point(P, c, A, b, zero, opts)


def _interior_point(P, c, A, b, zero: int, opts) -> list[RawSolution]:
    started = time.perf_counter()
    tol, max_iter = float(opts["tol"]), int(opts["max_iter"])
    B, m, n = A.shape
    Ae, Ai, be, bi = A[:, :zero], A[:, zero:], b[:, :zero], b[:, zero:]
    mi = m - zero
    # a starting point: x from the KKT system with unit weights, slacks shifted to ≥ 1
    x, ye = _KKT(P, Ae, Ai, np.ones((B, mi))).solve(-c + _mv_t(Ai, bi), be)
    z = np.ones((B, mi))
    s = bi - _mv(Ai, x)
    shift = np.maximum(0.0, 1.0 - s.min(axis=1, initial=np.inf))
    s = s + shift[:, None] if mi else s
    scale = [1.0 + np.abs(v).max(axis=1, initial=0.0) for v in (b, c)]
    done = np.zeros(B, bool)
    iterations, stalled = np.zeros(B, int), np.zeros(B, int)
    best = [np.full(B, np.inf), x.copy(), ye.copy(), s.copy(), z.copy()]
    for _ in range(max_iter + 1):
        rd = _mv(P, x) + c + _mv_t(Ae, ye) + _mv_t(Ai, z)
        re, ri = _mv(Ae, x) - be, _mv(Ai, x) + s - bi
        mu = np.sum(s * z, axis=1) / max(mi, 1)
        error = _relative_error(P, c, x, s, z, rd, re, ri, scale)
        better = error < best[0]          # keep each element's best iterate: near the
        stalled = np.where(better, 0, stalled + 1)          # end, rounding can undo progress
        for k, value in enumerate((error, x, ye, s, z)):
            best[k] = np.where(better if k == 0 else better[:, None], value, best[k])
        done |= (error <= tol) | ((best[0] <= INACCURATE) & (stalled >= STALL))
        if done.all() or iterations.max() >= max_iter:
            break
        active = ~done
        iterations[active] += 1
        kkt = _KKT(P, Ae, Ai, z / s)
        # predictor (affine scaling)
        dx, dye, ds, dz = _newton(kkt, Ai, s, z, rd, re, ri, s * z)
        alpha = _step(s, ds, z, dz)
        mu_aff = np.sum((s + alpha[:, None] * ds) * (z + alpha[:, None] * dz), axis=1) \
            / max(mi, 1)
        sigma = np.where(mu > 0, (mu_aff / np.maximum(mu, 1e-300)) ** 3, 0.0)
        # corrector (centering and second-order term)
        rc = s * z + ds * dz - (sigma * mu)[:, None]
        dx, dye, ds, dz = _newton(kkt, Ai, s, z, rd, re, ri, rc)
        alpha = np.where(active, np.minimum(1.0, 0.99 * _step(s, ds, z, dz, limit=np.inf)),
                         0.0)[:, None]
        x, ye, s, z = x + alpha * dx, ye + alpha * dye, s + alpha * ds, z + alpha * dz
        s, z = np.maximum(s, 1e-300), np.maximum(z, 1e-300)
    elapsed = time.perf_counter() - started
    error, x, ye, s, z = best
    y = np.concatenate([ye, z], axis=1)
    slack = np.concatenate([np.zeros((B, zero)), s], axis=1)
    status = np.where(error <= tol, SolveStatus.OPTIMAL, np.where(
        error <= INACCURATE, SolveStatus.OPTIMAL_INACCURATE, SolveStatus.ITERATION_LIMIT))
    return [RawSolution(x[i].copy(), y[i].copy(), slack[i].copy(), status[i],
                        int(iterations[i]), elapsed / B) for i in range(B)]


class BatchDerivative:
    """The whole batch's solution-map derivative (diffdsl.diff.hsde's, for zero and
    nonnegative cones), with one batched LU of

        M = [[P, AᵀD], [−A, I − D]],   D = diag(1 on equality rows and active inequalities),

    at the returned points, reused by every VJP and JVP. The interior-point method's own last
    KKT matrix (OptNet's derivative) is not used: with W = Z/S at a barrier parameter of
    1e-10 it gave gradient errors up to 1e-2 on the benchmark QPs; D decided from the
    complementary pairs gives the exact derivative where the active set is strict."""

    def __init__(self, program, P, A, raws) -> None:
        zero = program.cones.zero
        self.program = program
        self.x = np.array([r.x for r in raws])
        self.y = np.array([r.y for r in raws])
        slack = np.array([r.s for r in raws])
        B, n, m = self.x.shape[0], self.x.shape[1], self.y.shape[1]
        d = np.ones((B, m))
        d[:, zero:] = (self.y[:, zero:] > slack[:, zero:]).astype(float)
        self.d = d
        M = np.zeros((B, n + m, n + m))
        M[:, :n, :n] = P
        M[:, :n, n:] = np.swapaxes(A, 1, 2) * d[:, None, :]
        M[:, n:, :n] = -A
        M[:, n + np.arange(m), n + np.arange(m)] = 1.0 - d
        self.M, self.n = M, n
        # elements whose complementary pairs are all clearly split (one member ≥ 1e4× the
        # other) and whose M factors; the others are differentiated one by one (hsde)
        pairs = np.stack([self.y[:, zero:], slack[:, zero:]])
        ratio = pairs.min(axis=0) / np.maximum(pairs.max(axis=0), 1e-300)
        self.usable = (ratio <= AMBIGUOUS).all(axis=1)
        torch = _torch()
        if torch is not None:
            lu, pivots, info = torch.linalg.lu_factor_ex(torch.from_numpy(M))
            self.lu = (lu, pivots)
            diagonal = torch.diagonal(lu, dim1=-2, dim2=-1).abs().numpy()
            self.usable &= (info.numpy() == 0) & (diagonal.min(axis=1) > 1e-12 * np.maximum(
                diagonal.max(axis=1), 1e-300))
        else:
            self.lu = None
            self.usable &= np.linalg.matrix_rank(M) == n + m

    def polish(self, P, A, b, c, raws, steps: int = 2) -> None:
        """Newton steps on the optimality conditions with this same LU (valid while the
        active set stays put, which is checked): each usable element's point — and so its
        derivative — becomes exact to rounding. Updates ``raws`` in place."""
        n, zero = self.n, self.program.cones.zero
        x, z_y = self.x.copy(), self.y - np.array([r.s for r in raws])

        def residual(x, z_y):
            y = z_y.copy()
            y[:, zero:] = np.maximum(z_y[:, zero:], 0.0)
            s = y - z_y
            r = np.concatenate([_mv(P, x) + _mv_t(A, y) + c, -_mv(A, x) + b - s], axis=1)
            return r, y, s

        r = residual(x, z_y)[0]
        # the bar: the solver's own (unprojected) point, whose residual leaves out
        # complementarity; a polished point must beat it (or be exact)
        raw_y, raw_s = self.y, np.array([r_.s for r_ in raws])
        y, s = raw_y.copy(), raw_s.copy()
        bar = np.linalg.norm(np.concatenate([_mv(P, x) + _mv_t(A, raw_y) + c,
                                             -_mv(A, x) + b - raw_s], axis=1), axis=1)
        for _ in range(steps):
            step = self._solve(r, transpose=False)
            x_new, z_new = x - step[:, :n], z_y - step[:, n:]
            r_new, y_new, s_new = residual(x_new, z_new)
            same = (y_new[:, zero:] > 0).astype(float) == self.d[:, zero:]
            norm = np.linalg.norm(r_new, axis=1)
            exact = norm <= 1e-12 * (1.0 + np.linalg.norm(np.concatenate([x_new, z_new],
                                                                          axis=1), axis=1))
            accept = self.usable & same.all(axis=1) & (
                norm < np.linalg.norm(r, axis=1)) & (exact | (norm <= bar))
            x = np.where(accept[:, None], x_new, x)
            z_y = np.where(accept[:, None], z_new, z_y)
            r = np.where(accept[:, None], r_new, r)
            y = np.where(accept[:, None], y_new, y)
            s = np.where(accept[:, None], s_new, s)
        self.x, self.y = x, y
        for i, raw in enumerate(raws):
            raw.x, raw.y, raw.s = x[i], y[i], s[i]

    def _solve(self, rhs: np.ndarray, transpose: bool) -> np.ndarray:
        """M⁻¹ rhs (or M⁻ᵀ rhs) for the batch, refined once."""
        M = np.swapaxes(self.M, 1, 2) if transpose else self.M
        if self.lu is None:
            return np.linalg.solve(M, rhs[..., None])[..., 0]
        torch = _torch()
        b = torch.from_numpy(rhs[..., None])
        x = torch.linalg.lu_solve(*self.lu, b, adjoint=transpose)
        x = x + torch.linalg.lu_solve(*self.lu, b - torch.from_numpy(M) @ x, adjoint=transpose)
        return x[..., 0].numpy()

    def vjp(self, gx: np.ndarray, gy: np.ndarray):
        """(grad P values, grad c, grad A values, grad b), each (B, ·), of ⟨gx, x⟩ + ⟨gy, y⟩."""
        n, x, y = self.n, self.x, self.y
        w = -self._solve(np.concatenate([gx, self.d * gy], axis=1), transpose=True)
        wx, wy = w[:, :n], w[:, n:]
        A, Pp = self.program.A, self.program.P
        grad_A = y[:, A.indices] * wx[:, A.columns] - wy[:, A.indices] * x[:, A.columns]
        off = Pp.indices != Pp.columns
        grad_P = (wx[:, Pp.indices] * x[:, Pp.columns]
                  + np.where(off, wx[:, Pp.columns] * x[:, Pp.indices], 0.0))
        return grad_P, wx, grad_A, wy

    def jvp(self, dP: np.ndarray, dc: np.ndarray, dA: np.ndarray, db: np.ndarray):
        """(dx, dy), each (B, ·), for data tangents (B, ·) (P and A by their values)."""
        n, x, y = self.n, self.x, self.y
        A, Pp = self.program.A, self.program.P
        dA_x, dAT_y = A.matvec(dA.T, x.T).T, A.rmatvec(dA.T, y.T).T
        dP_x = Pp.symmetric_matvec(dP.T, x.T).T
        dz = -self._solve(np.concatenate([dP_x + dAT_y + dc, -dA_x + db], axis=1),
                          transpose=False)
        return dz[:, :n], self.d * dz[:, n:]


def _relative_error(P, c, x, s, z, rd, re, ri, scale):
    """Per element: the largest of the relative dual and primal residuals and the gap."""
    gap = np.sum(s * z, axis=1) / (1.0 + np.abs(np.sum(x * _mv(P, x), axis=1))
                                   + np.abs(np.sum(c * x, axis=1)))
    primal = np.maximum(np.abs(re).max(axis=1, initial=0), np.abs(ri).max(axis=1, initial=0))
    return np.maximum.reduce([np.abs(rd).max(axis=1, initial=0) / scale[1],
                              primal / scale[0], gap])


def _newton(kkt, Ai, s, z, rd, re, ri, rc):
    """The Newton direction for residuals (rd, re, ri) and complementarity target rc:
    ds = −ri − A_i dx, dz = (−rc + z∘(ri + A_i dx)) / s, and the reduced KKT system in
    (dx, dye), solved with the iteration's factorization ``kkt``."""
    rhs_x = -rd - _mv_t(Ai, (-rc + z * ri) / s)
    dx, dye = kkt.solve(rhs_x, -re)
    Adx = _mv(Ai, dx)
    ds = -ri - Adx
    dz = (-rc + z * (ri + Adx)) / s
    return dx, dye, ds, dz


class _KKT:
    """[[P + A_iᵀ diag(w) A_i + δI, A_eᵀ], [A_e, −δI]] for the whole batch, factored once
    (batched LU: PyTorch's when it is installed, else np.linalg.solve on every call) and
    solved with one step of iterative refinement against the unregularized matrix."""

    def __init__(self, P, Ae, Ai, w) -> None:
        B, n = P.shape[0], P.shape[1]
        me = Ae.shape[1]
        K = np.zeros((B, n + me, n + me))
        K[:, :n, :n] = P + np.swapaxes(Ai, 1, 2) @ (w[..., None] * Ai)
        K[:, :n, n:] = np.swapaxes(Ae, 1, 2)
        K[:, n:, :n] = Ae
        self.exact, self.n = K, n
        regularized = K.copy()
        regularized[:, np.arange(n), np.arange(n)] += REGULARIZATION
        regularized[:, n + np.arange(me), n + np.arange(me)] -= REGULARIZATION
        self.regularized = regularized
        torch = _torch()
        self.lu = torch.linalg.lu_factor(torch.from_numpy(regularized)) if torch else None

    def _raw(self, rhs: np.ndarray) -> np.ndarray:
        if self.lu is None:
            return np.linalg.solve(self.regularized, rhs)
        torch = _torch()
        return torch.linalg.lu_solve(*self.lu, torch.from_numpy(rhs)).numpy()

    def solve(self, rhs_x, rhs_e):
        rhs = np.concatenate([rhs_x, rhs_e], axis=1)[..., None]
        sol = self._raw(rhs)
        sol = (sol + self._raw(rhs - self.exact @ sol))[..., 0]
        return sol[:, :self.n], sol[:, self.n:]


def _torch():
    """PyTorch when it is installed (its batched LU factors once per iteration)."""
    try:
        import torch
    except ImportError:                  # pragma: no cover - torch is an optional extra
        return None
    return torch


def _step(s, ds, z, dz, limit: float = 1.0):
    """Largest α ≤ limit keeping s + α ds ≥ 0 and z + α dz ≥ 0, per element."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.concatenate([np.where(ds < 0, -s / ds, np.inf),
                                 np.where(dz < 0, -z / dz, np.inf)], axis=1)
    return np.minimum(limit, ratios.min(axis=1, initial=np.inf))


def _mv(M, v):
    return (M @ v[..., None])[..., 0]


def _mv_t(M, v):
    return (v[:, None, :] @ M)[:, 0]


register(NativeAdapter())
