"""What every solver adapter shares: the numeric data of one instance, the raw solution, the
status enum, and option checking. No framework imports anywhere in this package."""
from __future__ import annotations

import dataclasses
import enum

import numpy as np
import scipy.sparse as sp

from ..cones.cones import ConeDims
from ..errors import DiffdslError


class SolverError(DiffdslError):
    """A solver could not be used as asked (missing cone support, bad option, failure)."""


class SolveStatus(enum.Enum):
    """Outcome of one solve. ``hint`` says what to try."""

    OPTIMAL = "optimal"
    OPTIMAL_INACCURATE = "optimal_inaccurate"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    ITERATION_LIMIT = "iteration_limit"
    SOLVER_ERROR = "solver_error"

    @property
    def is_optimal(self) -> bool:
        return self in (SolveStatus.OPTIMAL, SolveStatus.OPTIMAL_INACCURATE)

    @property
    def hint(self) -> str:
        return {
            SolveStatus.OPTIMAL: "solved to the requested tolerance",
            SolveStatus.OPTIMAL_INACCURATE: "solved, but not to the requested tolerance; "
                                            "tighten or rescale the data, or try another solver",
            SolveStatus.INFEASIBLE: "no point satisfies the constraints; check the data",
            SolveStatus.UNBOUNDED: "the objective is unbounded; add bounds or regularization",
            SolveStatus.ITERATION_LIMIT: "stopped at the iteration limit; increase max_iters "
                                         "or use an interior-point solver (clarabel)",
            SolveStatus.SOLVER_ERROR: "the solver failed numerically, or reported "
                                      "infeasible/unbounded with a certificate that does not "
                                      "verify; rescale the data or try another solver",
        }[self]


@dataclasses.dataclass
class ConeProgramData:
    """One numeric instance: minimize ½xᵀPx + cᵀx s.t. Ax + s = b, s ∈ K (P upper triangle)."""

    P: sp.csc_matrix
    c: np.ndarray
    A: sp.csc_matrix
    b: np.ndarray
    cones: ConeDims


@dataclasses.dataclass
class RawSolution:
    x: np.ndarray
    y: np.ndarray
    s: np.ndarray
    status: SolveStatus
    iterations: int
    solve_time: float            # as the solver reports it
    wall_time: float = 0.0       # the whole adapter call: setup, solve, translation
    #: a batched derivative the solver leaves behind (the native solver's derivative
    #: system factored at its polished points, shared by the batch), or None
    derivative: object = None


class SolverAdapter:
    """Translate ``ConeProgramData`` for one solver and its answer back."""

    name = "solver"
    cone_kinds: frozenset[str] = frozenset()
    accepts_quadratic = True
    supports_warm_start = False
    #: defaults applied unless the caller overrides them
    default_options: dict = {}
    #: the options that set the solver's relative accuracy
    tolerance_keys: tuple[str, ...] = ()
    #: looser defaults for answers that Newton refinement makes exact anyway (an element
    #: it cannot make exact is solved again with ``default_options``)
    refining_options: dict = {}

    def check_cones(self, cones: ConeDims) -> None:
        missing = cones.kinds() - self.cone_kinds
        if missing:
            able = [a.name for a in ADAPTERS.values() if missing <= a.cone_kinds]
            raise SolverError(f"{self.name} cannot take {', '.join(sorted(missing))} cones; "
                              f"solvers that can: {', '.join(able) or 'none'}")

    def options(self, opts: dict) -> dict:
        merged = {**self.default_options, **opts}
        unknown = set(merged) - self.known_options()
        if unknown:
            raise SolverError(f"unknown {self.name} option(s) {sorted(unknown)}; known: "
                              f"{', '.join(sorted(self.known_options()))}")
        return merged

    def known_options(self) -> set[str]:
        return set(self.default_options)

    def accuracy(self, options: dict) -> float:
        """The relative accuracy the options ask for (the loosest of the tolerances)."""
        values = [float(options[k]) for k in self.tolerance_keys if k in options]
        return max(values) if values else 1e-8

    #: whether ``setup``/``update``/``run`` are implemented: a workspace set up for one
    #: instance (scalings, symbolic analysis, factorizations of P and A) takes new b and c
    reuses_workspace = False

    def solve(self, data: ConeProgramData, opts: dict,
              warm: RawSolution | None = None) -> RawSolution:
        return self.run(self.setup(data, opts), data, opts, warm)

    def setup(self, data: ConeProgramData, opts: dict):
        """A solver workspace for ``data`` (what depends on P and A is computed here)."""
        raise NotImplementedError

    def update(self, workspace, data: ConeProgramData) -> bool:
        """Put ``data``'s b and c into a workspace set up for the same P and A (False: the
        solver refused; set up a new one)."""
        raise NotImplementedError

    def run(self, workspace, data: ConeProgramData, opts: dict,
            warm: RawSolution | None = None) -> RawSolution:
        raise NotImplementedError

    def solve_sequence(self, instances: list[ConeProgramData], opts: dict,
                       warm: list) -> list[RawSolution]:
        """Instances that share P and A (only b and c differ), in order: one workspace
        set up once and updated per instance when the solver allows it."""
        if not self.reuses_workspace or len(instances) < 2:
            return [self.solve(d, opts, w) for d, w in zip(instances, warm, strict=True)]
        workspace = self.setup(instances[0], opts)
        out = []
        for k, (data, w) in enumerate(zip(instances, warm, strict=True)):
            if k and not self.update(workspace, data):
                workspace = self.setup(data, opts)
            out.append(self.run(workspace, data, opts, w))
        return out


ADAPTERS: dict[str, SolverAdapter] = {}


def register(adapter: SolverAdapter) -> SolverAdapter:
    ADAPTERS[adapter.name] = adapter
    return adapter


def get_adapter(name: str) -> SolverAdapter:
    key = str(name).lower()
    if key not in ADAPTERS:
        raise SolverError(f"unknown solver {name!r}; available: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[key]

