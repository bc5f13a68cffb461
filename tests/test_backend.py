"""Device selection (argument, $HECRYPT_DEVICE, auto), clear errors without a GPU, and an
import of hecrypt that touches no GPU and compiles nothing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hecrypt import backend
from hecrypt.backend import (ENV_VAR, backend_of, cuda_status, explain_device, get_backend,
                             is_device_array, resolve_device)
from hecrypt.errors import DeviceUnavailableError

HAVE_GPU = cuda_status()[0]


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def fresh_cuda_status():
    backend.cuda_status.cache_clear()
    yield
    backend.cuda_status.cache_clear()


def test_cpu_always_resolves(no_env):
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" CPU ") == "cpu"
    dev, why = explain_device("cpu")
    assert dev == "cpu" and "cpu requested" in why


def test_auto_follows_cuda_status(no_env):
    ok, why = cuda_status()
    assert isinstance(ok, bool) and why
    assert resolve_device("auto") == ("cuda" if ok else "cpu")
    assert resolve_device(None) == resolve_device("auto")  # no env var: auto
    dev, reason = explain_device(None)
    assert why in reason and "default" in reason


def test_env_var_selects_device(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "cpu")
    assert resolve_device(None) == "cpu"
    assert "$HECRYPT_DEVICE" in explain_device(None)[1]
    assert get_backend().name == "cpu"
    # an explicit argument wins over the environment
    monkeypatch.setenv(ENV_VAR, "cuda")
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setenv(ENV_VAR, "")
    assert resolve_device(None) == resolve_device("auto")


@pytest.mark.parametrize("bad", ["tpu", "cuda-ish", "opencl", "0"])
def test_unknown_device_names(bad, no_env, monkeypatch):
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device(bad)
    monkeypatch.setenv(ENV_VAR, bad)
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device(None)


@pytest.mark.parametrize("bad", [0, 1.0, b"cpu", ["cpu"]])
def test_device_must_be_a_string(bad):
    with pytest.raises(TypeError):
        resolve_device(bad)


def test_cuda_aliases_normalise(no_env):
    for name in ("cuda", "CUDA", "cuda:0", "gpu"):
        if HAVE_GPU:
            assert resolve_device(name) == "cuda"
        else:
            with pytest.raises(DeviceUnavailableError):
                resolve_device(name)


@pytest.mark.skipif(HAVE_GPU, reason="checks the error raised without a GPU")
def test_cuda_without_gpu_names_what_is_missing(no_env, monkeypatch):
    why = cuda_status()[1]
    with pytest.raises(DeviceUnavailableError) as e:
        resolve_device("cuda")
    msg = str(e.value)
    assert "cuda" in msg and why in msg and "argument" in msg
    with pytest.raises(DeviceUnavailableError):
        get_backend("cuda")
    monkeypatch.setenv(ENV_VAR, "cuda")
    with pytest.raises(DeviceUnavailableError, match=r"\$HECRYPT_DEVICE"):
        get_backend()


def test_missing_cupy_is_named_with_the_fix(no_env, monkeypatch, fresh_cuda_status):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cupy" else real(name, *a))
    ok, why = cuda_status()
    assert not ok and "CuPy is not installed" in why and "pip install" in why
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceUnavailableError, match="CuPy is not installed"):
        resolve_device("cuda")


def test_cpu_backend_and_array_ownership(rng):
    be = get_backend("cpu")
    assert be.name == "cpu" and be.xp is np
    assert get_backend("cpu") is be  # one shared instance
    a = rng.integers(0, 2**63, size=5, dtype=np.uint64)
    assert backend_of(a) is be
    assert not is_device_array(a)
    assert not is_device_array([1, 2])
    assert np.array_equal(be.to_numpy(be.asarray(a)), a)


@pytest.mark.gpu
def test_auto_picks_cuda_with_a_gpu(no_env):
    assert resolve_device("auto") == "cuda"
    be = get_backend("cuda")
    assert be.name == "cuda"
    x = be.asarray(np.arange(4, dtype=np.uint64))
    assert is_device_array(x) and backend_of(x) is be


_IMPORT_PROBE = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    import hecrypt
    after_top = sorted(m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx", "cuda") or m.startswith("numba.cuda"))
    failed = {}
    for m in pkgutil.walk_packages(hecrypt.__path__, "hecrypt."):
        if m.name.startswith("hecrypt._kernels"):
            continue
        try:
            importlib.import_module(m.name)
        except Exception as exc:  # other modules' import errors are their own tests' business
            failed[m.name] = repr(exc)
    gpu_mods = sorted(m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx", "cuda") or m.startswith("numba.cuda"))
    compiled = []
    try:
        from numba.core.registry import CPUDispatcher
    except Exception:
        CPUDispatcher = None
    for name, mod in list(sys.modules.items()):
        if not name.startswith("hecrypt") or mod is None:
            continue
        for attr, obj in vars(mod).items():
            if CPUDispatcher is not None and isinstance(obj, CPUDispatcher) and obj.signatures:
                compiled.append(f"{name}.{attr}")
    from hecrypt.backend import cuda_status
    print(json.dumps({"after_top": after_top, "gpu_mods": gpu_mods, "compiled": compiled,
                      "failed": failed, "probed": cuda_status.cache_info().currsize}))
""")


def test_import_touches_no_gpu_and_compiles_nothing():
    """Importing hecrypt (and every submodule) imports no CuPy/CUDA module, compiles no Numba
    kernel (none loaded from the cache either) and does not probe for a GPU."""
    r = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d["after_top"] == [], d
    assert d["gpu_mods"] == [], f"modules importing CuPy/CUDA at import time: {d['gpu_mods']} (failed: {d['failed']})"
    assert d["compiled"] == [], f"Numba kernels compiled at import: {d['compiled']}"
    assert d["probed"] == 0, "cuda_status() ran at import time"
