"""The user-level solution map θ ↦ (variables, duals) and its derivatives, composed from
the cone program's derivative (``hsde.SolutionDerivative``), the parametric map
(P, c, A, b) = T · [1; θ], and the linear recovery of variables and duals from (x, y)."""
from __future__ import annotations

import numpy as np

from .hsde import DataCotangent


def parameter_offsets(compiled) -> dict:
    """Parameter → (first index in θ, size)."""
    out, offset = {}, 0
    for p in compiled.parameters:
        out[p] = (offset, p.size)
        offset += p.size
    return out


def cotangents(compiled, d_variables: dict, d_duals: dict | None, batch: int):
    """(g_x, g_y, g_s), each (B, n or m), from cotangents on variables and duals."""
    prog = compiled.program
    gx, gy = np.zeros((batch, prog.n)), np.zeros((batch, prog.m))
    for var, g in (d_variables or {}).items():
        offset = prog.variable_offsets[var.id]
        gx[:, offset:offset + var.size] += _per_element(g, var.shape, batch, var.name)
    for con, g in (d_duals or {}).items():
        for i in range(batch):
            g_i = g[i] if batch > 1 or _is_batched(g, con) else g
            rows = con.dual_adjoint(g_i)
            start = 0
            for block in prog.duals[con.id]:
                size = block.stop - block.start
                gy[i, block.start:block.stop] += rows[start:start + size]
                start += size
    return gx, gy, np.zeros_like(gy)


def _is_batched(g, con) -> bool:
    return isinstance(g, np.ndarray) and hasattr(con, "shape") and g.ndim > len(con.shape)


def _per_element(g, shape, batch: int, name: str) -> np.ndarray:
    g = np.asarray(g, dtype=float)
    if g.shape == tuple(shape):
        return np.broadcast_to(g.reshape(1, -1), (batch, g.size))
    if g.shape == (batch,) + tuple(shape):
        return g.reshape(batch, -1)
    raise ValueError(f"cotangent for {name!r} has shape {g.shape}, expected {tuple(shape)} "
                     f"or ({batch}, {', '.join(map(str, shape))})")


def parameter_gradients(compiled, grads: list[DataCotangent], batched: bool) -> dict:
    """{Parameter: gradient} from per-element data cotangents: θ̃-gradient = Tᵀ · data."""
    prog = compiled.program
    stacked = {k: np.array([getattr(g, k) for g in grads]).T          # (size, B) each
               for k in ("A_values", "P_values", "b", "c")}
    theta = np.asarray(prog.A.T.T @ stacked["A_values"] + prog.P.T.T @ stacked["P_values"]
                       + prog.b.T @ stacked["b"] + prog.c.T @ stacked["c"]).T[:, 1:]
    out = {}
    for p, (offset, size) in parameter_offsets(compiled).items():
        block = theta[:, offset:offset + size].reshape((-1,) + p.shape)
        out[p] = block if batched else block[0]
    return out


def theta_tangent(compiled, d_parameters: dict, batch: int) -> np.ndarray:
    """dθ̃ (1 + len θ, B) for {Parameter: tangent} (missing parameters: 0; dθ̃₀ = 0)."""
    dtheta = np.zeros((1 + compiled.program.n_theta, batch))
    offsets = parameter_offsets(compiled)
    for p, d in d_parameters.items():
        if p not in offsets:
            raise ValueError(f"{p.name!r} is not a parameter of this compiled problem")
        offset, size = offsets[p]
        dtheta[1 + offset:1 + offset + size] = _per_element(d, p.shape, batch, p.name).T
    return dtheta


def data_tangents(compiled, d_parameters: dict, batch: int):
    """Per element (dP values, dc, dA values, db) for parameter tangents (missing: 0)."""
    prog = compiled.program
    dtheta = theta_tangent(compiled, d_parameters, batch)
    dA, dP = prog.A.values(dtheta), prog.P.values(dtheta)
    db, dc = np.asarray(prog.b @ dtheta), np.asarray(prog.c @ dtheta)
    return [(dP[:, i], dc[:, i], dA[:, i], db[:, i]) for i in range(batch)]


def outputs(compiled, dx: np.ndarray, dy: np.ndarray, batched: bool):
    """({Variable: dvalue}, {Constraint: ddual}) from (B, n) and (B, m) tangents."""
    prog = compiled.program
    variables = {}
    for v in compiled.variables:
        offset = prog.variable_offsets[v.id]
        block = dx[:, offset:offset + v.size].reshape((-1,) + v.shape)
        variables[v] = block if batched else block[0]
    duals = {}
    for c in compiled.problem.constraints:
        per = [c.dual_from(np.concatenate([y[b.start:b.stop] for b in prog.duals[c.id]]))
               for y in dy]
        duals[c] = per if batched else per[0]
    return variables, duals
