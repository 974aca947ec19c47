"""Euclidean projections onto the cones of the standard form and their derivatives.

Each projection Π_K is exact (closed form for zero, nonnegative, second-order and PSD cones;
a one-dimensional search polished by Newton's method on the projection's optimality
conditions for the exponential and power cones). Its derivative DΠ_K(v) is returned as a
dense matrix per cone block (blocks are small: one per cone); ``BlockDiagonal`` stitches
them into a linear operator on the whole vector. Dual cones use the Moreau identity
Π_K*(v) = v + Π_K(−v), so DΠ_K*(v) = I − DΠ_K(−v).

Where Π_K is not differentiable (a point on a kink: v with a zero entry for R₊, ‖x‖ = |t| for
second-order cones, a zero eigenvalue for PSD, the boundary between cases for exp/pow) the
derivative returned is one element of the Clarke generalized Jacobian, and the caller is told
through ``degenerate`` counts.
"""
from __future__ import annotations

import collections
import threading

import numpy as np
import scipy.sparse as sp

from .cones import ConeDims, matrix_to_svec, svec_to_matrix

DEGENERACY_TOL = 1e-9


# ---------------------------------------------------------------------------- blocks
def blocks(cones: ConeDims) -> list[tuple[str, int, object]]:
    """(kind, size, parameter) of every elementary block, in the standard order."""
    out = []
    if cones.zero:
        out.append(("zero", cones.zero, None))
    if cones.nonneg:
        out.append(("nonneg", cones.nonneg, None))
    out += [("soc", k, None) for k in cones.soc]
    out += [("psd", n * (n + 1) // 2, n) for n in cones.psd]
    out += [("exp", 3, None)] * cones.exp
    out += [("pow", 3, a) for a in cones.pow]
    return out


class BlockDiagonal:
    """A block-diagonal linear operator, held as groups ``(offsets, blocks)``: a diagonal
    (offsets of length 1, a 1-d array), or square blocks of one size stacked (G, k, k) with
    their G offsets — so the many small blocks of, say, 200 exponential cones are handled
    in one go."""

    def __init__(self, groups: list, size: int) -> None:
        self.groups, self.size = groups, int(size)

    @classmethod
    def of(cls, parts: list[np.ndarray], offsets=None, size: int | None = None
           ) -> "BlockDiagonal":
        """From blocks, each a 1-d array (a diagonal) or a square 2-d block, placed one after
        the other or at ``offsets`` (then ``size`` is the operator's); square blocks of one
        size are stacked into one group."""
        if offsets is None:
            ends = np.cumsum([0] + [len(p) for p in parts])
            offsets, size = ends[:-1], ends[-1]
        offsets = np.asarray(offsets, int)
        groups, square = [], {}
        for i, p in enumerate(parts):
            if p.ndim == 1:
                groups.append((offsets[i:i + 1], p))
            else:
                square.setdefault(len(p), []).append(i)
        for members in square.values():
            groups.append((offsets[members], np.stack([parts[i] for i in members])))
        return cls(groups, size)

    @property
    def parts(self) -> list[np.ndarray]:
        """The blocks in order (diagonals as 1-d arrays)."""
        located = [(offsets[0], p) for offsets, p in self.groups if p.ndim == 1]
        located += [(o, b) for offsets, p in self.groups if p.ndim == 3
                    for o, b in zip(offsets, p, strict=True)]
        return [p for _, p in sorted(located, key=lambda item: item[0])]

    def _entries(self):
        """(rows, columns, values) of the operator's stored entries, group by group."""
        for offsets, p in self.groups:
            if p.ndim == 1:
                index = offsets[0] + np.arange(len(p))
                yield index, index, p
            else:
                k = p.shape[-1]
                rows = (offsets[:, None, None] + np.arange(k)[:, None]).repeat(k, 2)
                yield rows, rows.transpose(0, 2, 1), p

    def sparse(self) -> sp.csr_matrix:
        """The operator as one CSR matrix (built from index arrays, not block by block)."""
        if not self.groups:
            return sp.csr_matrix((self.size, self.size))
        rows, cols, vals = (np.concatenate(x) for x in zip(
            *((r.ravel(), c.ravel(), v.ravel()) for r, c, v in self._entries()), strict=True))
        keep = vals != 0
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        order = np.lexsort((cols, rows))          # blocks do not overlap: no duplicates
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.size))])
        return sp.csr_matrix((vals[order], cols[order], indptr), shape=(self.size, self.size))

    def dense(self) -> np.ndarray:
        out = np.zeros((self.size, self.size))
        for rows, cols, vals in self._entries():
            out[rows, cols] = vals
        return out

    def diagonal(self) -> np.ndarray | None:
        """The diagonal when every block is one (polyhedral cones), else None."""
        if any(p.ndim != 1 for _, p in self.groups):
            return None
        out = np.zeros(self.size)
        for offsets, p in self.groups:
            out[offsets[0]:offsets[0] + len(p)] = p
        return out

    def nonzero_lines(self) -> np.ndarray:
        """Mask of the indices k whose row or column of the operator is not all zero."""
        out = np.zeros(self.size, bool)
        for offsets, p in self.groups:
            if p.ndim == 1:
                out[offsets[0]:offsets[0] + len(p)] = p != 0
            else:
                k = p.shape[-1]
                out[(offsets[:, None] + np.arange(k)).ravel()] = (
                    (p != 0).any(1) | (p != 0).any(2)).ravel()
        return out

    def __eq__(self, other) -> bool:
        return (isinstance(other, BlockDiagonal) and self.size == other.size
                and len(self.groups) == len(other.groups)
                and all(np.array_equal(o1, o2) and np.array_equal(p1, p2) for (o1, p1), (o2, p2)
                        in zip(self.groups, other.groups, strict=True)))

    __hash__ = None


