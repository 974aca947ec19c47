"""What the NumPy, PyTorch and JAX layers share (NumPy only; no framework imported here).

A layer is the map θ ↦ (requested variables, requested duals). It factors as

    θ ─(T, linear)→ data = (P values, c, A values, b) ─(solve)→ (x, y) ─(slices, linear)→ outputs

Each framework computes the two linear maps natively, so its own autodiff handles them;
only the middle step — the cone program's solution and its derivative — is custom, and it
is the same NumPy code for every framework (``LayerCore.solve``, ``data_vjp``, ``data_jvp``).
The linear maps are handed to the frameworks as index triplets (``Linear``).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.sparse as sp

from diffdsl.compiled import CompiledProblem, ProgramValues
from diffdsl.errors import ParameterValueError
from diffdsl.solvers import SolveStatus, ipm, native
from diffdsl.solvers.arrays import namespace

BLOCKS = ("P", "c", "A", "b")
_KIND_NAMES = {"c": "complex", "b": "boolean", "U": "string", "S": "bytes", "O": "object"}


@dataclasses.dataclass
class Linear:
    """A sparse linear map out = M @ inp as triplets: out[row] += val · inp[col]."""

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def of(cls, M) -> "Linear":
        M = sp.coo_matrix(M)
        return cls(M.row.astype(np.int64), M.col.astype(np.int64), M.data.astype(float),
                   M.shape)

    @functools.cached_property
    def matrix(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.vals, (self.rows, self.cols)), shape=self.shape)

    def apply(self, X: np.ndarray) -> np.ndarray:
        """M applied to every row of X (B, shape[1]) → (B, shape[0])."""
        return np.asarray(self.matrix @ np.asarray(X).T).T

    def apply_transpose(self, G: np.ndarray) -> np.ndarray:
        """Mᵀ applied to every row of G (B, shape[0]) → (B, shape[1])."""
        return np.asarray(self.matrix.T @ np.asarray(G).T).T


@dataclasses.dataclass
class Output:
    """One requested output: a variable (a slice of x) or a dual part (a linear map of y)."""

    name: str
    shape: tuple
    offset: int = 0                  # a variable: the slice x[offset : offset + size]
    linear: Linear | None = None     # a dual part: its rows from y

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=int))


class LayerCore:
    """A compiled problem with the layouts a framework layer needs."""

    def __init__(self, problem, parameters=None, variables=None, duals=(),
                 solver: str = "clarabel", rule=None, refine: bool | None = None,
                 on_failure: str = "raise", proximal: float | None = None, **opts) -> None:
        """``refine=None``: refine, except with solver="native", which polishes its own
        points and factors the whole batch's derivative system there."""
        if on_failure not in ("raise", "nan"):
            raise ValueError(f"on_failure must be 'raise' or 'nan', got {on_failure!r}")
        self.on_failure = on_failure
        if _is_cvxpy(problem):
            problem, parameters, variables, duals = _translate(problem, parameters,
                                                               variables, duals)
        self.compiled = CompiledProblem(problem, parameters, variables, solver=solver,
                                        rule=rule, proximal=proximal, **opts)
        self.refine = (self.compiled.adapter.name != "native") if refine is None else refine
        prog = self.compiled.program
        self.parameters, self.variables = self.compiled.parameters, self.compiled.variables
        self.duals = list(duals)
        for c in self.duals:
            if c.id not in prog.duals:
                raise ValueError(f"{c} is not a constraint of this problem; duals= takes "
                                 "the problem's own constraints")
        self.n, self.m, self.n_theta = prog.n, prog.m, prog.n_theta
        self.maps = {"P": Linear.of(prog.P.T), "A": Linear.of(prog.A.T),
                     "b": Linear.of(prog.b), "c": Linear.of(prog.c)}
        depends = prog.depends_on_parameters()
        self.constant = {k: not depends[k] for k in BLOCKS}
        self.outputs = [Output(v.name, tuple(v.shape), prog.variable_offsets[v.id])
                        for v in self.variables]
        self.dual_groups = [self._dual_outputs(c) for c in self.duals]
        #: a closed-form solution map the frameworks evaluate natively (no duals asked)
        fast = self.compiled.fast_path
        self.fast_path = fast if fast is not None and not self.duals else None
        self.fast_map = Linear.of(fast.V) if self.fast_path is not None else None

    # layouts -------------------------------------------------------------------------
    def _dual_outputs(self, constraint) -> list[Output]:
        """The dual value's parts (one array, or several for SOC/exp/pow) as linear maps of
        y, found by applying the (linear) dual recovery to unit vectors of its rows."""
        rows = np.concatenate([np.arange(b.start, b.stop)
                               for b in self.compiled.program.duals[constraint.id]])
        columns = []
        for k in range(rows.size):
            unit = np.zeros(rows.size)
            unit[k] = 1.0
            value = constraint.dual_from(unit)
            parts = value if isinstance(value, list) else [value]
            columns.append([np.asarray(p, float).reshape(-1) for p in parts])
        zero = constraint.dual_from(np.zeros(rows.size))
        shapes = [np.shape(p) for p in (zero if isinstance(zero, list) else [zero])]
        select = sp.csr_matrix((np.ones(rows.size), (np.arange(rows.size), rows)),
                               shape=(rows.size, self.m))
        outputs = []
        for j, shape in enumerate(shapes):
            block = np.stack([col[j] for col in columns], axis=1)     # (part size, rows)
            outputs.append(Output(f"dual of {constraint}", tuple(shape),
                                  linear=Linear.of(sp.csr_matrix(block) @ select)))
        return outputs

    def parameter_layout(self) -> list[tuple[int, int, tuple]]:
        """(offset in θ, size, shape) per parameter, in call order."""
        out, offset = [], 0
        for p in self.parameters:
            out.append((offset, p.size, tuple(p.shape)))
            offset += p.size
        return out

    def check_dtypes(self, kinds: list[str]) -> None:
        """Every argument must hold real numbers: NumPy dtype kinds 'i', 'u' or 'f'."""
        for p, kind in zip(self.parameters, kinds, strict=False):
            if kind not in "iuf":
                raise ParameterValueError(f"Parameter {p.name!r}: values must be real "
                                          f"numbers; got a {_KIND_NAMES.get(kind, kind)} "
                                          "array")

    def batch_size(self, shapes: list[tuple]) -> int | None:
        """The batch size implied by the argument shapes (None: nothing batched)."""
        if len(shapes) != len(self.parameters):
            raise ParameterValueError(
                f"expected {len(self.parameters)} parameter values "
                f"({', '.join(p.name for p in self.parameters)}), got {len(shapes)}")
        batch = None
        for p, shape in zip(self.parameters, shapes, strict=True):
            shape = tuple(shape)
            if shape == tuple(p.shape):
                continue
            if len(shape) == p.ndim + 1 and shape[1:] == tuple(p.shape):
                if batch is not None and shape[0] != batch:
                    raise ParameterValueError(
                        f"inconsistent batch sizes: {p.name!r} has {shape[0]}, earlier "
                        f"parameters {batch}")
                batch = shape[0]
                continue
            raise ParameterValueError(
                f"Parameter {p.name!r}: value has shape {shape}, expected {tuple(p.shape)} "
                f"or (batch, {', '.join(map(str, p.shape))})")
        return batch

    # the custom step -----------------------------------------------------------------
    def solve(self, theta: np.ndarray, P, c, A, b, warm_start: bool = False, **opts):
        """Solve at θ̃ (B, 1 + len θ) with data blocks (B or 1, size) computed by the
        framework; parameter values are validated against their attributes here."""
        theta = np.asarray(theta, dtype=float)
        B = theta.shape[0]
        self.check_values(theta)
        b, c = (np.broadcast_to(np.asarray(v, float), (B, np.shape(v)[-1])) for v in (b, c))
        d = self.compiled.program.objective_offset(theta.T)
        data = ProgramValues(np.asarray(P, float).T, np.asarray(A, float).T, b.T, c.T, d)
        return self.compiled.solve_program(data, B, warm_start=warm_start,
                                           refine=self.refine, on_failure=self.on_failure,
                                           **opts)

    def check_values(self, theta: np.ndarray) -> None:
        """Every parameter's values in θ̃ (B, 1 + len θ) against its attributes (a parameter
        without any only where θ̃ is not all finite: its check then names it)."""
        B = theta.shape[0]
        finite = bool(np.isfinite(theta).all())
        for p, (offset, size, shape) in zip(self.parameters, self.parameter_layout(),
                                            strict=True):
            if not finite or any(p.attributes.values()):
                p.check_batch(theta[:, 1 + offset:1 + offset + size].reshape((B,) + shape))

    # the native solver on the framework's own arrays -------------------------------------
    @functools.cached_property
    def native(self) -> "NativeLayout":
        return NativeLayout(self.compiled)

    def data_vjp(self, solution, gx: np.ndarray, gy: np.ndarray) -> dict:
        """{block: (B, size) gradient} for cotangents gx (B, n) and gy (B, m)."""
        grads = solution.data_vjp(np.asarray(gx, float), np.asarray(gy, float))
        return {"P": np.array([g.P_values for g in grads]), "c": np.array([g.c for g in grads]),
                "A": np.array([g.A_values for g in grads]), "b": np.array([g.b for g in grads])}

    def data_jvp(self, solution, tangents: dict) -> tuple[np.ndarray, np.ndarray]:
        """(dx (B, n), dy (B, m)) for data tangents {block: (B or 1, size) or None}."""
        B = len(solution.status)
        sizes = {"P": self.maps["P"].shape[0], "A": self.maps["A"].shape[0],
                 "b": self.m, "c": self.n}
        full = {k: np.zeros((B, sizes[k])) if tangents.get(k) is None
                else np.broadcast_to(np.asarray(tangents[k], float), (B, sizes[k]))
                for k in BLOCKS}
        per_element = [(full["P"][i], full["c"][i], full["A"][i], full["b"][i])
                       for i in range(B)]
        return solution.data_jvp(per_element)

    @staticmethod
    def status_codes(solution) -> np.ndarray:
        """Per element index of its status in ``list(diffdsl.SolveStatus)`` (0: optimal)."""
        order = list(SolveStatus)
        return np.array([order.index(s) for s in solution.status], dtype=np.int32)

    def describe(self, name: str) -> str:
        """A layer's repr: its class, outputs and the compiled problem's contract."""
        outputs = [o.name for o in self.outputs] + [str(c) for c in self.duals]
        contract = str(self.compiled.contract()).replace("\n", "\n  ")
        return (f"{name}(parameters={[p.name for p in self.parameters]}, outputs={outputs}, "
                f"on_failure={self.on_failure!r}, refine={self.refine}\n  {contract})")


