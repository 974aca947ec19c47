"""README and docs stay in step with the code: the atom table's sign, curvature,
monotonicity and domain columns match each atom's declarations, and README code runs."""
import pathlib
import re

import numpy as np
import pytest

import diffdsl as dd

ROOT = pathlib.Path(__file__).resolve().parents[1]


def atom_rows():
    text = (ROOT / "docs" / "modeling.md").read_text()
    table = text.split("<!-- atom-table: checked by tests/test_docs.py -->")[1]
    rows = []
    for line in table.strip().splitlines()[2:]:
        if not line.startswith("| `"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows.append(cells)
    return rows


ROWS = atom_rows()
MONO = {"↑": dd.Monotonicity.INCREASING, "↓": dd.Monotonicity.DECREASING,
        "none": dd.Monotonicity.NONMONOTONE}


def build(code: str, x=None):
    names = {name: getattr(dd, name) for name in dd.__all__}
    names.update(x=dd.Variable(3) if x is None else x, y=dd.Variable(), k=2,
                 X=dd.Variable((3, 3)), P=np.eye(3))
    return eval(code.strip("`"), names)  # noqa: S307 - code from our own docs table


def test_table_lists_every_atom_of_the_issue():
    listed = {row[0].strip("`").split("(")[0] for row in ROWS}
    for name in ["abs", "pos", "neg", "square", "power", "sqrt", "exp", "log", "log1p",
                 "inv_pos", "entr", "logistic", "huber", "kl_div", "rel_entr", "maximum",
                 "minimum", "max", "min", "norm", "norm1", "norm2", "norm_inf", "pnorm",
                 "sum_squares", "quad_form", "quad_over_lin", "sum_largest", "sum_smallest",
                 "log_sum_exp", "geo_mean", "lambda_max", "lambda_min", "log_det",
                 "sigma_max", "normNuc"]:
        assert name in listed, name


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_atom_table_row(row):
    code, _, sign, curvature, mono, domain = row
    expr = build(code)
    if sign in ("nonnegative", "nonpositive", "unknown"):
        assert expr.sign.value == sign
    if curvature in ("convex", "concave", "affine"):
        assert expr.curvature.value == curvature
    if mono in MONO:
        assert expr.monotonicity(0) is MONO[mono]
    if mono.startswith("↑ for x ≥ 0, ↓ for x ≤ 0"):
        assert expr.monotonicity(0) is dd.Monotonicity.NONMONOTONE
        positive = build(code, x=dd.Variable(3, nonneg=True))
        assert positive.monotonicity(0) is dd.Monotonicity.INCREASING
    if curvature != "affine":
        assert bool(domain) == bool(expr.domain()), (code, expr.domain())


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("path", [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md")),
                         ids=lambda p: p.name)
def test_python_code_blocks_run(path):
    """Each page's blocks run in order in one namespace, as a reader would run them."""
    namespace: dict = {}
    for block in python_blocks(path):
        exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own docs


def test_site_builds_in_strict_mode(tmp_path):
    """`make docs`: mkdocs with mkdocstrings, every warning an error (broken links, missing
    API objects, docstrings that do not render)."""
    import shutil
    import subprocess
    import sys
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    mkdocs = shutil.which("mkdocs", path=str(pathlib.Path(sys.executable).parent))
    out = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("CompiledProblem", "TorchLayer", "JaxLayer", "NumpyLayer", "SolverError"):
        assert name in api
