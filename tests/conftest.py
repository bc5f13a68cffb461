"""Shared test fixtures: fresh random inputs each run (seed printed on failure), GPU skipping."""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest

from hecrypt.backend import cuda_status

_SEED = int(os.environ.get("HECRYPT_TEST_SEED", secrets.randbits(63)))


def pytest_report_header(config):
    return f"hecrypt test seed: HECRYPT_TEST_SEED={_SEED} (fresh random inputs each run)"


@pytest.fixture
def rng(request) -> np.random.Generator:
    """numpy Generator for *test inputs* (never for secrets), fresh each run, reproducible via
    HECRYPT_TEST_SEED."""
    return np.random.default_rng([_SEED, abs(hash(request.node.nodeid)) % (1 << 32)])


def pytest_collection_modifyitems(config, items):
    ok, why = cuda_status()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"no CUDA GPU: {why}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
