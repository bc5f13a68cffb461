"""Device choice and kernels: the only layer of hecrypt that imports CuPy or Numba.

Everything above this package talks to a :class:`Backend`, never to CuPy or Numba directly:

* :func:`resolve_device` turns ``"auto" | "cpu" | "cuda"`` (or ``None``, which reads the
  ``HECRYPT_DEVICE`` environment variable and defaults to ``"auto"``) into ``"cpu"`` or
  ``"cuda"``.  ``auto`` picks CUDA only when CuPy imports *and* a GPU is present.
* :func:`get_backend` returns the backend object for a device: ``backend.xp`` is the array
  module (numpy or cupy) and the backend's methods are the ring kernels.
* :func:`backend_of` returns the backend that owns an array (numpy -> CPU, cupy -> CUDA)
  without importing CuPy.

Nothing here compiles a kernel or touches a GPU at import time: the CUDA backend is built
on first use, and its kernels are compiled (or loaded from prebuilt fatbins) lazily.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from typing import Any

from ..errors import DeviceUnavailableError

# Numba's OpenMP threading layer spins its workers between kernel calls by default; on a
# loaded or small machine that costs milliseconds per call (measured here: 5.5 ms -> 47 us
# for an 8192-element mulmod on 2 busy cores).  Passive waiting keeps the CPU kernels fast
# when the host is shared.  It must be set before the OpenMP runtime starts (the first
# parallel kernel call), and a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEVICES = ("auto", "cpu", "cuda")
ENV_VAR = "HECRYPT_DEVICE"

__all__ = [
    "DEVICES",
    "ENV_VAR",
    "resolve_device",
    "explain_device",
    "cuda_status",
    "get_backend",
    "backend_of",
    "is_device_array",
]


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """Return ``(usable, reason)`` for the CUDA backend, probing at most once.

    The probe imports CuPy and asks the driver for a device count; it compiles nothing.
    """
    if importlib.util.find_spec("cupy") is None:
        return False, "CuPy is not installed (pip install 'hecrypt[cuda13]' or 'hecrypt[cuda12]')"
    try:
        cupy = importlib.import_module("cupy")
    except Exception as exc:  # pragma: no cover - depends on the machine
        return False, f"CuPy failed to import: {exc}"
    try:
        if not cupy.is_available():
            return False, "CuPy imports but no CUDA GPU/driver is present"
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # pragma: no cover - depends on the machine
        return False, f"CuPy imports but the CUDA runtime failed: {exc}"
    if n < 1:  # pragma: no cover
        return False, "CuPy imports but reports no CUDA device"
    return True, f"CuPy {cupy.__version__} found {n} CUDA device(s)"


def _requested(device: str | None) -> str:
    if device is None:
        device = os.environ.get(ENV_VAR, "auto") or "auto"
    if not isinstance(device, str):
        raise TypeError(f"device must be a string ('auto', 'cpu' or 'cuda'), got {type(device).__name__}")
    d = device.strip().lower()
    if d.startswith("cuda:") or d.startswith("gpu"):
        d = "cuda"
    if d not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    return d


def explain_device(device: str | None = None) -> tuple[str, str]:
    """Return ``(device, why)``: the device that ``device`` resolves to and the reason."""
    req = _requested(device)
    src = "argument" if device is not None else (f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "default")
    if req == "cpu":
        return "cpu", f"cpu requested ({src})"
    ok, why = cuda_status()
    if req == "cuda":
        if not ok:
            raise DeviceUnavailableError(f"device 'cuda' was requested ({src}) but {why}")
        return "cuda", f"cuda requested ({src}); {why}"
    return ("cuda", f"auto ({src}): {why}") if ok else ("cpu", f"auto ({src}): {why}")


def resolve_device(device: str | None = None) -> str:
    """Resolve ``device`` (``None`` reads ``$HECRYPT_DEVICE``) to ``"cpu"`` or ``"cuda"``.

    Raises :class:`~hecrypt.errors.DeviceUnavailableError` when ``cuda`` is asked for and
    cannot be used, naming what is missing; ``ValueError`` for an unknown name.
    """
    return explain_device(device)[0]


@functools.lru_cache(maxsize=None)
def _load(name: str) -> Any:
    if name == "cpu":
        from . import cpu

        return cpu.CPUBackend()
    from . import cuda

    return cuda.CUDABackend()


def get_backend(device: str | None = None) -> Any:
    """Return the backend for ``device`` (see :func:`resolve_device`)."""
    return _load(resolve_device(device))


def is_device_array(a: Any) -> bool:
    """True if ``a`` is a CuPy array (checked without importing CuPy)."""
    return type(a).__module__.split(".")[0] == "cupy"


def backend_of(a: Any) -> Any:
    """The backend owning array ``a``: CUDA for CuPy arrays, CPU for everything else."""
    return _load("cuda") if is_device_array(a) else _load("cpu")
