"""Framework adapters, installed as ``diffdsl.backends`` (from the repository's ``backends/``
folder through the pyproject's package-dir mapping).

The NumPy, PyTorch and JAX layers over a compiled problem live here; they depend on the
compiler and the derivative, which are built first.
"""
