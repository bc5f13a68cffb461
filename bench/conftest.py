"""pytest-benchmark cases for hecrypt's kernels (not part of the test suite: pytest's
testpaths is tests/).  Run: ``python3 -m pytest bench/ [--device cpu|cuda|auto]
[--benchmark-json FILE]``.  Case ids name their parameters (ring, n, parties ...)."""

from __future__ import annotations

import numpy as np
import pytest

from hecrypt.backend import get_backend, resolve_device


def pytest_addoption(parser):
    parser.addoption("--device", default=None,
                     help="hecrypt device for the benchmarks: auto|cpu|cuda (default: $HECRYPT_DEVICE, else auto)")


@pytest.fixture(scope="session")
def device(request) -> str:
    return resolve_device(request.config.getoption("--device"))


@pytest.fixture(scope="session")
def backend(device):
    return get_backend(device)


@pytest.fixture
def rng() -> np.random.Generator:
    """Public benchmark inputs (never secrets)."""
    return np.random.default_rng()


@pytest.fixture
def run(benchmark, backend):
    """``run(fn, **extra_info)``: benchmark ``fn`` (device synchronised after each call) and
    attach ``extra_info``; returns ``fn``'s last result."""

    def _run(fn, rounds=None, **extra):
        def call():
            out = fn()
            backend.synchronize()
            return out

        benchmark.extra_info.update(extra)
        benchmark.extra_info["device"] = backend.name
        if rounds is None:
            return benchmark(call)
        return benchmark.pedantic(call, rounds=rounds, warmup_rounds=1, iterations=1)

    return _run
