"""What every example shares: the command line (``--fast``, ``--out``), a progress bar for
training loops, and saving a matplotlib figure as PNG (headless)."""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import matplotlib

matplotlib.use("Agg")                      # no display needed
import matplotlib.pyplot as plt  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def arguments(description: str, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true",
                        help="a few iterations on small data (what the tests run)")
    parser.add_argument("--out", default=str(HERE / "out"),
                        help="folder for the PNG plot (default: examples/out)")
    return parser.parse_args(argv)


class Progress:
    """A one-line text progress bar: ``for step in Progress(range(n), "training"):`` with
    ``progress.note(loss=...)`` to show the latest numbers."""

    def __init__(self, iterable, label: str, width: int = 30, stream=None) -> None:
        self.items = list(iterable)
        self.label, self.width = label, width
        self.stream = stream or sys.stdout
        self.notes: dict = {}
        self.start = self.last = time.perf_counter()

    def note(self, **values) -> None:
        self.notes.update(values)

    def _draw(self, done: int) -> None:
        total = max(len(self.items), 1)
        filled = int(self.width * done / total)
        notes = "  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in self.notes.items())
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done}/{total} {elapsed:5.1f}s  {notes}")
        self.stream.flush()

    def __iter__(self):
        for i, item in enumerate(self.items):
            yield item
            now = time.perf_counter()
            if now - self.last >= 0.2 or i + 1 == len(self.items):   # redraw 5× a second
                self.last = now
                self._draw(i + 1)
        self.stream.write("\n")


def save(figure, out: str, name: str) -> pathlib.Path:
    """Save ``figure`` as ``out/name.png`` and say where."""
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"wrote {path}")
    return path
