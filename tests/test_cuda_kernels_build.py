"""The CUDA C kernels compile: CMake/nvcc fatbins for sm_80 and sm_90, and NVRTC.

No GPU is needed.  The CMake build runs once per session in a reusable directory under the
system temp dir (incremental on later runs), compiling in parallel; each ``kernels/*.cu`` then
gets its own test that its fatbin holds machine code for sm_80 and sm_90.  NVRTC (the
runtime compiler hecrypt falls back to) compiles every file for both architectures with
ptxas statistics; hecrypt's own ring kernels must not spill registers.  Finally every
``extern "C"`` entry point that ``hecrypt.backend.cuda`` launches must exist in the compiled
code.
"""

from __future__ import annotations

import getpass
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hecrypt.backend import kernels as K
from hecrypt.backend.cuda import KERNELS

ROOT = Path(__file__).resolve().parents[1]
KDIR = ROOT / "kernels"
SOURCES = sorted(p.stem for p in KDIR.glob("*.cu"))
ARCHS = ("sm_80", "sm_90")
#: kernel files written with a no-spill budget (the GPU backend's ring kernels)
NO_SPILL = ("ring_elementwise", "ring_matmul", "limb_matmul", "truncate", "chacha20")

_HAVE_NVCC = shutil.which("nvcc") is not None
_HAVE_CMAKE = shutil.which("cmake") is not None


def _nvrtc_available() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
        return True
    except Exception:
        return False


_HAVE_NVRTC = _nvrtc_available()


def test_sources_present():
    assert set(KERNELS) <= set(SOURCES), f"cuda.py uses modules without sources: {set(KERNELS) - set(SOURCES)}"
    assert (KDIR / "common" / "modarith.cuh").is_file()
    assert K.kernel_source_dir().resolve() == KDIR.resolve()


# --------------------------------------------------------------------------------------
# CMake + nvcc
# --------------------------------------------------------------------------------------
def _build_dir() -> Path:
    tag = hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]
    try:
        user = getpass.getuser()
    except Exception:  # pragma: no cover
        user = str(os.getuid())
    return Path(tempfile.gettempdir()) / f"hecrypt-kernels-build-{user}-{tag}"


@pytest.fixture(scope="session")
def cmake_build():
    """Configure and build once per session; returns (returncode, log, build_dir)."""
    if not (_HAVE_NVCC and _HAVE_CMAKE):
        pytest.skip("nvcc or cmake is not installed")
    bdir = _build_dir()
    gen = ["-G", "Unix Makefiles"] if shutil.which("make") else []
    cfg = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(bdir), *gen], capture_output=True, text=True,
                         timeout=120)
    if cfg.returncode != 0 and "generator" in cfg.stderr.lower():
        shutil.rmtree(bdir, ignore_errors=True)  # a stale cache from another generator
        cfg = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(bdir), *gen], capture_output=True, text=True,
                             timeout=120)
    if cfg.returncode != 0:
        return cfg.returncode, cfg.stdout + cfg.stderr, bdir
    keep_going = ["--", "-k"] if gen else []
    jobs = str(max(2, os.cpu_count() or 2))
    res = subprocess.run(["cmake", "--build", str(bdir), "-j", jobs, *keep_going], capture_output=True,
                         text=True, timeout=600)
    return res.returncode, res.stdout + res.stderr, bdir


@pytest.mark.build
def test_cmake_build_succeeds(cmake_build):
    rc, log, _ = cmake_build
    assert rc == 0, f"CMake kernel build failed:\n{log[-6000:]}"


@pytest.mark.build
def test_nvcc_ring_kernels_do_not_spill(cmake_build):
    """ptxas (-Xptxas -warn-spills in CMakeLists.txt) warns about no kernel that cuda.py launches."""
    _, log, _ = cmake_build
    ours = {fn for fns in KERNELS.values() for fn in fns}
    spilled = [ln for ln in log.splitlines() if "spill" in ln.lower() and "warn" in ln.lower()
               and any(f"'{fn}'" in ln for fn in ours)]
    assert not spilled, "\n".join(spilled)


@pytest.mark.build
@pytest.mark.parametrize("name", SOURCES)
def test_nvcc_fatbin_has_sm80_and_sm90(cmake_build, name):
    _, log, bdir = cmake_build
    fat = bdir / f"{name}.fatbin"
    errors = [ln for ln in log.splitlines() if f"{name}.cu" in ln and "error" in ln.lower()]
    assert fat.is_file(), f"{name}.cu did not compile with nvcc:\n" + "\n".join(errors or log.splitlines()[-40:])
    contents = K.fatbin_contents(fat)
    for arch in ARCHS:
        assert ("elf", int(arch[3:])) in contents, f"{name}.fatbin lacks {arch} machine code: {contents}"
    assert any(kind == "ptx" for kind, _ in contents), f"{name}.fatbin carries no PTX for newer GPUs"