# ---------------------------------------------------------------------------- primal cones
def project(v: np.ndarray, cones: ConeDims, dual: bool = False) -> np.ndarray:
    """Π_K(v), or Π_K*(v) with ``dual=True``. Exponential cones are projected all at once."""
    out, i = np.empty_like(v), 0
    for kind, size, param in blocks(cones):
        if kind != "exp":
            out[i:i + size] = project_block(kind, v[i:i + size], param, dual)
        i += size
    if cones.exp:
        rows = _exp_rows(cones)
        V = v[rows].reshape(-1, 3)
        out[rows] = (V + _exp_project_memo(-V) if dual else _exp_project_memo(V)).reshape(-1)
    return out


def derivative(v: np.ndarray, cones: ConeDims, dual: bool = False) -> BlockDiagonal:
    """DΠ_K(v) (or DΠ_K*(v)) as a block-diagonal operator."""
    parts, offsets, i = [], [], 0
    for kind, size, param in blocks(cones):
        if kind != "exp":
            parts.append(derivative_block(kind, v[i:i + size], param, dual))
            offsets.append(i)
        i += size
    D = BlockDiagonal.of(parts, offsets, len(v))   # the exponential cones: one group, below
    if cones.exp:
        rows = _exp_rows(cones)
        V = v[rows].reshape(-1, 3)
        W = np.ascontiguousarray(-V if dual else V)
        jac = _JACOBIANS.get(W)
        if jac is None:
            jac = exp_jacobian(W, _exp_project_memo(W))
        D.groups.append((np.arange(rows.start, rows.stop, 3), np.eye(3) - jac if dual else jac))
    return D


class _Memo:
    """A small LRU of arrays keyed by the bytes of an array, safe across threads."""

    def __init__(self, entries: int = 64, nbytes: int = 32 * 2 ** 20) -> None:
        self.entries, self.nbytes = entries, nbytes
        self.store: collections.OrderedDict = collections.OrderedDict()
        self.lock = threading.Lock()

    @staticmethod
    def key(V: np.ndarray):
        return V.shape, V.tobytes()

    def get(self, V: np.ndarray):
        key = self.key(V)
        with self.lock:
            out = self.store.get(key)
            if out is not None:
                self.store.move_to_end(key)
        return out

    def put(self, V: np.ndarray, value: np.ndarray) -> None:
        value = np.ascontiguousarray(value)
        if V.nbytes + value.nbytes > self.nbytes:
            return
        with self.lock:
            self.store[self.key(V)] = value
            while (len(self.store) > self.entries
                   or sum(2 * a.nbytes for a in self.store.values()) > self.nbytes):
                self.store.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.store.clear()


#: exponential-cone projections Π(V) and Jacobians DΠ(V) by the bytes of V (K, 3): the
#: refinement and the derivative ask for the same points several times
_PROJECTIONS, _JACOBIANS = _Memo(), _Memo()
#: elements a lockstep refinement handles at once (each round's points must stay in memo)
LOCKSTEP = 16


def _exp_project_memo(V: np.ndarray) -> np.ndarray:
    """``exp_project``, remembered."""
    V = np.ascontiguousarray(V, dtype=float)
    out = _PROJECTIONS.get(V)
    if out is None:
        out = exp_project(V, _warm_guess(V))
        _PROJECTIONS.put(V, out)
    _LAST_EXP.pair = (V, out)
    return out.copy()


