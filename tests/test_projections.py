"""Cone projections and their derivatives: optimality (Moreau) conditions checked with
independent membership tests, derivatives against central finite differences."""
import numpy as np
import pytest

from cone_membership import interior, violations
from diffdsl.cones import ConeDims
from diffdsl.cones.projections import derivative, project

rng = np.random.default_rng(7)
CONES = {
    "nonneg": ConeDims(nonneg=6),
    "zero": ConeDims(zero=4),
    "soc": ConeDims(soc=(1, 4, 7)),
    "psd": ConeDims(psd=(1, 2, 4)),
    "exp": ConeDims(exp=8),
    "pow": ConeDims(pow=(0.2, 0.5, 0.7, 0.9)),
    "mixed": ConeDims(zero=2, nonneg=3, soc=(3,), psd=(3,), exp=2, pow=(0.4,)),
}


def members(cones, dual: bool, count: int) -> np.ndarray:
    """Random points of K (or K*), built from the cone definitions block by block."""
    out = []
    for _ in range(count):
        parts = []
        for n in [cones.zero]:
            parts.append(rng.normal(size=n) if dual else np.zeros(n))   # K* of {0} is R^n
        parts.append(np.abs(rng.normal(size=cones.nonneg)))
        for k in cones.soc:
            x = rng.normal(size=k - 1)
            parts.append(np.concatenate([[np.linalg.norm(x) + abs(rng.normal())], x]))
        for n in cones.psd:
            B = rng.normal(size=(n, n))
            M = B @ B.T
            rows, cols = np.triu_indices(n)
            parts.append(M[cols, rows] * np.where(rows == cols, 1, np.sqrt(2)))
        for _ in range(cones.exp):
            a, b = rng.normal(), np.exp(rng.normal())
            if dual:   # u < 0, t ≥ −u e^{w/u} / e
                u = -b
                parts.append([u, a, -u * np.exp(a / u - 1) + abs(rng.normal())])
            else:
                parts.append([a, b, b * np.exp(a / b) + abs(rng.normal())])
        for alpha in cones.pow:
            x, y = np.exp(rng.normal(size=2))
            bound = (x / alpha) ** alpha * (y / (1 - alpha)) ** (1 - alpha) if dual \
                else x ** alpha * y ** (1 - alpha)
            parts.append([x, y, bound * rng.uniform(-1, 1)])
        out.append(np.concatenate([np.ravel(p) for p in parts]))
    return np.array(out)


@pytest.mark.parametrize("name", sorted(CONES))
@pytest.mark.parametrize("dual", [False, True])
def test_projection_is_optimal(name, dual):
    """p = Π(v) lies in the cone and satisfies the variational inequality
    ⟨v − p, q − p⟩ ≤ 0 for every q in the cone: ⟨v − p, p⟩ = 0 and ⟨v − p, q⟩ ≤ 0."""
    cones = CONES[name]
    others = members(cones, dual, 200)
    for _ in range(40):
        v = 2 * rng.normal(size=cones.size)
        p = project(v, cones, dual=dual)
        scale = max(1.0, np.abs(v).max())
        # within 1e-9 of the cone: a step that small towards its interior lands inside
        nudged = p + 1e-9 * scale * interior(cones, dual)
        assert violations(nudged, cones, dual=dual) == 0.0
        assert abs((v - p) @ p) <= 1e-9 * scale ** 2
        assert np.max(others @ (v - p)) <= 1e-9 * scale * np.abs(others).max()


@pytest.mark.parametrize("name", sorted(CONES))
@pytest.mark.parametrize("dual", [False, True])
def test_projection_derivative_matches_finite_differences(name, dual):
    """Away from kinks (where two step sizes agree), DΠ equals central differences."""
    cones = CONES[name]
    checked = 0

    def fd(v, eps):
        return np.column_stack([(project(v + eps * e, cones, dual)
                                 - project(v - eps * e, cones, dual)) / (2 * eps)
                                for e in np.eye(cones.size)])

    for _ in range(25):
        v = 2 * rng.normal(size=cones.size)
        D = derivative(v, cones, dual=dual)
        np.testing.assert_allclose(D.sparse().toarray(), D.dense())
        coarse, fine = fd(v, 1e-5), fd(v, 1e-7)
        if np.abs(coarse - fine).max() > 1e-4:
            continue                      # a kink within 1e-5 of v
        np.testing.assert_allclose(D.dense(), coarse, atol=2e-5)
        checked += 1
    assert checked >= 15


def test_second_order_cone_closed_form():
    v = np.array([1.0, 3.0, 4.0])          # ‖x‖ = 5 > |t| = 1
    np.testing.assert_allclose(project(v, ConeDims(soc=(3,))), 3.0 * np.array([1.0, 0.6, 0.8]))
    assert np.all(project(np.array([-6.0, 3.0, 4.0]), ConeDims(soc=(3,))) == 0)