class NativeLayout:
    """What a framework needs to run ``solver="native"`` on its own arrays: where the P and
    A values land in the dense (n, n) and (m, n) matrices (flat indices, P symmetric from
    its upper pattern), the solver's options, and its status codes in ``SolveStatus`` order."""

    def __init__(self, compiled: CompiledProblem) -> None:
        prog = compiled.program
        self.n, self.m, self.cones = prog.n, prog.m, prog.cones
        pr, pc, n = prog.P.indices, prog.P.columns, prog.n
        off = np.flatnonzero(pr != pc)
        self.P_index = np.concatenate([pr * n + pc, pc[off] * n + pr[off]]).astype(np.int64)
        self.P_take = np.concatenate([np.arange(pr.size), off]).astype(np.int64)
        self.A_index = (prog.A.indices * n + prog.A.columns).astype(np.int64)
        #: no pattern stores an entry twice: the dense P and A are built by copying values
        #: into place (cheaper than adding them)
        self.distinct_entries = all(np.unique(index).size == index.size
                                    for index in (self.P_index, self.A_index))
        options = compiled.options
        self.tol, self.max_iter = float(options["tol"]), int(options["max_iter"])
        self.unrolled = compiled.rule.name == "unrolled"
        order = list(SolveStatus)
        #: kernel status code → index into list(SolveStatus)
        self.codes = np.array([order.index(native.STATUS[k]) for k in sorted(native.STATUS)],
                              np.int32)
        constant_P = prog.P.symmetric_dense(prog.P.T[:, 0].toarray().T)
        #: P is the same for every θ and positive definite: the row space can be used
        #: without looking at values (what a traced JAX call needs)
        self.constant_definite_P = (not prog.P.depends_on_parameters
                                    and _definite(constant_P))
        #: A's rows that bound one variable each (for the Newton systems' BoundSpace), and
        #: whether that space applies whatever θ is (P and A constant; a traced JAX call)
        self.bounds = native.bound_rows(prog)
        #: P stores every diagonal entry (else it is not definite: no row space)
        self.full_diagonal_P = prog.P.full_diagonal
        #: the program's ``SlackSubstitution`` (None: none), which the PyTorch layer solves
        #: on (JAX solves the program as it is)
        self.substitution = native.substitution(prog)
        self.constant_bounds = not (prog.P.depends_on_parameters
                                    or prog.A.depends_on_parameters) and ipm.BoundSpace.of(
            namespace("numpy"), constant_P, prog.A.dense(prog.A.T[:, 0].toarray().T),
            prog.cones.zero, self.bounds,
            self.m if self.constant_definite_P else self.n + prog.cones.zero) is not None

    def failure_message(self, codes: np.ndarray) -> str:
        """A SolverError's text for the elements whose status code is not optimal."""
        order = list(SolveStatus)
        failed = np.flatnonzero(codes > 1)
        shown = ", ".join(f"element {i}: {order[codes[i]].value}" for i in failed[:5])
        return (f"{failed.size} of {codes.size} batch element(s) not solved by the native "
                f"solver ({shown}); {order[codes[failed[0]]].hint}. Pass on_failure='nan' to "
                "get NaN for them instead")


def _definite(P: np.ndarray) -> bool:
    """Whether P (1, n, n) passes the native solver's own positive-definiteness test."""
    return bool(namespace("numpy").spd_inverse(P)[1][0])


def _is_cvxpy(problem) -> bool:
    return type(problem).__module__.split(".")[0] == "cvxpy"


def _translate(problem, parameters, variables, duals):
    """A CVXPY problem and its leaves/constraints → the diffdsl equivalents (``from_cvxpy``),
    so a cvxpylayers model migrates by renaming its layer class."""
    from diffdsl.interop import from_cvxpy
    translated, pairs = from_cvxpy(problem)

    def leaf(e):
        if e not in pairs:
            raise ValueError(f"{e} is not a leaf of the given CVXPY problem")
        return pairs[e]

    index = {id(c): i for i, c in enumerate(problem.constraints)}
    missing = [c for c in duals if id(c) not in index]
    if missing:
        raise ValueError(f"{missing[0]} is not a constraint of the given CVXPY problem")
    return (translated, None if parameters is None else [leaf(p) for p in parameters],
            None if variables is None else [leaf(v) for v in variables],
            [translated.constraints[index[id(c)]] for c in duals])
