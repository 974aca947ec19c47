"""Independent membership checks for the standard form's cones and their duals (used to
check returned (s, y); written from the cone definitions, not from diffdsl's code)."""
import numpy as np


def unsvec(v, n):
    rows, cols = np.triu_indices(n)      # lower triangle, column-major: (col, row) pairs
    M = np.zeros((n, n))
    M[cols, rows] = v / np.where(rows == cols, 1.0, np.sqrt(2.0))
    return M + np.tril(M, -1).T


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
        if dual:   # K* = {(u, v, w): u < 0, −u e^{v/u} ≤ e w} ∪ {u = 0, v ≥ 0, w ≥ 0}
            out.append(max(0.0, (-x * np.exp(y / x) - np.e * z) if x < 0 else max(x, -y, -z)))
        else:      # K = {(x, y, z): y > 0, y e^{x/y} ≤ z} ∪ {x ≤ 0, y = 0, z ≥ 0}
            out.append(max(0.0, y * np.exp(x / y) - z) if y > 0 else max(x, -z, abs(y)))
        i += 3
    for a in cones.pow:
        x, y, z = v[i:i + 3]
        if dual:
            x, y = x / a, y / (1 - a)
        out.append(max(0.0, abs(z) - max(x, 0) ** a * max(y, 0) ** (1 - a), -x, -y))
        i += 3
    return max(out)
