"""The native method's cone algebra and small factorizations as compiled loops over NumPy
arrays (numba, where installed).

On the CPU a small batch (32 elements of ~60 rows) spends the interior-point method's time
in the overhead of its many small array operations, not in arithmetic: a step length is
~20 NumPy calls (~27 µs), one loop here (~4 µs). These kernels compute exactly what the
generic array code of ``ipm.Cones``, ``ipm.Scaling``, ``ipm.project_dual``,
``ipm.stopping_error`` and ``Derivative._soc_jacobian`` computes (tests hold them to each
other at rounding), for float64 arrays of the NumPy namespaces; PyTorch and JAX keep the
generic code. Small dense systems are factored and solved here too (Cholesky, and LU with
partial pivoting in LAPACK's layout), where LAPACK's and PyTorch's per-call overhead
outweighs their arithmetic (``arrays.SMALL_CHOLESKY``, ``arrays.SMALL_LU``).

Layout: an inequality vector (B, mi) holds ``nn`` nonnegative rows, then the second-order
cones, cone k on rows starts[k] : starts[k] + sizes[k] (head first).
"""
from __future__ import annotations

import functools

import numpy as np

TINY = 1e-300


@functools.cache
def _numba():
    """numba's ``njit`` (cached compilation, the GIL released, NumPy's error model: a
    division by zero gives inf or NaN as in the array code, not an exception), or None
    without numba."""
    try:
        import numba
    except ImportError:
        return None
    return functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy")


def _reassociating(jit):
    """``jit`` that may reassociate sums and fuse multiply-adds (LLVM then vectorizes the
    factorizations' inner products: a 50 × 50 Cholesky a third faster); NaN and inf keep
    their meaning. The cone kernels do not take it: they stay equal to the array code."""
    return functools.partial(jit, fastmath={"reassoc", "contract"})


def available() -> bool:
    return _numba() is not None