def _exp_key(v, cones: ConeDims) -> np.ndarray:
    """The exponential-cone rows of −v, (K, 3): the points Π_K*(v) = v + Π_K(−v)
    projects."""
    return np.ascontiguousarray(-np.asarray(v)[_exp_rows(cones)].reshape(-1, 3))


def _project_together(keys: list[np.ndarray], guesses: list) -> None:
    """Project every key's rows in one call (Newton from the guess rows where given, NaN
    elsewhere) and remember each answer."""
    if not keys:
        return
    out = exp_project(np.concatenate(keys), np.concatenate(guesses))
    for V, P in zip(keys, np.split(out, len(keys)), strict=True):
        _PROJECTIONS.put(V, P)


def remember_dual_projections(vs, cones: ConeDims, slacks=None) -> None:
    """Project the exponential-cone part of every v in ``vs`` (the rows of an array) onto
    K* in one batched call and remember each answer (``project(v, cones, dual=True)`` then
    finds it): a batch's per-element refinements start from points whose projections are
    computed together. ``slacks``: a solver's s for v = y − s (same shape); Π_K(−v) = s
    for an exact solution (Moreau), so Newton's method starts there (``exp_project``'s
    ``guess``: kept only where certified)."""
    if not cones.exp or not len(vs):
        return
    count = min(len(vs), _PROJECTIONS.entries)
    keys = [_exp_key(v, cones) for v in vs[:count]]
    rows = _exp_rows(cones)
    guesses = [np.full_like(V, np.nan) for V in keys] if slacks is None else \
        [np.asarray(slack)[rows].reshape(-1, 3) for slack in slacks[:count]]
    _project_together(keys, guesses)


def prefetch(requests: list, cones: ConeDims) -> None:
    """Answer a round of lockstep refinement requests (``hsde.SolutionDerivative.together``)
    in batched calls: ("project", v, v_near) — Π_K*(v), Newton starting from v_near's
    remembered projection; ("jacobian", v, None) — DΠ_K*(v). Only the exponential cones
    are batched (the other projections are closed forms)."""
    if not cones.exp:
        return
    keys, guesses = [], []
    for _, v, near in (r for r in requests if r[0] == "project"):
        V = _exp_key(v, cones)
        if _PROJECTIONS.get(V) is None:
            start = None if near is None else _PROJECTIONS.get(_exp_key(near, cones))
            keys.append(V)
            guesses.append(np.full_like(V, np.nan) if start is None else start)
    _project_together(keys, guesses)
    jacobian = [V for V in (_exp_key(r[1], cones) for r in requests if r[0] == "jacobian")
                if _JACOBIANS.get(V) is None]
    if jacobian:
        stacked = np.concatenate(jacobian)
        P = [_PROJECTIONS.get(V) for V in jacobian]
        if any(p is None for p in P):
            P = exp_project(stacked)
        else:
            P = np.concatenate(P)
        out = exp_jacobian(stacked, P)
        for V, J in zip(jacobian, np.split(out, len(jacobian)), strict=True):
            _JACOBIANS.put(V, J)


def clear_exp_memo() -> None:
    """Forget remembered exponential-cone projections and Jacobians (benchmarks time cold
    runs)."""
    _PROJECTIONS.clear()
    _JACOBIANS.clear()
    _LAST_EXP.pair = None


#: per thread, the last (V, Π(V)) computed: a Newton refinement projects a sequence of
#: nearby points, and each projection starts Newton's method from the previous one
_LAST_EXP = threading.local()
WARM_RADIUS = 1e-2       # a row's previous projection is a start when within this distance


def _warm_guess(V: np.ndarray) -> np.ndarray | None:
    """Starting points for V's rows from the thread's last projection (NaN rows: none),
    for rows within ``WARM_RADIUS`` (relative) of the last point projected there."""
    last = getattr(_LAST_EXP, "pair", None)
    if last is None or last[0].shape != V.shape:
        return None
    previous, projection = last
    near = _row_norm(V - previous) <= WARM_RADIUS * (1.0 + _row_norm(V))
    return np.where(near[:, None], projection, np.nan)


def _exp_rows(cones: ConeDims) -> slice:
    start = cones.offsets()["exp"]
    return slice(start, start + 3 * cones.exp)


def project_block(kind: str, v: np.ndarray, param, dual: bool) -> np.ndarray:
    if dual:   # Moreau: Π_K*(v) = v + Π_K(−v)  (the zero cone's dual is the whole space)
        return v + project_block(kind, -v, param, False)
    return PROJECTIONS[kind](v, param)


def derivative_block(kind: str, v: np.ndarray, param, dual: bool) -> np.ndarray:
    if dual:
        d = derivative_block(kind, -v, param, False)
        return 1.0 - d if d.ndim == 1 else np.eye(len(v)) - d
    return DERIVATIVES[kind](v, param)


