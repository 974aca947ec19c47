"""The demo runs end to end, and training through its QP layer reduces the loss."""
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_demo():
    spec = importlib.util.spec_from_file_location("demo", ROOT / "examples" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_through_the_layer_reduces_the_loss():
    pytest.importorskip("torch")
    first, last = load_demo().train_through_a_layer(steps=20)
    assert last < 0.2 * first


def test_demo_main_runs(capsys):
    load_demo().main()
    assert "compile once" in capsys.readouterr().out