@functools.cache
def _kernels():
    jit = _numba()
    linear_algebra = _reassociating(jit)

    @jit
    def max_step(u, du, nn, starts, sizes):
        B = u.shape[0]
        out = np.empty(B)
        for b in range(B):
            worst = np.inf
            for i in range(nn):
                ratio = du[b, i] / max(u[b, i], TINY)
                if ratio < worst:
                    worst = ratio
            alpha = -1.0 / min(worst, -TINY)
            for k in range(starts.size):
                o, n = starts[k], sizes[k]
                a, h, c = du[b, o] * du[b, o], du[b, o] * u[b, o], u[b, o] * u[b, o]
                for j in range(o + 1, o + n):
                    a -= du[b, j] * du[b, j]
                    h -= du[b, j] * u[b, j]
                    c -= u[b, j] * u[b, j]
                disc = h * h - a * c
                if a < 0 or (h < 0 and disc >= 0):
                    root = c / max(-h + np.sqrt(max(disc, 0.0)), TINY)
                    alpha = min(alpha, root)
            out[b] = alpha
        return out

    @jit
    def circ(u, v, nn, starts, sizes):
        out = np.empty(u.shape)
        for b in range(u.shape[0]):
            for i in range(nn):
                out[b, i] = u[b, i] * v[b, i]
            for k in range(starts.size):
                o, n = starts[k], sizes[k]
                dot = 0.0
                for j in range(o, o + n):
                    dot += u[b, j] * v[b, j]
                out[b, o] = dot
                for j in range(o + 1, o + n):
                    out[b, j] = u[b, o] * v[b, j] + v[b, o] * u[b, j]
        return out

    @jit
    def inv_circ(lam, v, nn, starts, sizes):
        out = np.empty(v.shape)
        for b in range(v.shape[0]):
            for i in range(nn):
                out[b, i] = v[b, i] / lam[b, i]
            for k in range(starts.size):
                o, n = starts[k], sizes[k]
                det, num = lam[b, o] * lam[b, o], lam[b, o] * v[b, o]
                for j in range(o + 1, o + n):
                    det -= lam[b, j] * lam[b, j]
                    num -= lam[b, j] * v[b, j]
                x0 = num / max(det, TINY)
                out[b, o] = x0
                for j in range(o + 1, o + n):
                    out[b, j] = (v[b, j] - x0 * lam[b, j]) / lam[b, o]
        return out

    @jit
    def scaling(s, z, nn, starts, sizes):
        """(d, W's cone block, W⁻¹'s): the NT scaling, dense blocks on the cone rows."""
        B, mq = s.shape[0], s.shape[1] - nn
        d = np.empty((B, nn))
        W, Winv = np.zeros((B, mq, mq)), np.zeros((B, mq, mq))
        for b in range(B):
            for i in range(nn):
                d[b, i] = np.sqrt(s[b, i] / z[b, i])
            for k in range(starts.size):
                o, n = starts[k], sizes[k]
                ss, zz = s[b, o] * s[b, o], z[b, o] * z[b, o]
                for j in range(o + 1, o + n):
                    ss -= s[b, j] * s[b, j]
                    zz -= z[b, j] * z[b, j]
                s_norm, z_norm = np.sqrt(max(ss, TINY)), np.sqrt(max(zz, TINY))
                dot = 0.0
                for j in range(o, o + n):
                    dot += (s[b, j] / s_norm) * (z[b, j] / z_norm)
                gamma2 = 2.0 * np.sqrt((1.0 + dot) / 2.0)
                u = np.empty(n)                              # e + w̄
                u[0] = 1.0 + (s[b, o] / s_norm + z[b, o] / z_norm) / gamma2
                for j in range(1, n):
                    u[j] = (s[b, o + j] / s_norm - z[b, o + j] / z_norm) / gamma2
                eta = np.sqrt(s_norm / z_norm)
                q = o - nn
                for i in range(n):
                    for j in range(n):
                        w = u[i] * u[j] / u[0]
                        if i == j:
                            w += -1.0 if i == 0 else 1.0
                        W[b, q + i, q + j] = eta * w
                        sign = 1.0 if (i == 0) == (j == 0) else -1.0
                        Winv[b, q + i, q + j] = sign * w / eta
        return d, W, Winv

    @jit
    def scale(v, d, block, nn, inverse):
        """W v (W⁻¹ v with ``inverse``, ``block`` then W⁻¹'s) on an inequality vector."""
        B, mq = v.shape[0], v.shape[1] - nn
        out = np.empty(v.shape)
        for b in range(B):
            for i in range(nn):
                out[b, i] = v[b, i] / d[b, i] if inverse else v[b, i] * d[b, i]
            for i in range(mq):
                acc = 0.0
                for j in range(mq):
                    acc += block[b, i, j] * v[b, nn + j]
                out[b, nn + i] = acc
        return out

    @jit
    def project(v, zero, nn, starts, sizes):
        """Π_K*(v) over all rows: free on the zero rows, max(·, 0) on the nonnegative ones,
        each cone's projection."""
        out = np.empty(v.shape)
        for b in range(v.shape[0]):
            for i in range(zero):
                out[b, i] = v[b, i]
            for i in range(zero, zero + nn):
                out[b, i] = max(v[b, i], 0.0)
            for k in range(starts.size):
                o, n = zero + starts[k], sizes[k]
                t, norm = v[b, o], 0.0
                for j in range(o + 1, o + n):
                    norm += v[b, j] * v[b, j]
                norm = np.sqrt(norm)
                if norm <= t:                            # inside
                    for j in range(o, o + n):
                        out[b, j] = v[b, j]
                elif norm <= -t:                         # in the polar cone
                    for j in range(o, o + n):
                        out[b, j] = 0.0
                else:
                    half = (t + norm) / 2.0
                    out[b, o] = half
                    for j in range(o + 1, o + n):
                        out[b, j] = half * v[b, j] / max(norm, TINY)
        return out

    @jit
    def projection_jacobian(vq, starts, sizes):
        """DΠ per cone on the cone rows vq (B, mq), block-diagonal (B, mq, mq): I inside,
        0 in the polar cone, else ½wwᵀ + r(I_tail − x̂x̂ᵀ), w = (1, x̂), r = (1 + t/‖x̄‖)/2."""
        B, mq = vq.shape
        out = np.zeros((B, mq, mq))
        for b in range(B):
            for k in range(starts.size):
                o, n = starts[k], sizes[k]
                t, norm = vq[b, o], 0.0
                for j in range(o + 1, o + n):
                    norm += vq[b, j] * vq[b, j]
                norm = np.sqrt(norm)
                if norm <= t:
                    for j in range(o, o + n):
                        out[b, j, j] = 1.0
                elif norm > -t:
                    scale = 1.0 / max(norm, TINY)
                    r = (1.0 + t * scale) / 2.0
                    out[b, o, o] = 0.5
                    for i in range(o + 1, o + n):
                        xi = vq[b, i] * scale
                        out[b, o, i] = out[b, i, o] = 0.5 * xi
                        for j in range(o + 1, o + n):
                            out[b, i, j] = (0.5 - r) * xi * vq[b, j] * scale
                        out[b, i, i] += r
        return out

    @jit
    def relative_error(x, s, z, rd, re, ri, Px, c, scale_b, scale_c):
        """The method's stopping measure per element: max(‖rd‖∞/scale_c,
        max(‖re‖∞, ‖ri‖∞)/scale_b, sᵀz/(1 + |xᵀPx| + |cᵀx|)); NaN where a residual is."""
        B = x.shape[0]
        out = np.empty(B)
        for b in range(B):
            xPx, cx, sz, dual, primal, nan = 0.0, 0.0, 0.0, 0.0, 0.0, False
            for j in range(x.shape[1]):
                xPx += x[b, j] * Px[b, j]
                cx += c[b, j] * x[b, j]
                a = abs(rd[b, j])
                nan |= a != a
                dual = max(dual, a)
            for i in range(s.shape[1]):
                sz += s[b, i] * z[b, i]
                a = abs(ri[b, i])
                nan |= a != a
                primal = max(primal, a)
            for i in range(re.shape[1]):
                a = abs(re[b, i])
                nan |= a != a
                primal = max(primal, a)
            gap = sz / (1.0 + abs(xPx) + abs(cx))
            nan |= gap != gap
            out[b] = np.nan if nan else max(max(dual / scale_c[b], primal / scale_b[b]), gap)
        return out

    @linear_algebra
    def cholesky(K):
        """(L, ok): K = LLᵀ per element of (B, k, k); ok is False where a pivot is not
        positive (L is then not a factor)."""
        B, k = K.shape[0], K.shape[1]
        L = np.zeros((B, k, k))
        ok = True
        for b in range(B):
            for j in range(k):
                d = K[b, j, j]
                for p in range(j):
                    d -= L[b, j, p] * L[b, j, p]
                if not d > 0.0:
                    ok = False
                    d = 1.0
                L[b, j, j] = np.sqrt(d)
                for i in range(j + 1, k):
                    v = K[b, i, j]
                    for p in range(j):
                        v -= L[b, i, p] * L[b, j, p]
                    L[b, i, j] = v / L[b, j, j]
        return L, ok

    @linear_algebra
    def cholesky_solve(L, rhs):
        """K⁻¹ rhs per element from K's factor L (B or 1, k, k), rhs (B, k)."""
        B, k = rhs.shape
        out = np.empty((B, k))
        y = np.empty(k)
        for b in range(B):
            f = b if L.shape[0] > 1 else 0
            for i in range(k):
                v = rhs[b, i]
                for p in range(i):
                    v -= L[f, i, p] * y[p]
                y[i] = v / L[f, i, i]
            for i in range(k - 1, -1, -1):
                v = y[i]
                for p in range(i + 1, k):
                    v -= L[f, p, i] * out[b, p]
                out[b, i] = v / L[f, i, i]
        return out

    @linear_algebra
    def lu(K):
        """(LU, pivots) per element of (B, k, k), LAPACK's getrf: partial pivoting, L unit
        lower and U upper in one array; a zero pivot is left in place (``pivots_ok``)."""
        B, k = K.shape[0], K.shape[1]
        LU = K.copy()
        piv = np.empty((B, k), np.int64)
        for b in range(B):
            for j in range(k):
                p, big = j, abs(LU[b, j, j])
                for i in range(j + 1, k):
                    if abs(LU[b, i, j]) > big:
                        p, big = i, abs(LU[b, i, j])
                piv[b, j] = p
                if p != j:
                    for col in range(k):
                        LU[b, j, col], LU[b, p, col] = LU[b, p, col], LU[b, j, col]
                d = LU[b, j, j]
                if d != 0.0:
                    for i in range(j + 1, k):
                        f = LU[b, i, j] / d
                        LU[b, i, j] = f
                        for col in range(j + 1, k):
                            LU[b, i, col] -= f * LU[b, j, col]
        return LU, piv

    @linear_algebra
    def lu_solve(LU, piv, rhs, transpose):
        """K⁻¹ rhs (Kᵀ⁻¹ rhs with ``transpose``) per element from ``lu``'s factors (B or 1)."""
        B, k = rhs.shape
        out = np.empty((B, k))
        for b in range(B):
            f = b if LU.shape[0] > 1 else 0
            x = rhs[b].copy()
            if not transpose:               # P K = L U: x = U⁻¹ L⁻¹ P rhs
                for j in range(k):
                    p = piv[f, j]
                    x[j], x[p] = x[p], x[j]
                for i in range(k):
                    for j in range(i):
                        x[i] -= LU[f, i, j] * x[j]
                for i in range(k - 1, -1, -1):
                    for j in range(i + 1, k):
                        x[i] -= LU[f, i, j] * x[j]
                    x[i] /= LU[f, i, i]
            else:                           # Kᵀ = Uᵀ Lᵀ P: x = Pᵀ L⁻ᵀ U⁻ᵀ rhs
                for i in range(k):
                    for j in range(i):
                        x[i] -= LU[f, j, i] * x[j]
                    x[i] /= LU[f, i, i]
                for i in range(k - 1, -1, -1):
                    for j in range(i + 1, k):
                        x[i] -= LU[f, j, i] * x[j]
                for j in range(k - 1, -1, -1):
                    p = piv[f, j]
                    x[j], x[p] = x[p], x[j]
            out[b] = x
        return out

    return dict(max_step=max_step, circ=circ, inv_circ=inv_circ, scaling=scaling,
                scale=scale, project=project, projection_jacobian=projection_jacobian,
                relative_error=relative_error, cholesky=cholesky,
                cholesky_solve=cholesky_solve, lu=lu, lu_solve=lu_solve)


