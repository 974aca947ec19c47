"""Whether current leaf values lie in every atom's domain (so values are comparable)."""
import numpy as np

from diffdsl.analysis import walk
from diffdsl.atoms.atom import Atom


def in_domain(expr, tol: float = 1e-9) -> bool:
    for node in walk(expr):
        if isinstance(node, Atom):
            for c in node.domain():
                v = c.violation()
                if v is None or not np.all(np.asarray(v) <= tol):
                    return False
    return True