@pytest.mark.build
def test_cmake_build_fails_on_compile_error(cmake_build, tmp_path):
    """A kernel with a syntax error must fail the build (checked on a copy of the tree)."""
    _, _, bdir = cmake_build
    src = tmp_path / "src"
    (src / "kernels" / "common").mkdir(parents=True)
    shutil.copy(ROOT / "CMakeLists.txt", src / "CMakeLists.txt")
    for h in (KDIR / "common").glob("*.cuh"):
        shutil.copy(h, src / "kernels" / "common" / h.name)
    (src / "kernels" / "broken.cu").write_text('extern "C" __global__ void f(int* x) { x[0] = undefined_name; }\n')
    b = tmp_path / "b"
    cfg = subprocess.run(["cmake", "-S", str(src), "-B", str(b)], capture_output=True, text=True, timeout=120)
    assert cfg.returncode == 0, cfg.stderr
    res = subprocess.run(["cmake", "--build", str(b)], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "undefined_name" in res.stdout + res.stderr


# --------------------------------------------------------------------------------------
# NVRTC
# --------------------------------------------------------------------------------------
_STATS = re.compile(r"Compiling entry function '(\w+)'.*?(\d+) bytes spill stores, (\d+) bytes spill loads", re.S)


@pytest.fixture(scope="module")
def nvrtc_builds():
    if not _HAVE_NVRTC:
        pytest.skip("NVRTC is not available (pip install nvidia-cuda-nvrtc and cupy)")
    return {}


def _nvrtc(cache, name, arch):
    key = (name, arch)
    if key not in cache:
        from cupy.cuda import nvrtc

        code = K.kernel_source(name)
        prog = nvrtc.createProgram(code, f"{name}.cu", [], [])
        # the options CuPy's RawModule(code=...) adds on top of ours, so this is the same build
        cupy_adds = ["-ftz=true", "--device-as-default-execution-space"]
        opts = [f"--gpu-architecture={arch}", "--ptxas-options=-v", *K.nvrtc_options(), *cupy_adds]
        try:
            try:
                nvrtc.compileProgram(prog, opts)
            except Exception as exc:
                pytest.fail(f"NVRTC failed on {name}.cu for {arch}: {exc}\n{nvrtc.getProgramLog(prog)}")
            cache[key] = (bytes(nvrtc.getCUBIN(prog)), nvrtc.getProgramLog(prog))
        finally:
            nvrtc.destroyProgram(prog)
    return cache[key]


@pytest.mark.parametrize("arch", ["sm_90"])  # nvcc above covers sm_80 too; NVRTC is slow on 2 cores
@pytest.mark.parametrize("name", SOURCES)
def test_nvrtc_compiles(nvrtc_builds, name, arch):
    cubin, log = _nvrtc(nvrtc_builds, name, arch)
    assert cubin[:4] == b"\x7fELF"
    if name in NO_SPILL:
        stats = _STATS.findall(log)
        assert stats, f"no ptxas statistics in the NVRTC log of {name}.cu:\n{log[:2000]}"
        spills = [(fn, st, ld) for fn, st, ld in stats if int(st) or int(ld)]
        assert not spills, f"{name}.cu spills registers on {arch}: {spills}"


def test_nvrtc_compile_helper_reports_errors(tmp_path, monkeypatch):
    if not _HAVE_NVRTC:
        pytest.skip("NVRTC is not available")
    from hecrypt.errors import KernelError

    (tmp_path / "common").mkdir()
    (tmp_path / "bad.cu").write_text('extern "C" __global__ void f(int* x) { x[0] = nope; }\n')
    monkeypatch.setenv(K.KERNEL_DIR_ENV, str(tmp_path))
    with pytest.raises(KernelError, match="nope"):
        K.nvrtc_compile("bad", "sm_80")


@pytest.mark.parametrize("module", sorted(KERNELS))
def test_entry_points_used_by_cuda_backend_exist(nvrtc_builds, module):
    """Every kernel name CUDABackend launches is an unmangled symbol of the compiled module."""
    cubin, _ = _nvrtc(nvrtc_builds, module, "sm_90")
    missing = [fn for fn in KERNELS[module] if fn.encode() + b"\0" not in cubin]
    assert not missing, f"{module}.cu lacks extern \"C\" entry points {missing}"


def test_cuda_backend_only_launches_registered_kernels():
    """Kernel names in cuda.py's launch calls all appear in KERNELS (so the test above covers them)."""
    src = (ROOT / "hecrypt" / "backend" / "cuda.py").read_text()
    registered = {fn for fns in KERNELS.values() for fn in fns}
    literal = set(re.findall(r'_(?:launch|fn)\(\s*"\w+",\s*"(\w+)"', src))
    assert literal <= registered, literal - registered
    prefixes = set(re.findall(r'_(?:launch|fn)\(\s*"\w+",\s*f"(\w+?)_?\{', src))
    for p in prefixes:
        assert any(r.startswith(p) for r in registered), p


# --------------------------------------------------------------------------------------
# kernel locator (no compiler needed)
# --------------------------------------------------------------------------------------
def _copy_tree(dst: Path) -> Path:
    (dst / "common").mkdir(parents=True)
    for p in KDIR.glob("*.cu"):
        shutil.copy(p, dst / p.name)
    for p in (KDIR / "common").glob("*.cuh"):
        shutil.copy(p, dst / "common" / p.name)
    return dst


def test_kernel_source_hashes_included_headers(tmp_path, monkeypatch):
    kd = _copy_tree(tmp_path / "k")
    monkeypatch.setenv(K.KERNEL_DIR_ENV, str(kd))
    before = K.kernel_source("truncate")
    assert before.splitlines()[1] == '#line 1 "truncate.cu"'
    assert before.split("\n", 2)[2] == (kd / "truncate.cu").read_text()
    with open(kd / "common" / "modarith.cuh", "a") as f:
        f.write("\n// edited\n")
    after = K.kernel_source("truncate")
    assert after.splitlines()[0] != before.splitlines()[0]  # CuPy's cache key changes with a header
    with pytest.raises(ValueError):
        K.kernel_source("../etc/passwd")


def test_find_fatbin_order_and_staleness(tmp_path, monkeypatch):
    import time

    fat_dir = tmp_path / "fat"
    fat_dir.mkdir()
    fake = fat_dir / "truncate.fatbin"
    fake.write_bytes(b"\x50\xed\x55\xba" + b"\0" * 12)
    monkeypatch.setenv(K.FATBIN_ENV, str(fat_dir))
    now = time.time()
    os.utime(fake, (now + 10, now + 10))
    assert K.find_fatbin("truncate") == fake
    st = K.prebuilt_status()
    assert st["modules"]["truncate"].startswith(f"fatbin {fake}")
    assert any(str(fat_dir) in s for s in st["searched"])
    os.utime(fake, (0, 0))  # older than its sources and headers: stale in a source checkout
    assert K.find_fatbin("truncate") is None
    assert "stale" in K.prebuilt_status()["modules"]["truncate"]


def test_prebuilt_status_without_sources(tmp_path, monkeypatch):
    monkeypatch.setenv(K.KERNEL_DIR_ENV, str(tmp_path))  # no *.cu there
    st = K.prebuilt_status()
    assert st["source_dir"] is None and st["all_prebuilt"] is False and "error" in st
    from hecrypt.errors import KernelError

    with pytest.raises(KernelError):
        K.kernel_source_dir()


def test_fatbin_contents_rejects_other_files(tmp_path):
    p = tmp_path / "x.fatbin"
    p.write_bytes(b"not a fatbin at all")
    with pytest.raises(ValueError):
        K.fatbin_contents(p)


def test_no_cupy_import_at_module_import():
    import subprocess
    import sys

    code = ("import sys, hecrypt.backend.cuda, hecrypt.backend.kernels; "
            "print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_get_function_prefers_fatbin_and_falls_back_to_nvrtc(tmp_path, monkeypatch):
    """Loader logic with a stand-in for CuPy: fatbin first; a fatbin that fails to load (in the
    constructor or at get_function) is replaced by an NVRTC build of the source."""
    import sys
    import time
    import types

    made = []

    class FakeModule:
        def __init__(self, code=None, path=None, options=(), backend="nvrtc"):
            if path is not None and "bad" in Path(path).read_bytes().decode():
                raise RuntimeError("no kernel image for this device")
            self.kind = "fatbin" if path else "nvrtc"
            self.code, self.options = code, options
            made.append(self)

        def get_function(self, name):
            if self.kind == "fatbin" and name == "missing_in_fatbin":
                raise RuntimeError("named symbol not found")
            return (self.kind, name)

    fake = types.SimpleNamespace(RawModule=FakeModule,
                                 cuda=types.SimpleNamespace(Device=lambda *a: types.SimpleNamespace(id=0)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    fat_dir = tmp_path / "fat"
    fat_dir.mkdir()
    monkeypatch.setenv(K.FATBIN_ENV, str(fat_dir))
    later = time.time() + 10
    (fat_dir / "truncate.fatbin").write_text("good")
    (fat_dir / "chacha20.fatbin").write_text("bad")
    for f in fat_dir.iterdir():
        os.utime(f, (later, later))
    K.clear_cache()
    try:
        assert K.get_function("truncate", "truncate_u64") == ("fatbin", "truncate_u64")
        assert K.get_function("truncate", "missing_in_fatbin") == ("nvrtc", "missing_in_fatbin")
        assert K.get_function("chacha20", "chacha20_blocks") == ("nvrtc", "chacha20_blocks")
        assert K.get_function("limb_matmul", "recombine64k") == ("nvrtc", "recombine64k")
        src = K.loaded_from()
        assert src["0:chacha20"].startswith("nvrtc (fatbin") and src["0:limb_matmul"].startswith("nvrtc")
        nv = [m for m in made if m.kind == "nvrtc"]
        assert all(f"-I{KDIR}" in m.options for m in nv)
        assert all('#include "common/' in m.code for m in nv)
    finally:
        K.clear_cache()