def cholesky(K):
    """(L, ok) of a batch of small definite matrices (``_kernels``' loops)."""
    return _kernels()["cholesky"](K)


def cholesky_solve(L, rhs):
    return _kernels()["cholesky_solve"](L, rhs)


def lu(K):
    """(LU, pivots) of a batch of small matrices (``_kernels``' loops)."""
    return _kernels()["lu"](K)


def lu_solve(LU, piv, rhs, transpose: bool):
    return _kernels()["lu_solve"](LU, piv, rhs, transpose)


class Kernels:
    """The compiled kernels bound to one cone layout (``ipm.Cones``'s rows)."""

    def __init__(self, nonneg: int, soc: tuple[int, ...]) -> None:
        self.nn, self.soc = nonneg, tuple(soc)
        self.sizes = np.asarray(soc, np.int64)
        self.starts = nonneg + np.cumsum(self.sizes) - self.sizes
        self.k = _kernels()

    def __reduce__(self):
        return Kernels, (self.nn, self.soc)           # (compiled functions do not pickle)

    def max_step(self, u, du):
        return self.k["max_step"](u, du, self.nn, self.starts, self.sizes)

    def circ(self, u, v):
        return self.k["circ"](u, v, self.nn, self.starts, self.sizes)

    def inv_circ(self, lam, v):
        return self.k["inv_circ"](lam, v, self.nn, self.starts, self.sizes)

    def scaling(self, s, z):
        return self.k["scaling"](s, z, self.nn, self.starts, self.sizes)

    def scale(self, v, d, block, inverse: bool):
        return self.k["scale"](v, d, block, self.nn, inverse)

    def project(self, v, zero: int):
        return self.k["project"](v, zero, self.nn, self.starts, self.sizes)

    def relative_error(self, x, s, z, rd, re, ri, Px, c, scale_b, scale_c):
        return self.k["relative_error"](x, s, z, rd, re, ri, Px, c, scale_b, scale_c)

    def projection_jacobian(self, vq):
        return self.k["projection_jacobian"](vq, self.starts - self.nn, self.sizes)
