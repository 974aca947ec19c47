"""One BLAS thread for the derivative's many small dense operations.

Per element, the derivative works on small matrices (an LU of a few hundred unknowns, a few
products), where BLAS threads give nothing and, next to PyTorch's OpenMP threads or the
solver pool, cost a great deal: with torch imported on 2 cores, a batch of 32 MPC problems
took 1.1 s with two BLAS threads and 0.18 s with one. Elements are independent, so the
parallelism belongs to the batch, not to each tiny factorization.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import sys


def _controller():
    """The thread-pool controller of the libraries loaded now: scanned again once PyTorch
    (which brings its own OpenMP) has been imported, else a limit set afterwards would
    miss PyTorch's threads."""
    return _controller_of("torch" in sys.modules)


@functools.lru_cache(maxsize=2)
def _controller_of(torch_loaded: bool):
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:                      # pragma: no cover - a declared dependency
        return None
    return ThreadpoolController()


def single_threaded_blas():
    """Context manager limiting BLAS libraries to one thread (a no-op without threadpoolctl)."""
    controller = _controller()
    if controller is None:                   # pragma: no cover
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def single_threaded_openmp():
    """Context manager limiting OpenMP (PyTorch's intra-op threads) to one thread (a no-op
    without threadpoolctl). After a parallel region OpenMP's workers spin for a while,
    taking a core from whatever runs next: a batch of Clarabel solves right after one
    batched LU took 22–27 ms instead of 16 on 2 cores. (``torch.set_num_threads`` toggled
    here instead left MKL's batched LU returning invalid pivots afterwards.)"""
    controller = _controller()
    if controller is None:                   # pragma: no cover
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="openmp")


@functools.cache
def cores() -> int:
    """The cores this process may run on (its affinity where the platform tells it, else
    the machine's count), looked up once: ``os.cpu_count`` costs ~60 µs a call."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def per_process(make):
    """``make()`` once per process, for thread pools: a pool's workers do not survive a fork
    (a PyTorch DataLoader worker, a multiprocessing child), and work handed to the
    inherited pool would wait forever; a forked child makes its own."""
    made: dict = {}

    @functools.wraps(make)
    def get():
        if made.get("pid") != os.getpid():
            made.update(pid=os.getpid(), value=make())
        return made["value"]

    return get


@per_process
def factor_pool() -> concurrent.futures.ThreadPoolExecutor:
    """Threads for a batch's derivative factorizations (LAPACK and SuperLU release the GIL).
    Not the solver pool (``compiled.default_executor``): a solve running in that pool may
    refine, and would then wait on tasks queued behind itself."""
    return concurrent.futures.ThreadPoolExecutor(cores())
