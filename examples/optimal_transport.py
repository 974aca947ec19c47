"""Entropy-regularized optimal transport as a JAX layer (jit + vmap), checked against
Sinkhorn, then used for matching: source points move to minimize their transport cost to a
target cloud, differentiating through the transport plan.

    P*(C) = argmin ⟨C, P⟩ − ε H(P)   s.t.  P1 = a,  Pᵀ1 = b,     H(P) = −Σ Pᵢⱼ log Pᵢⱼ

Sinkhorn's closed form is P* = diag(u) exp(−C/ε) diag(v); the layer solves the exponential
cone program instead and must agree.

    python examples/optimal_transport.py [--fast]
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import diffdsl as dd
from _common import Progress, arguments, save
from diffdsl.backends.jax import JaxLayer

jax.config.update("jax_enable_x64", True)
EPSILON = 0.5


def ot_layer(n: int) -> JaxLayer:
    C = dd.Parameter((n, n), name="C")
    P = dd.Variable((n, n), name="P")
    a = np.full(n, 1.0 / n)
    # the row sums fix the total mass, so the last column sum is implied: leaving it out
    # keeps the multipliers unique (and the derivative system nonsingular)
    problem = dd.Problem(dd.Minimize(dd.sum(dd.multiply(C, P)) - EPSILON * dd.sum(dd.entr(P))),
                         [dd.sum(P, axis=1) == a, dd.sum(P[:, :-1], axis=0) == a[:-1]])
    return JaxLayer(problem, parameters=[C], variables=[P])


def sinkhorn(C: np.ndarray, tolerance: float = 1e-14, iterations: int = 100_000) -> np.ndarray:
    """Sinkhorn's scaling iterations until both marginals are right to ``tolerance``."""
    n = C.shape[0]
    K, a = np.exp(-C / EPSILON), np.full(n, 1.0 / n)
    u = v = np.ones(n)
    for _ in range(iterations):
        u = a / (K @ v)
        v = a / (K.T @ u)
        P = u[:, None] * K * v[None, :]
        if np.abs(P.sum(axis=1) - a).max() <= tolerance:
            break
    return P


def costs(X, Y):
    return jnp.sum((X[:, None, :] - Y[None, :, :]) ** 2, axis=-1)


def main(argv=None) -> dict:
    args = arguments(__doc__, argv)
    rng = np.random.default_rng(0)
    n, batch, steps = (4, 3, 5) if args.fast else (6, 8, 40)
    layer = ot_layer(n)
    plan = jax.jit(lambda C: layer(C)[0])

    # 1. a vmapped batch of plans (one batched solve) against Sinkhorn
    targets = rng.normal(size=(batch, n, 2))
    sources = rng.normal(size=(n, 2))
    C_batch = jax.vmap(costs, in_axes=(None, 0))(jnp.asarray(sources), jnp.asarray(targets))
    plans = jax.jit(jax.vmap(plan))(C_batch)
    error = max(np.abs(np.asarray(p) - sinkhorn(np.asarray(c))).max()
                for p, c in zip(plans, C_batch, strict=True))
    print(f"{batch} plans (jit + vmap): max |P − Sinkhorn| = {error:.1e}")

    # 2. matching: move the sources to lower their transport cost to the first target cloud
    Y = jnp.asarray(targets[0])

    def transport_cost(X):
        C = costs(X, Y)
        return jnp.sum(C * plan(C))

    step = jax.jit(jax.value_and_grad(transport_cost))
    X = jnp.asarray(sources)
    history, losses = [np.asarray(X)], []
    progress = Progress(range(steps), "matching")
    for _ in progress:
        loss, grad = step(X)
        X = X - 0.5 * n * grad                 # plan rows sum to 1/n
        losses.append(float(loss))
        history.append(np.asarray(X))
        progress.note(cost=float(loss))
    print(f"transport cost {losses[0]:.3f} → {losses[-1]:.3f}")

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    P = np.asarray(plan(costs(X, Y)))
    for i in range(n):
        for j in range(n):
            if P[i, j] > 0.2 / n:
                right.plot([X[i, 0], Y[j, 0]], [X[i, 1], Y[j, 1]], "k-",
                           alpha=min(1.0, n * P[i, j]))
    trail = np.array(history)
    for i in range(n):
        right.plot(trail[:, i, 0], trail[:, i, 1], ":", color="tab:blue")
    right.scatter(*np.asarray(X).T, label="sources (moved)")
    right.scatter(*np.asarray(Y).T, marker="x", label="targets")
    right.legend()
    right.set(title="matching by the OT layer's gradient")
    left.plot(losses)
    left.set(xlabel="step", ylabel="⟨C, P*⟩", title="transport cost")
    save(figure, args.out, "optimal_transport")
    return {"sinkhorn_error": error, "first": losses[0], "last": losses[-1]}


if __name__ == "__main__":
    main()