def _zero(v, _):
    return np.zeros_like(v)


def _zero_d(v, _):
    return np.zeros_like(v)


def _nonneg(v, _):
    return np.maximum(v, 0.0)


def _nonneg_d(v, _):
    return (v > 0).astype(float)


def _soc(v, _):
    t, x = v[0], v[1:]
    r = np.linalg.norm(x)
    if r <= t:
        return v.copy()
    if r <= -t:
        return np.zeros_like(v)
    scale = (t + r) / 2
    return np.concatenate([[scale], scale * x / r])


def _soc_d(v, _):
    t, x = v[0], v[1:]
    k = len(v)
    r = np.linalg.norm(x)
    if r <= t:
        return np.eye(k)
    if r <= -t:
        return np.zeros((k, k))
    u = x / r
    D = np.empty((k, k))
    D[0, 0] = 0.5
    D[0, 1:] = D[1:, 0] = 0.5 * u
    D[1:, 1:] = 0.5 * ((1 + t / r) * np.eye(k - 1) - (t / r) * np.outer(u, u))
    return D


def _psd(v, n):
    lam, V = np.linalg.eigh(svec_to_matrix(v, n))
    return matrix_to_svec((V * np.maximum(lam, 0)) @ V.T)


def _psd_d(v, n):
    """DΠ(X)[dX] = V (B ∘ (Vᵀ dX V)) Vᵀ with B_ij = (λ_i⁺ − λ_j⁺)/(λ_i − λ_j) (its limit,
    the step function, on ties), written in svec coordinates."""
    lam, V = np.linalg.eigh(svec_to_matrix(v, n))
    plus = np.maximum(lam, 0)
    diff = lam[:, None] - lam[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        B = np.where(np.abs(diff) > 1e-12 * max(1.0, np.abs(lam).max()),
                     (plus[:, None] - plus[None, :]) / diff,
                     (lam[:, None] + lam[None, :] > 0).astype(float))
    size = n * (n + 1) // 2
    D = np.empty((size, size))
    for k in range(size):                                  # image of each svec basis vector
        E = svec_to_matrix(np.eye(size)[k], n)
        D[:, k] = matrix_to_svec(V @ (B * (V.T @ E @ V)) @ V.T)
    return D


# ---------------------------------------------------------------------------- exp / pow
def _exp(v, _):
    """Π onto the exponential cone of one 3-vector (``exp_project`` with one row)."""
    return exp_project(np.asarray(v, float)[None])[0]


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ_j a_ij b_ij per row (NumPy's axis-1 reductions over 3 or 4 columns cost several
    times more than these column-wise forms, and the exponential-cone code is made of
    them)."""
    return np.einsum("ij,ij->i", a, b)


def _row_norm(a: np.ndarray) -> np.ndarray:
    return np.sqrt(_row_dot(a, a))


def _row_max_abs(a: np.ndarray) -> np.ndarray:
    """max_j |a_ij| per row (NaN where the row has one)."""
    out = np.abs(a[:, 0])
    for j in range(1, a.shape[1]):
        out = np.maximum(out, np.abs(a[:, j]))
    return out


def _row_finite(a: np.ndarray) -> np.ndarray:
    return _row_max_abs(a) < np.inf


def exp_project(V: np.ndarray, guess: np.ndarray | None = None) -> np.ndarray:
    """Π onto the exponential cone, row by row of V (K, 3), all rows at once: v itself
    (inside), 0 (polar cone), the point of the face {x ≤ 0, y = 0, z ≥ 0} where Moreau's
    conditions certify it, else the closest of that face point and the best point
    s·(ρ, 1, e^ρ) of the smooth boundary — ρ by a grid over a bracket, refined by
    golden-section search on the grid cell (to ~1e-6), then Newton on the optimality
    conditions (to rounding).

    ``guess`` (K, 3), NaN where none: rows with a guess on the smooth boundary start
    Newton's method there instead; a row keeps that answer only where it satisfies the
    optimality conditions p − v + μ∇g(p) = 0, g(p) = 0 with μ ≥ 0 and y > 0 to rounding
    (sufficient: the projection onto a convex set is its unique KKT point), else it takes
    the search above."""
    V = np.asarray(V, float)
    out = np.zeros_like(V)
    inside, polar = _exp_inside(V), _exp_polar(V)
    rest = np.flatnonzero(~inside & ~polar)
    out[inside] = V[inside]
    if not rest.size:
        return out
    # the face point f = (min(x, 0), 0, max(z, 0)) is Π(v) exactly when v − f lies in the
    # polar cone (Moreau: f ∈ K, v − f ∈ K°, ⟨f, v − f⟩ = 0 always holds for it)
    W = V[rest]
    face = np.stack([np.minimum(W[:, 0], 0.0), np.zeros(len(W)), np.maximum(W[:, 2], 0.0)],
                    axis=1)
    cold = ~_exp_polar(W - face)
    out[rest[~cold]] = face[~cold]
    if guess is not None:
        G = guess[rest]
        warm = np.flatnonzero(cold & _row_finite(G) & (G[:, 1] > 0))
        if warm.size:
            P, certified = _exp_newton(V[rest[warm]], G[warm], certify=True)
            out[rest[warm[certified]]] = P[certified]
            cold[warm[certified]] = False
    if cold.any():
        out[rest[cold]] = _exp_boundary(V[rest[cold]])
    return out


def _exp_inside(V, tol=0.0):
    x, y, z = V.T
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        smooth = (y > 0) & (y * np.exp(np.minimum(x / np.where(y > 0, y, 1.0), 700))
                            <= z + tol)
    return smooth | ((x <= tol) & (np.abs(y) <= tol) & (z >= -tol))


def _exp_polar(V, tol=0.0):
    """−v ∈ K* = {(u, w, t): u < 0, −u e^{w/u} ≤ e t} ∪ {u = 0, w, t ≥ 0}: Π_K(v) = 0."""
    u, w, t = -V.T
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        smooth = (u < 0) & (-u * np.exp(np.minimum(w / np.where(u < 0, u, -1.0), 700))
                            <= np.e * t + tol)
    return smooth | ((np.abs(u) <= tol) & (w >= -tol) & (t >= -tol))


def _exp_boundary(V):
    """The projection of rows outside the cone and its polar (K, 3)."""
    x, y, z = V.T
    face = np.stack([np.minimum(x, 0.0), np.zeros_like(x), np.maximum(z, 0.0)], axis=1)
    lo, hi = np.full(len(V), -40.0), np.full(len(V), 40.0)
    centred = (z > 0) & (y > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = np.log(np.where(centred, z / np.where(y > 0, y, 1.0), 1.0))
    lo = np.where(centred, np.minimum(lo, centre - 40), lo)
    hi = np.where(centred, np.maximum(hi, centre + 40), hi)

    def alignment(rho):                     # ⟨v, r⟩/‖r‖ for r = (ρ, 1, e^ρ), per row
        e = np.exp(rho)
        return (x[:, None] * rho + y[:, None] + z[:, None] * e) / np.sqrt(rho * rho + 1
                                                                          + e * e)

    t = np.linspace(0.0, 1.0, 81)
    grid = lo[:, None] + (hi - lo)[:, None] * t
    k = np.argmax(alignment(grid), axis=1)
    rows = np.arange(len(V))
    a, b = grid[rows, np.maximum(k - 1, 0)], grid[rows, np.minimum(k + 1, 80)]
    golden = (np.sqrt(5.0) - 1) / 2
    c, d = b - golden * (b - a), a + golden * (b - a)
    fc, fd = alignment(c[:, None])[:, 0], alignment(d[:, None])[:, 0]
    for _ in range(30):                     # to ~1e-6 of the cell: Newton finishes
        left = fc > fd                      # the maximum is in [a, d]: d ← c, c new
        a, b = np.where(left, a, c), np.where(left, d, b)
        probe = np.where(left, b - golden * (b - a), a + golden * (b - a))
        f = alignment(probe[:, None])[:, 0]  # one new point per row and step
        c, d = np.where(left, probe, d), np.where(left, c, probe)
        fc, fd = np.where(left, f, fd), np.where(left, fc, f)
    rho = (a + b) / 2
    ray = np.stack([rho, np.ones_like(rho), np.exp(rho)], axis=1)
    scale = _row_dot(V, ray) / _row_dot(ray, ray)
    on_ray = scale > 0
    point = np.where(on_ray[:, None], _exp_newton(V, scale[:, None] * ray), face)
    closer = _row_norm(point - V) < _row_norm(face - V)
    return np.where((on_ray & closer)[:, None], point, face)


def _exp_constraint(P):
    """g(p) = y e^{x/y} − z, its gradient, and its Hessian's factor at every row of P
    (y > 0): ∇²g = (e^{x/y}/y) u uᵀ with u = (1, −x/y, 0) — rank one."""
    x, y, z = P.T
    e = np.exp(x / y)
    grad = np.stack([e, e * (1 - x / y), -np.ones_like(e)], axis=1)
    u = np.stack([np.ones_like(x), -x / y, np.zeros_like(x)], axis=1)
    return y * e - z, grad, (e / y, u)


def _exp_kkt_solve(mu, grad, hessian, r_p, r_mu):
    """Solve [[I + μ∇²g, ∇g], [∇gᵀ, 0]] (dp, dμ) = (r_p, r_mu) row by row in closed form:
    I + μ∇²g = I + c uuᵀ (c = μ e^{x/y}/y) has the Sherman–Morrison inverse
    I − c uuᵀ/(1 + c uᵀu), and dμ = (∇gᵀA⁻¹r_p − r_mu)/(∇gᵀA⁻¹∇g). ``r_p`` (K, 3) or
    (K, 3, k) for k right-hand sides (``r_mu`` (K,) or (K, k)); NaN or inf where the
    system is singular."""
    curvature, u = hessian
    c = mu * curvature
    shrink = c / (1.0 + c * _row_dot(u, u))

    def inverse(v):                                   # A⁻¹v for v (K, 3) or (K, 3, k)
        if v.ndim == 2:
            return v - (shrink * _row_dot(u, v))[:, None] * u
        return v - (shrink[:, None] * np.einsum("ki,kij->kj", u, v))[:, None, :] * u[..., None]

    w = inverse(grad)
    gw = _row_dot(grad, w)
    Ar = inverse(r_p)
    if r_p.ndim == 2:
        d_mu = (_row_dot(grad, Ar) - r_mu) / gw
        return Ar - d_mu[:, None] * w, d_mu
    d_mu = (np.einsum("ki,kij->kj", grad, Ar) - r_mu) / gw[:, None]
    return Ar - w[..., None] * d_mu[:, None, :], d_mu


def _exp_newton(V, P, steps: int = 20, certify: bool = False):
    """Newton on p − v + μ∇g(p) = 0, g(p) = y e^{x/y} − z = 0, for every row at once; a
    row keeps its last point with y > 0 and a finite value. ``certify``: also return, per
    row, whether its point satisfies those conditions to rounding with μ ≥ 0."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _, grad, _ = _exp_constraint(P)
        mu = np.maximum(0.0, _row_dot(V - P, grad) / _row_dot(grad, grad))
        scale = np.maximum(1.0, _row_max_abs(V))
        # a row whose step was refused or negligible would only repeat it; one whose
        # residual stopped falling (at rounding level: stopped halving) is not converging
        # from there (e.g. next to the face y = 0, where e^{x/y} under- or overflows)
        moving = np.ones(len(P), bool)
        previous = np.full(len(P), np.inf)
        for k in range(steps + 1):          # the last pass only evaluates F (to certify)
            g, grad, H = _exp_constraint(P)
            F = np.concatenate([P - V + mu[:, None] * grad, g[:, None]], axis=1)
            size = _row_max_abs(F)
            moving &= (size < previous) & ((size > 1e-12 * scale) | (size < 0.5 * previous))
            previous = size
            going = moving & (size >= 1e-15 * scale)
            if not going.any() or k == steps:
                break
            dp, d_mu = _exp_kkt_solve(mu, grad, H, -F[:, :3], -F[:, 3])
            step = np.concatenate([dp, d_mu[:, None]], axis=1)
            ok = going & _row_finite(step) & (size < np.inf)
            step = np.where(ok[:, None], step, 0.0)
            P_new, mu_new = P + step[:, :3], mu + step[:, 3]
            accept = ok & _row_finite(P_new) & (P_new[:, 1] > 0)
            moving = accept & (_row_max_abs(step) > 1e-16 * scale)
            P = np.where(accept[:, None], P_new, P)
            mu = np.where(accept, mu_new, mu)
        if not certify:
            return P
        return P, ((size <= 1e-12 * scale) & (mu >= 0) & (P[:, 1] > 0) & _row_finite(P))


def exp_jacobian(V: np.ndarray, projection: np.ndarray | None = None) -> np.ndarray:
    """DΠ onto the exponential cone at every row of V (K, 3): (K, 3, 3). I inside, 0 in the
    polar cone, the face's clamp on {x ≤ 0, y = 0, z ≥ 0}, else the implicit derivative of
    p − v + μ∇g(p) = 0, g(p) = 0 at the projection (``projection``: Π(V), if known)."""
    V = np.asarray(V, float)
    out = np.zeros((len(V), 3, 3))
    inside, polar = _exp_inside(V), _exp_polar(V)
    out[inside] = np.eye(3)
    rest = np.flatnonzero(~inside & ~polar)
    if not rest.size:
        return out
    W = V[rest]
    P = exp_project(W) if projection is None else np.asarray(projection, float)[rest]
    on_face = P[:, 1] <= 1e-12 * np.maximum(1.0, _row_max_abs(P))
    face = np.zeros((len(rest), 3, 3))
    face[:, 0, 0], face[:, 2, 2] = W[:, 0] < 0, W[:, 2] > 0
    smooth = np.flatnonzero(~on_face)
    jac = face
    if smooth.size:
        _, grad, H = _exp_constraint(P[smooth])
        mu = _row_dot(W[smooth] - P[smooth], grad) / _row_dot(grad, grad)
        k = len(smooth)
        jac[smooth] = _exp_kkt_solve(mu, grad, H, np.broadcast_to(np.eye(3), (k, 3, 3)),
                                     np.zeros((k, 3)))[0]
    out[rest] = jac
    return out


def _pow_in_cone(v, a, tol=0.0):
    x, y, z = v
    return x >= -tol and y >= -tol and abs(z) <= max(x, 0) ** a * max(y, 0) ** (1 - a) + tol


def _pow_in_polar(v, a, tol=0.0):
    """−v ∈ K_pow* = {(u, w, t): (u/α)^α (w/(1−α))^{1−α} ≥ |t|, u, w ≥ 0}."""
    u, w, t = -v
    return u >= -tol and w >= -tol and \
        abs(t) <= max(u / a, 0) ** a * max(w / (1 - a), 0) ** (1 - a) + tol


def _pow(v, a):
    """Outside K and its polar, Π(v) = (x(r), y(r), sign(z₀) r) where r ∈ (0, |z₀|) solves
    x(r)^α y(r)^{1−α} = r with x(r) = ½(x₀ + √(x₀² + 4α r(|z₀| − r))) and y(r) likewise with
    1 − α (Hien, 2015); the root is bracketed and found by bisection, then polished."""
    if _pow_in_cone(v, a):
        return v.copy()
    if _pow_in_polar(v, a):
        return np.zeros(3)
    x0, y0, z0 = v
    zabs = abs(z0)

    def point(r):
        x = 0.5 * (x0 + np.sqrt(x0 * x0 + 4 * a * r * (zabs - r)))
        y = 0.5 * (y0 + np.sqrt(y0 * y0 + 4 * (1 - a) * r * (zabs - r)))
        return x, y

    lo, hi = 0.0, zabs
    for _ in range(200):
        r = 0.5 * (lo + hi)
        x, y = point(r)
        if x ** a * y ** (1 - a) > r:
            lo = r
        else:
            hi = r
        if hi - lo <= 1e-16 * max(1.0, zabs):
            break
    r = 0.5 * (lo + hi)
    x, y = point(r)
    p = np.array([x, y, r])
    if x > 0 and y > 0:
        p = _polish(np.array([x0, y0, zabs]), p, _pow_constraint(a))
    return np.array([p[0], p[1], np.copysign(p[2], z0)])


def _pow_constraint(a):
    """g(p) = z − x^α y^{1−α} (z ≥ 0 side), gradient and Hessian (x, y > 0)."""
    def g(p):
        x, y, z = p
        f = x ** a * y ** (1 - a)
        grad = np.array([-a * f / x, -(1 - a) * f / y, 1.0])
        H = -f * np.array([[a * (a - 1) / x ** 2, a * (1 - a) / (x * y), 0.0],
                           [a * (1 - a) / (x * y), (1 - a) * (-a) / y ** 2, 0.0],
                           [0.0, 0.0, 0.0]])
        return z - f, grad, H
    return g


def _polish(v, p, constraint, steps: int = 20):
    """Newton on the projection's optimality conditions p − v + μ ∇g(p) = 0, g(p) = 0."""
    g, grad, _ = constraint(p)
    mu = max(0.0, (v - p) @ grad / (grad @ grad))
    for _ in range(steps):
        g, grad, H = constraint(p)
        F = np.concatenate([p - v + mu * grad, [g]])
        if np.abs(F).max() < 1e-15 * max(1.0, np.abs(v).max()):
            break
        J = np.zeros((4, 4))
        J[:3, :3] = np.eye(3) + mu * H
        J[:3, 3] = grad
        J[3, :3] = grad
        try:
            step = np.linalg.solve(J, -F)
        except np.linalg.LinAlgError:
            break
        p_new, mu_new = p + step[:3], mu + step[3]
        if not np.all(np.isfinite(p_new)) or min(p_new[0], p_new[1]) <= 0:
            break
        p, mu = p_new, mu_new
    return p


def _boundary_derivative(v, p, constraint) -> np.ndarray:
    """Implicit derivative of the projection onto {g ≤ 0} at an active, smooth point:
    dp = (I + μH − ∇g∇gᵀ-projection)⁻¹ … from p − v + μ∇g = 0, g = 0."""
    g, grad, H = constraint(p)
    mu = (v - p) @ grad / (grad @ grad)
    J = np.zeros((4, 4))
    J[:3, :3] = np.eye(3) + mu * H
    J[:3, 3] = grad
    J[3, :3] = grad
    rhs = np.zeros((4, 3))
    rhs[:3, :3] = np.eye(3)
    return np.linalg.solve(J, rhs)[:3]


def _exp_d(v, _):
    return exp_jacobian(np.asarray(v, float)[None])[0]


def _pow_d(v, a):
    if _pow_in_cone(v, a):
        return np.eye(3)
    if _pow_in_polar(v, a):
        return np.zeros((3, 3))
    sign = 1.0 if v[2] >= 0 else -1.0
    flip = np.diag([1.0, 1.0, sign])
    w = flip @ v
    p = flip @ _pow(v, a)
    tiny = 1e-12 * max(1.0, np.abs(p).max())
    if min(p[0], p[1]) <= tiny:
        # Next to the edge x = 0 (or y = 0): the projection clamps that coordinate to 0 and
        # keeps the other; it keeps z too where the surface |z| = x^α y^{1−α} is locally
        # vertical (z away from 0), and clamps it where z ≈ 0.
        keep = [float(p[0] > tiny), float(p[1] > tiny)]
        return np.diag(keep + [float(sum(keep) == 1 and abs(p[2]) > tiny)])
    return flip @ _boundary_derivative(w, p, _pow_constraint(a)) @ flip


PROJECTIONS = {"zero": _zero, "nonneg": _nonneg, "soc": _soc, "psd": _psd, "exp": _exp,
               "pow": _pow}
DERIVATIVES = {"zero": _zero_d, "nonneg": _nonneg_d, "soc": _soc_d, "psd": _psd_d,
               "exp": _exp_d, "pow": _pow_d}


def degenerate_count(v: np.ndarray, cones: ConeDims, tol: float = DEGENERACY_TOL) -> dict:
    """Counts of cone entries of z = y − s (the HSDE coordinates) that are active (the dual
    part is nonzero), inactive (the primal slack is nonzero) or degenerate (both vanish:
    strict complementarity fails, where Π is not differentiable)."""
    counts = {"active": 0, "inactive": 0, "degenerate": 0}
    if cones.exp:                                   # every exponential cone at once
        for key, n in _exp_cases(v[_exp_rows(cones)].reshape(-1, 3), tol).items():
            counts[key] += n
    i = 0
    for kind, size, param in blocks(cones):
        block = v[i:i + size]
        i += size
        if kind in ("zero", "exp"):
            continue
        if kind == "nonneg":
            scale = tol * max(1.0, np.abs(block).max(initial=0.0))
            counts["active"] += int(np.sum(block > scale))
            counts["inactive"] += int(np.sum(block < -scale))
            counts["degenerate"] += int(np.sum(np.abs(block) <= scale))
            continue
        key = _smooth_case(kind, block, param, tol)
        counts[key] += 1
    return counts


def _smooth_case(kind, v, param, tol) -> str:
    """For one non-polyhedral cone block of z (dual side): active / inactive / degenerate."""
    scale = tol * max(1.0, np.abs(v).max())
    if kind == "soc":
        t, r = v[0], np.linalg.norm(v[1:])
        if abs(r - abs(t)) <= scale:
            return "degenerate"
        return "active" if r < t else "inactive" if r < -t else "active"
    if kind == "psd":
        lam = np.linalg.eigvalsh(svec_to_matrix(v, param))
        if np.any(np.abs(lam) <= scale):
            return "degenerate"
        return "active" if lam.min() > 0 else "inactive" if lam.max() < 0 else "active"
    if np.linalg.norm(v) <= scale:
        return "degenerate"
    # Π_K*(v) = 0 exactly when v ∈ −K (the polar of K*): only the primal slack is nonzero
    return "inactive" if _pow_in_cone(-v, param) else "active"


def _exp_cases(V, tol) -> dict:
    """``_smooth_case`` for the exponential-cone rows V (K, 3) of z, counted at once:
    degenerate where ‖v‖ is below tol (relative), else inactive where v ∈ −K (the polar
    of K*, where Π_K*(v) = 0), else active."""
    scale = tol * np.maximum(1.0, _row_max_abs(V))
    degenerate = _row_norm(V) <= scale
    inactive = ~degenerate & _exp_inside(-V)
    return {"degenerate": int(degenerate.sum()), "inactive": int(inactive.sum()),
            "active": int((~degenerate & ~inactive).sum())}
