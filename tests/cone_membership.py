"""Independent membership checks for the standard form's cones and their duals (used to
check returned (s, y); written from the cone definitions, not from diffdsl's code)."""
import numpy as np


def unsvec(v, n):
    rows, cols = np.triu_indices(n)      # lower triangle, column-major: (col, row) pairs
    M = np.zeros((n, n))
    M[cols, rows] = v / np.where(rows == cols, 1.0, np.sqrt(2.0))
    return M + np.tril(M, -1).T


def interior(cones, dual: bool) -> np.ndarray:
    """A point in the interior of K (or K*), block by block."""
    parts = [np.zeros(cones.zero), np.ones(cones.nonneg)]
    parts += [np.eye(k)[0] for k in cones.soc]
    for n in cones.psd:
        rows, cols = np.triu_indices(n)
        parts.append((rows == cols).astype(float))
    parts += [np.array([-1.0, 0.0, 1.0]) if dual else np.array([0.0, 1.0, 2.0])] * cones.exp
    parts += [np.array([1.0, 1.0, 0.0])] * len(cones.pow)
    return np.concatenate(parts) if parts else np.zeros(0)


def violations(v, cones, dual: bool):
    """Largest violation of v ∈ K (or K* when dual) over the blocks of ``cones``."""
    out, i = [0.0], 0
    i += cones.zero                                   # zero cone: anything (K* = R^n) / 0
    if dual is False and cones.zero:
        out.append(np.abs(v[:cones.zero]).max())
    out.append(max(0.0, -v[i:i + cones.nonneg].min(initial=0.0)))
    i += cones.nonneg
    for k in cones.soc:
        t, x = v[i], v[i + 1:i + k]
        out.append(max(0.0, np.linalg.norm(x) - t))
        i += k
    for n in cones.psd:
        size = n * (n + 1) // 2
        out.append(max(0.0, -np.linalg.eigvalsh(unsvec(v[i:i + size], n)).min()))
        i += size
    for _ in range(cones.exp):
        x, y, z = v[i:i + 3]
        # written in logarithms (well conditioned near the faces)
        if dual:   # K* = {(u, v, w): u < 0, −u e^{v/u} ≤ e w} ∪ {u = 0, v ≥ 0, w ≥ 0}
            if x < 0:   # ⇔ v ≥ u (1 + log(w / −u))
                out.append(np.inf if z <= 0 else max(0.0, x * (1 + np.log(z / -x)) - y))
            else:
                out.append(max(0.0, x, -y, -z))
        else:      # K = {(x, y, z): y > 0, y e^{x/y} ≤ z} ∪ {x ≤ 0, y = 0, z ≥ 0}
            if y > 0:   # ⇔ x ≤ y log(z / y)
                out.append(np.inf if z <= 0 else max(0.0, x - y * np.log(z / y)))
            else:
                out.append(max(0.0, x, -z, abs(y)))
        i += 3
    for a in cones.pow:
        x, y, z = v[i:i + 3]
        if dual:
            x, y = x / a, y / (1 - a)
        out.append(max(0.0, abs(z) - max(x, 0) ** a * max(y, 0) ** (1 - a), -x, -y))
        i += 3
    return max(out)
