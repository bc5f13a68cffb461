"""Locating, compiling and loading hecrypt's CUDA C kernels (``kernels/*.cu``).

Where the sources are (:func:`kernel_source_dir`):

* an installed wheel carries them as package data in ``hecrypt/_kernels/`` (pyproject maps
  the package ``hecrypt._kernels`` to the ``kernels/`` directory);
* a source checkout has them in ``<repo>/kernels/``;
* ``$HECRYPT_KERNEL_DIR`` overrides both.

How a module is loaded (:func:`get_module`, lazy, cached per device):

1. a prebuilt fatbin ``<name>.fatbin`` (built by CMake for sm_80 and sm_90, see
   ``CMakeLists.txt``) from ``$HECRYPT_FATBIN_DIR``, ``<repo>/build/`` or next to the sources is
   loaded with ``cupy.RawModule(path=...)``; in a source checkout a fatbin older than its
   ``.cu`` file or any ``common/*.cuh`` header is stale and skipped;
2. otherwise the source is compiled with NVRTC through ``cupy.RawModule(code=...)`` with
   ``-I`` pointing at the kernel directory (the headers' hash is part of the code, so CuPy's
   on-disk cache never serves a binary built from older headers).

Nothing here imports CuPy or touches a GPU at import time.  :func:`nvrtc_compile` compiles a
kernel to a cubin *without* a GPU (NVRTC only), for tests and CI.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Any

from ..errors import KernelError

__all__ = [
    "FATBIN_ENV",
    "KERNEL_DIR_ENV",
    "kernel_source_dir",
    "kernel_names",
    "kernel_source",
    "find_fatbin",
    "fatbin_contents",
    "prebuilt_status",
    "nvrtc_options",
    "nvrtc_compile",
    "get_module",
    "get_function",
    "clear_cache",
]

FATBIN_ENV = "HECRYPT_FATBIN_DIR"
KERNEL_DIR_ENV = "HECRYPT_KERNEL_DIR"

_PKG_DIR = Path(__file__).resolve().parent.parent  # .../hecrypt
_INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def _has_sources(d: Path) -> bool:
    return d.is_dir() and any(d.glob("*.cu"))


def kernel_source_dir() -> Path:
    """Directory holding ``*.cu`` and ``common/*.cuh`` (see module docstring for the order).

    Raises :class:`~hecrypt.errors.KernelError` if no kernel sources can be found.
    """
    env = os.environ.get(KERNEL_DIR_ENV)
    if env:
        d = Path(env)
        if not _has_sources(d):
            raise KernelError(f"${KERNEL_DIR_ENV}={env} holds no *.cu kernel sources")
        return d
    for d in (_PKG_DIR / "_kernels", _PKG_DIR.parent / "kernels"):
        if _has_sources(d):
            return d
    raise KernelError(
        "hecrypt's CUDA kernel sources were not found: expected hecrypt/_kernels/ (installed wheel) "
        f"or kernels/ next to the package (source checkout); set ${KERNEL_DIR_ENV} to override"
    )


def _in_source_tree(src: Path) -> bool:
    return src.resolve() == (_PKG_DIR.parent / "kernels").resolve()


def kernel_names() -> list[str]:
    """Module names (``*.cu`` stems) available in :func:`kernel_source_dir`, sorted."""
    return sorted(p.stem for p in kernel_source_dir().glob("*.cu"))


def _source_path(name: str) -> Path:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError(f"kernel module name must be a plain identifier, got {name!r}")
    p = kernel_source_dir() / f"{name}.cu"
    if not p.is_file():
        raise KernelError(f"kernel source {name}.cu not found in {p.parent}")
    return p


def _dependencies(path: Path, seen: set[Path] | None = None) -> list[Path]:
    """The file and every header it includes with ``#include "..."`` (transitively)."""
    seen = set() if seen is None else seen
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    out = [path]
    base = kernel_source_dir().resolve()
    for inc in _INCLUDE_RE.findall(path.read_text()):
        for cand in (path.parent / inc, base / inc):
            if cand.is_file():
                out += _dependencies(cand, seen)
                break
    return out


def kernel_source(name: str) -> str:
    """Source text of ``<name>.cu`` prefixed by a hash of every header it includes."""
    deps = _dependencies(_source_path(name))
    h = hashlib.sha256()
    for d in deps[1:]:
        h.update(d.name.encode())
        h.update(d.read_bytes())
    src = deps[0]
    return f'// hecrypt headers sha256: {h.hexdigest()}\n#line 1 "{src.name}"\n' + src.read_text()


# --------------------------------------------------------------------------------------
# prebuilt fatbins
# --------------------------------------------------------------------------------------
def _fatbin_dirs() -> list[tuple[Path, str]]:
    dirs: list[tuple[Path, str]] = []
    env = os.environ.get(FATBIN_ENV)
    if env:
        dirs.append((Path(env), f"${FATBIN_ENV}"))
    try:
        src = kernel_source_dir()
    except KernelError:
        return dirs
    if _in_source_tree(src):
        dirs.append((src.parent / "build", "build/"))
    dirs.append((src, "next to the sources"))
    return dirs


def _fatbin_check(name: str, path: Path) -> str | None:
    """None if usable, else why not (stale in a source checkout)."""
    try:
        src = _source_path(name)
    except KernelError:
        return None  # a fatbin without its source (e.g. a trimmed install) is trusted
    if not _in_source_tree(src.parent):
        return None  # installed packages: the fatbin was built with the shipped sources
    newest = max(d.stat().st_mtime for d in _dependencies(src))
    if path.stat().st_mtime < newest:
        return f"stale (older than {src.name} or its headers)"
    return None


def find_fatbin(name: str) -> Path | None:
    """Path of a usable prebuilt ``<name>.fatbin``, or None (see module docstring for the order)."""
    for d, _ in _fatbin_dirs():
        p = d / f"{name}.fatbin"
        if p.is_file() and _fatbin_check(name, p) is None:
            return p
    return None


def prebuilt_status() -> dict[str, Any]:
    """What ``hecrypt info`` reports about kernels: source dir and, per module, fatbin or NVRTC.

    Returns ``{"source_dir": str|None, "searched": [str], "modules": {name: "fatbin <path>" |
    "nvrtc (<why>)"}, "all_prebuilt": bool}``; never raises and never touches a GPU.
    """
    try:
        src = kernel_source_dir()
        names = kernel_names()
    except KernelError as exc:
        return {"source_dir": None, "searched": [], "modules": {}, "all_prebuilt": False, "error": str(exc)}
    dirs = _fatbin_dirs()
    modules: dict[str, str] = {}
    for n in names:
        why = "no fatbin found"
        for d, _ in dirs:
            p = d / f"{n}.fatbin"
            if p.is_file():
                bad = _fatbin_check(n, p)
                if bad is None:
                    try:
                        archs = ",".join(f"{k}:sm_{a}" for k, a in fatbin_contents(p))
                    except (OSError, ValueError) as exc:
                        archs = f"unreadable: {exc}"
                    modules[n] = f"fatbin {p} [{archs}]"
                    break
                why = f"{p} is {bad}"
        else:
            modules[n] = f"nvrtc ({why})"
    return {
        "source_dir": str(src),
        "searched": [f"{d} ({label})" for d, label in dirs],
        "modules": modules,
        "all_prebuilt": bool(modules) and all(v.startswith("fatbin") for v in modules.values()),
    }


def fatbin_contents(path: str | os.PathLike) -> list[tuple[str, int]]:
    """``[("elf" | "ptx", sm), ...]``: what a fatbin holds (machine code per SM, PTX), read from
    its headers without CUDA tools.  Raises ValueError for a file that is not a fatbin."""
    import struct

    data = Path(path).read_bytes()
    if len(data) < 16:
        raise ValueError(f"{path} is not a CUDA fatbin (too short)")
    magic, _ver, hsize, fsize = struct.unpack_from("<IHHQ", data, 0)
    if magic != 0xBA55ED50:
        raise ValueError(f"{path} is not a CUDA fatbin (bad magic {magic:#x})")
    out: list[tuple[str, int]] = []
    off, end = hsize, min(len(data), hsize + fsize)
    while off + 32 <= end:
        kind, _u, ehs, size = struct.unpack_from("<HHIQ", data, off)
        arch = struct.unpack_from("<I", data, off + 28)[0]
        out.append(({1: "ptx", 2: "elf"}.get(kind, f"kind{kind}"), int(arch)))
        if ehs == 0:
            break
        off += ehs + size
    return out


# --------------------------------------------------------------------------------------
# NVRTC
# --------------------------------------------------------------------------------------
def nvrtc_options() -> tuple[str, ...]:
    """NVRTC options used for every hecrypt kernel (the target arch is added by the caller)."""
    src = kernel_source_dir()
    return ("-std=c++17", f"-I{src}", f"-I{src / 'common'}")


def nvrtc_compile(name: str, arch: str = "sm_90", extra_options: tuple[str, ...] = ()) -> bytes:
    """Compile ``<name>.cu`` with NVRTC to a cubin for ``arch`` (``sm_80``, ``sm_90``, ...).

    Needs only the NVRTC library (``nvidia-cuda-nvrtc`` wheel or a CUDA toolkit), no GPU or
    driver.  Raises :class:`~hecrypt.errors.KernelError` with the compiler log on failure.
    """
    try:
        from cupy.cuda import nvrtc
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise KernelError(f"NVRTC is not available through CuPy: {exc}") from exc
    if not re.fullmatch(r"(sm|compute)_\d+[a-z]?", arch):
        raise ValueError(f"arch must look like 'sm_90' or 'compute_80', got {arch!r}")
    code = kernel_source(name)
    prog = nvrtc.createProgram(code, f"{name}.cu", [], [])
    opts = [f"--gpu-architecture={arch}", *nvrtc_options(), *extra_options]
    try:
        try:
            nvrtc.compileProgram(prog, opts)
        except Exception as exc:
            log = nvrtc.getProgramLog(prog)
            raise KernelError(f"NVRTC failed to compile {name}.cu for {arch}: {exc}\n{log}") from exc
        return bytes(nvrtc.getCUBIN(prog) if arch.startswith("sm_") else nvrtc.getPTX(prog).encode())
    finally:
        nvrtc.destroyProgram(prog)


# --------------------------------------------------------------------------------------
# loading (GPU)
# --------------------------------------------------------------------------------------
_lock = threading.Lock()
_modules: dict[tuple[int, str], Any] = {}
_sources: dict[tuple[int, str], str] = {}


def _nvrtc_module(name: str) -> Any:
    import cupy

    return cupy.RawModule(code=kernel_source(name), options=nvrtc_options(), backend="nvrtc")


def get_module(name: str) -> Any:
    """The ``cupy.RawModule`` for ``<name>.cu`` on the current device (fatbin first, else NVRTC)."""
    import cupy

    key = (cupy.cuda.Device().id, name)
    mod = _modules.get(key)
    if mod is not None:
        return mod
    with _lock:
        mod = _modules.get(key)
        if mod is None:
            fat = find_fatbin(name)
            why = "no usable prebuilt fatbin"
            if fat is not None:
                try:  # some CuPy versions load the file here, others on first get_function
                    mod = cupy.RawModule(path=str(fat))
                    _sources[key] = f"fatbin {fat}"
                except Exception as exc:  # e.g. no code for this GPU's architecture
                    why = f"fatbin {fat} failed to load: {exc}"
            if mod is None:
                mod = _nvrtc_module(name)
                _sources[key] = f"nvrtc ({why})"
            _modules[key] = mod
        return mod


def get_function(module: str, function: str) -> Any:
    """``get_module(module).get_function(function)``.

    A fatbin that cannot be loaded on this device (e.g. no code for its architecture) is
    replaced by an NVRTC build of the same source; other failures raise KernelError.
    """
    import cupy

    try:
        return get_module(module).get_function(function)
    except Exception as exc:
        key = (cupy.cuda.Device().id, module)
        if not _sources.get(key, "").startswith("fatbin"):
            raise KernelError(f"could not load kernel {function} from {module}.cu: {exc}") from exc
        with _lock:
            _modules[key] = _nvrtc_module(module)
            _sources[key] = f"nvrtc (fatbin failed to load: {exc})"
        try:
            return _modules[key].get_function(function)
        except Exception as exc2:
            raise KernelError(f"could not load kernel {function} from {module}.cu: {exc2}") from exc2


def loaded_from() -> dict[str, str]:
    """``{"<device>:<module>": "fatbin <path>" | "nvrtc"}`` for modules loaded so far."""
    return {f"{d}:{n}": v for (d, n), v in sorted(_sources.items())}


def clear_cache() -> None:
    """Forget loaded modules (tests; a new RawModule is built on next use)."""
    with _lock:
        _modules.clear()
        _sources.clear()
