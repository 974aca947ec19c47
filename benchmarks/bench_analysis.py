"""Benchmark: building a problem and checking DCP + DPP, diffdsl vs CVXPY in one run.

Problem: minimize Σ t_i subject to ‖A_i x − b_i‖₂ ≤ t_i (i < m), x ≥ 0, with parameters
A_i, b_i. Prints a table of wall times (best of 3) and the ratio CVXPY / diffdsl.
"""
import time


def build(lib, m: int, n: int = 10):
    x = lib.Variable(n)
    t = lib.Variable(m)
    A = [lib.Parameter((5, n)) for _ in range(m)]
    b = [lib.Parameter(5) for _ in range(m)]
    cons = [lib.norm(A[i] @ x - b[i]) <= t[i] for i in range(m)] + [x >= 0]
    return lib.Problem(lib.Minimize(lib.sum(t)), cons)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import cvxpy

    import diffdsl

    print(f"{'m':>6} | {'diffdsl build+check':>20} | {'cvxpy build+check':>18} | {'ratio':>6}")
    print("-" * 60)
    for m in (10, 100, 1000):
        ours = best_of(lambda m=m: _check(build(diffdsl, m)))
        theirs = best_of(lambda m=m: _check(build(cvxpy, m)))
        ratio = theirs / ours
        print(f"{m:>6} | {ours * 1e3:>17.1f} ms | {theirs * 1e3:>15.1f} ms | {ratio:>5.1f}×")


def _check(problem) -> None:
    assert problem.is_dcp() and problem.is_dpp()


if __name__ == "__main__":
    main()
