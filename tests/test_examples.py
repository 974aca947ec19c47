"""Every example runs end to end in --fast mode and writes its plot; the demo's training
through its QP layer reduces the loss."""
import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
PLOTS = {"demo": "demo"}                       # example → plot name (default: same name)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_fast_and_writes_its_plot(script, tmp_path):
    pytest.importorskip("matplotlib")
    out = subprocess.run([sys.executable, str(script), "--fast", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    plot = tmp_path / f"{PLOTS.get(script.stem, script.stem)}.png"
    assert plot.exists() and plot.stat().st_size > 1000
    assert "Traceback" not in out.stderr


def load_demo():
    sys.path.insert(0, str(ROOT / "examples"))
    spec = importlib.util.spec_from_file_location("demo", ROOT / "examples" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_through_the_layer_reduces_the_loss():
    pytest.importorskip("torch")
    first, last = load_demo().train_through_a_layer(steps=20)
    assert last < 0.2 * first
