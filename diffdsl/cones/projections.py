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

import functools

import numpy as np
import scipy.optimize
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
    """A block-diagonal linear operator given by its dense blocks (or diagonals)."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts      # each: 1-d array (a diagonal) or 2-d square block

    def sparse(self) -> sp.csr_matrix:
        """The operator as one CSR matrix (built from index arrays, not block by block)."""
        rows, cols, vals, offset = [], [], [], 0
        for p in self.parts:
            k = len(p)
            if p.ndim == 1:
                index = offset + np.arange(k)
                rows.append(index), cols.append(index), vals.append(p)
            else:
                r, c = np.nonzero(p)
                rows.append(offset + r), cols.append(offset + c), vals.append(p[r, c])
            offset += k
        if not self.parts:
            return sp.csr_matrix((0, 0))
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                     np.concatenate(cols))),
                             shape=(offset, offset))

    def dense(self) -> np.ndarray:
        size = sum(len(p) for p in self.parts)
        out, offset = np.zeros((size, size)), 0
        for p in self.parts:
            k = len(p)
            block = out[offset:offset + k, offset:offset + k]
            if p.ndim == 1:
                block[np.diag_indices(k)] = p
            else:
                block[...] = p
            offset += k
        return out

    def diagonal(self) -> np.ndarray | None:
        """The diagonal when every block is one (polyhedral cones), else None."""
        if all(p.ndim == 1 for p in self.parts):
            return np.concatenate(self.parts) if self.parts else np.zeros(0)
        return None

    def nonzero_lines(self) -> np.ndarray:
        """Mask of the indices k whose row or column of the operator is not all zero."""
        return np.concatenate([p != 0 if p.ndim == 1 else (p != 0).any(0) | (p != 0).any(1)
                               for p in self.parts]) if self.parts else np.zeros(0, bool)

    def __eq__(self, other) -> bool:
        return (isinstance(other, BlockDiagonal) and len(self.parts) == len(other.parts)
                and all(np.array_equal(a, b) for a, b in zip(self.parts, other.parts, strict=True)))

    __hash__ = None


# ---------------------------------------------------------------------------- primal cones
def project(v: np.ndarray, cones: ConeDims, dual: bool = False) -> np.ndarray:
    """Π_K(v), or Π_K*(v) with ``dual=True``."""
    out, i = np.empty_like(v), 0
    for kind, size, param in blocks(cones):
        out[i:i + size] = project_block(kind, v[i:i + size], param, dual)
        i += size
    return out


def derivative(v: np.ndarray, cones: ConeDims, dual: bool = False) -> BlockDiagonal:
    """DΠ_K(v) (or DΠ_K*(v)) as a block-diagonal operator."""
    parts, i = [], 0
    for kind, size, param in blocks(cones):
        parts.append(derivative_block(kind, v[i:i + size], param, dual))
        i += size
    return BlockDiagonal(parts)


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
def _exp_in_cone(v, tol=0.0):
    x, y, z = v
    if y > 0:
        return y * np.exp(min(x / y, 700)) <= z + tol
    return x <= tol and abs(y) <= tol and z >= -tol


def _exp_in_polar(v, tol=0.0):
    """−v ∈ K_exp* , i.e. Π_K(v) = 0."""
    u, w, t = -v          # K* = {(u, w, t): u < 0, −u e^{w/u} ≤ e t} ∪ {u = 0, w, t ≥ 0}
    if u < 0:
        return -u * np.exp(min(w / u, 700)) <= np.e * t + tol
    return abs(u) <= tol and w >= -tol and t >= -tol


def _exp_boundary_ray(rho) -> np.ndarray:
    """(ρ, 1, e^ρ), or a (3, K) array of them for an array of ρ."""
    return np.array([rho, np.ones_like(rho), np.exp(rho)])


def _exp(v, _):
    """Π onto the exponential cone (memoized: the derivative at a point projects it again)."""
    return np.array(_exp_memo(float(v[0]), float(v[1]), float(v[2])))


@functools.lru_cache(maxsize=8192)
def _exp_memo(x: float, y: float, z: float) -> tuple:
    return tuple(_exp_projection(np.array([x, y, z])))


def _exp_projection(v):
    """Closest of: v itself (inside), 0 (polar), the face {x ≤ 0, y = 0, z ≥ 0}, and the
    best ray y·(ρ, 1, e^ρ) of the smooth boundary."""
    if _exp_in_cone(v):
        return v.copy()
    if _exp_in_polar(v):
        return np.zeros(3)
    candidates = [np.array([min(v[0], 0.0), 0.0, max(v[2], 0.0)])]
    ray = _best_ray(v, _exp_boundary_ray, _exp_bracket(v))
    if ray is not None:
        candidates.append(_polish(v, ray, _exp_constraint))
    return min(candidates, key=lambda p: np.linalg.norm(p - v))


def _exp_bracket(v):
    x, y, z = v
    lo, hi = -40.0, 40.0
    if z > 0 and y > 0:
        centre = np.log(z / y)
        lo, hi = min(lo, centre - 40), max(hi, centre + 40)
    return lo, hi


def _exp_constraint(p):
    """g(p) = y e^{x/y} − z and its gradient and Hessian (y > 0)."""
    x, y, z = p
    e = np.exp(x / y)
    g = y * e - z
    grad = np.array([e, e * (1 - x / y), -1.0])
    H = e * np.array([[1 / y, -x / y ** 2, 0.0],
                      [-x / y ** 2, x ** 2 / y ** 3, 0.0],
                      [0.0, 0.0, 0.0]])
    return g, grad, H


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


def _best_ray(v, ray, bracket):
    """The point s·ray(ρ) (s ≥ 0) closest to v: maximize ⟨v, r⟩ / ‖r‖ over ρ."""
    def negative_alignment(rho):
        r = ray(rho)
        return -(v @ r) / np.linalg.norm(r)

    lo, hi = bracket
    grid = np.linspace(lo, hi, 81)
    rays = ray(grid)                                        # (3, 81), all at once
    values = -(v @ rays) / np.linalg.norm(rays, axis=0)
    k = int(np.argmin(values))
    left, right = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    res = scipy.optimize.minimize_scalar(negative_alignment, bounds=(left, right),
                                         method="bounded", options={"xatol": 1e-13})
    r = ray(res.x)
    scale = (v @ r) / (r @ r)
    return None if scale <= 0 else scale * r


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
        if not np.all(np.isfinite(p_new)) or (p_new[1] <= 0 if constraint is _exp_constraint
                                              else min(p_new[0], p_new[1]) <= 0):
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
    if _exp_in_cone(v):
        return np.eye(3)
    if _exp_in_polar(v):
        return np.zeros((3, 3))
    p = _exp(v, None)
    if p[1] <= 1e-12 * max(1.0, np.abs(p).max()):          # on the face {x ≤ 0, y = 0, z ≥ 0}
        return np.diag([float(v[0] < 0), 0.0, float(v[2] > 0)])
    return _boundary_derivative(v, p, _exp_constraint)


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
    i = 0
    for kind, size, param in blocks(cones):
        block = v[i:i + size]
        i += size
        if kind == "zero":
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
    inside = _exp_in_cone(v) if kind == "exp" else _pow_in_cone(v, param)
    polar = _exp_in_polar(-v) if kind == "exp" else _pow_in_polar(-v, param)
    if np.linalg.norm(v) <= scale:
        return "degenerate"
    return "active" if inside else "inactive" if polar else "active"