def test_psd_projection_clips_eigenvalues():
    B = rng.normal(size=(4, 4))
    X = (B + B.T) / 2
    lam, V = np.linalg.eigh(X)
    expected = (V * np.maximum(lam, 0)) @ V.T
    rows, cols = np.triu_indices(4)              # svec: lower triangle, column-major, √2
    svec = X[cols, rows] * np.where(rows == cols, 1, np.sqrt(2))
    out = project(svec, ConeDims(psd=(4,)))
    np.testing.assert_allclose(out, expected[cols, rows] * np.where(rows == cols, 1, np.sqrt(2)),
                               atol=1e-12)


# -------------------------------------------------------------- exponential cone, batched
def exp_points(count: int) -> np.ndarray:
    """Rows all over R³ at mixed scales, with a share whose projection is on the face
    {x ≤ 0, y = 0, z ≥ 0} (x, y < 0) and a share next to the smooth boundary."""
    V = rng.normal(size=(count, 3)) * np.exp(rng.normal(size=(count, 1)))
    face = slice(0, count // 4)
    V[face, :2] = -np.abs(V[face, :2])
    return V


def assert_moreau(V, P):
    """Π(v) = p for every row: p ∈ K, v − p ∈ K°, ⟨p, v − p⟩ = 0 (to rounding)."""
    exp_only = ConeDims(exp=1)
    for v, p in zip(V, P, strict=True):
        scale = max(1.0, np.abs(v).max())
        nudged = p + 1e-9 * scale * interior(exp_only, False)
        assert violations(nudged, exp_only, dual=False) == 0.0
        polar = -(v - p) + 1e-9 * scale * interior(exp_only, True)   # −(v − p) ∈ K*
        assert violations(polar, exp_only, dual=True) == 0.0
        assert abs(p @ (v - p)) <= 1e-9 * scale ** 2


def test_exp_projection_batched_satisfies_moreau_including_the_face():
    from diffdsl.cones.projections import exp_project
    V = exp_points(400)
    P = exp_project(V)
    assert_moreau(V, P)
    assert (P[:100, 1] == 0).mean() > 0.5          # the face rows mostly land on the face


def test_exp_projection_from_any_start_gives_the_same_projection(monkeypatch):
    """Starting Newton from a previous projection (a refinement's sequence of nearby
    points) gives the cold answer; a start far off, or none (NaN), falls back to the
    search; the search is skipped for rows whose start is certified."""
    from diffdsl.cones import projections
    V = exp_points(400)
    cold = projections.exp_project(V)
    moved = V + 1e-7 * rng.normal(size=V.shape)
    reference = projections.exp_project(moved)
    far = projections.exp_project(5 * rng.normal(size=V.shape))
    none = np.full(V.shape, np.nan)
    searched = []
    boundary = projections._exp_boundary
    monkeypatch.setattr(projections, "_exp_boundary",
                        lambda W: searched.append(len(W)) or boundary(W))
    for guess in (cold, far, none):
        searched.clear()
        out = projections.exp_project(moved, guess)
        np.testing.assert_allclose(out, reference, atol=1e-12 * np.abs(V).max())
        if guess is cold:      # certified from its start: all but rows that crossed from
            assert sum(searched) <= 4          # the face (y = 0, no start) to y > 0
    assert_moreau(moved, reference)


@pytest.mark.parametrize("name", ["exp", "pow"])
def test_degeneracy_counts_classify_each_cone(name):
    """degenerate_count on z = y − s against the cone definitions: z in K* is active
    (y = Π_K*(z) = z), z in −K is inactive (y = 0, only the slack s = −z is nonzero),
    z = 0 is degenerate."""
    from diffdsl.cones.projections import degenerate_count
    one = ConeDims(exp=1) if name == "exp" else ConeDims(pow=(0.3,))
    for points, key in [(members(one, True, 5), "active"),
                        (-members(one, False, 5), "inactive")]:
        for z in points:
            assert violations(-z if key == "inactive" else z, one, dual=key == "active") == 0
            counts = degenerate_count(z, one)
            assert counts[key] == 1, (key, z, counts)
    assert degenerate_count(np.zeros(3), one)["degenerate"] == 1


def test_projections_remembered_for_a_batch_are_the_ones_computed_alone(monkeypatch):
    """remember_dual_projections projects every element's exponential cones in one call;
    project(v, dual=True) then returns the same values without projecting again."""
    from diffdsl.cones import projections
    cones = ConeDims(nonneg=2, exp=5)
    vs = [2 * rng.normal(size=cones.size) for _ in range(4)]
    projections.clear_exp_memo()
    alone = [project(v, cones, dual=True) for v in vs]
    projections.clear_exp_memo()
    projections.remember_dual_projections(vs, cones)
    monkeypatch.setattr(projections, "exp_project", lambda *a: pytest.fail("projected again"))
    for v, expected in zip(vs, alone, strict=True):
        np.testing.assert_allclose(project(v, cones, dual=True), expected, atol=1e-13)


def test_remembered_projections_start_from_the_solvers_slacks(monkeypatch):
    """For v = y − s at an exact solution, Π_K(−v) = s (Moreau): started there, the batched
    projection is certified without the search and equals the cold one."""
    from diffdsl.cones import projections
    cones = ConeDims(nonneg=2, exp=40)
    vs = 2 * rng.normal(size=(3, cones.size))
    projections.clear_exp_memo()
    ys = np.array([project(v, cones, dual=True) for v in vs])
    projections.clear_exp_memo()
    searched = []
    boundary = projections._exp_boundary
    monkeypatch.setattr(projections, "_exp_boundary",
                        lambda W: searched.append(len(W)) or boundary(W))
    projections.remember_dual_projections(vs, cones, slacks=ys - vs)
    assert sum(searched) == 0
    monkeypatch.setattr(projections, "exp_project", lambda *a: pytest.fail("projected again"))
    for v, y in zip(vs, ys, strict=True):
        np.testing.assert_allclose(project(v, cones, dual=True), y, atol=1e-12)


def test_block_diagonal_groups_place_each_block_at_its_offset():
    """Blocks given out of order with offsets (as the exponential cones' group is added)
    and blocks given in order describe the same operator: dense, sparse, diagonal,
    nonzero lines and the blocks in order agree with scipy's block_diag."""
    import scipy.sparse as sp

    from diffdsl.cones.projections import BlockDiagonal
    parts = [np.array([1.0, 0.0]), rng.normal(size=(3, 3)), np.zeros((3, 3)),
             np.array([2.0]), rng.normal(size=(2, 2))]
    in_order = BlockDiagonal.of(parts)
    order = [4, 0, 2, 1, 3]
    offsets = np.cumsum([0] + [len(p) for p in parts])[:-1]
    placed = BlockDiagonal.of([parts[i] for i in order], offsets[order], 11)
    reference = sp.block_diag([np.diag(p) if p.ndim == 1 else p for p in parts]).toarray()
    for D in (in_order, placed):
        np.testing.assert_array_equal(D.dense(), reference)
        np.testing.assert_array_equal(D.sparse().toarray(), reference)
        np.testing.assert_array_equal(D.nonzero_lines(),
                                      (reference != 0).any(0) | (reference != 0).any(1))
        assert D.diagonal() is None
        for a, b in zip(D.parts, parts, strict=True):
            np.testing.assert_array_equal(a, b)
    diagonal = BlockDiagonal.of([np.array([1.0, 0.0]), np.array([3.0])])
    np.testing.assert_array_equal(diagonal.diagonal(), [1.0, 0.0, 3.0])


def test_exp_newton_system_closed_form_equals_a_dense_solve():
    """The projection's Newton/Jacobian system [[I + μ∇²g, ∇g], [∇gᵀ, 0]], solved in
    closed form (∇²g has rank one), equals numpy's dense solve of the 4 × 4 systems."""
    from diffdsl.cones.projections import _exp_constraint, _exp_kkt_solve
    K = 50
    P = np.abs(rng.normal(size=(K, 3))) + 0.2
    P[:, 0] = rng.normal(size=K)
    mu = np.abs(rng.normal(size=K))
    _, grad, hessian = _exp_constraint(P)
    x, y = P[:, 0], P[:, 1]
    e = np.exp(x / y)
    H = np.zeros((K, 3, 3))                       # ∇²g of g = y e^{x/y} − z, entry by entry
    H[:, 0, 0], H[:, 0, 1] = e / y, -e * x / y ** 2
    H[:, 1, 0], H[:, 1, 1] = H[:, 0, 1], e * x ** 2 / y ** 3
    J = np.zeros((K, 4, 4))
    J[:, :3, :3] = np.eye(3) + mu[:, None, None] * H
    J[:, :3, 3] = J[:, 3, :3] = grad
    r = rng.normal(size=(K, 4, 2))
    reference = np.linalg.solve(J, r)
    dp, d_mu = _exp_kkt_solve(mu, grad, hessian, r[:, :3], r[:, 3])
    np.testing.assert_allclose(dp, reference[:, :3], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d_mu, reference[:, 3], rtol=1e-10, atol=1e-12)
    dp, d_mu = _exp_kkt_solve(mu, grad, hessian, r[:, :3, 0], r[:, 3, 0])
    np.testing.assert_allclose(dp, reference[:, :3, 0], rtol=1e-10, atol=1e-12)
