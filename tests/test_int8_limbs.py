"""Tensor-core ring matmul through int8 limbs (issue 7).

Without a GPU this covers: the limb plan and its exactness limits (shown tight with
worst-case operands), the CPU emulation of the algorithm against the CPU backend and Python
integers, the CUDA source (nvcc for sm_80 / sm_90, NVRTC, and its element math compiled for
the host with g++ and checked bit for bit), and the GPU module's orchestration (layouts,
pointers, leading dimensions, chunking, batching) run against emulated kernels and an
emulated cuBLAS over host memory.  The ``gpu`` tests run the real thing on a GPU.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from hecrypt.backend import cuda_int8 as ci8
from hecrypt.backend.cpu import CPUBackend
from hecrypt.backend.int8_limbs import (
    INT32_MAX,
    MODES,
    ExactnessViolation,
    choose_mode,
    chunk_bounds,
    combine_limbs,
    int8_matmul_emulated,
    int8_plan,
    split_limbs,
    wrap_int32,
)

ROOT = Path(__file__).resolve().parents[1]
CU = ROOT / "kernels" / "int8_limbs.cu"
RINGS = [(64, np.uint64), (32, np.uint32)]


def rand(rng, bits, dt, shape):
    return rng.integers(0, (1 << bits) - 1, size=shape, dtype=dt, endpoint=True)


def ref_matmul(a, b, bits):
    """Python-integer reference (object arrays), exact modulo 2^bits."""
    r = np.matmul(a.astype(object), b.astype(object)) % (1 << bits)
    return r.astype(a.dtype)


def worst(bits, shape):
    """Operand whose limbs are all -128 (largest positive limb products)."""
    dt = np.uint64 if bits == 64 else np.uint32
    v = (1 << bits) - int("80" * (bits // 8), 16)
    return np.full(shape, v, dt)


# --------------------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [64, 32])
def test_plan_limits_derivation(bits):
    plan = int8_plan(bits)
    L = bits // 8
    assert plan.nlimbs == L and len(plan.diagonals) == L
    assert plan.products == L * (L + 1) // 2 == (36 if bits == 64 else 10)
    for dg in plan.diagonals:
        p = dg.d + 1
        assert dg.pairs == p and dg.weight_bits == 8 * dg.d and dg.needed_bits == bits - 8 * dg.d
        # tight: the worst sums (+16384 per product) fit at k_exact and not one past it
        assert p * dg.k_exact * 16384 <= INT32_MAX < p * (dg.k_exact + 1) * 16384
        assert p * dg.k_exact * 16256 <= 1 << 31
        assert dg.wrap_safe == (bits - 8 * dg.d <= 32)
    if bits == 64:
        assert plan.wrap_safe_diagonals == (4, 5, 6, 7)
        assert plan.k_chunk(True) == 32767 and plan.k_chunk(False) == 16383
        assert [dg.k_exact for dg in plan.diagonals] == [131071, 65535, 43690, 32767, 26214, 21845, 18724, 16383]
    else:
        assert plan.wrap_safe_diagonals == (0, 1, 2, 3)
        assert plan.k_chunk(True) is None and plan.k_chunk(False) == 32767
    assert "K chunk" in plan.describe() and plan.as_dict()["products"] == plan.products
    assert ci8.int8_plan(bits) is plan


def test_plan_rejects_other_rings():
    with pytest.raises(ValueError):
        int8_plan(16)


def test_chunk_bounds():
    assert chunk_bounds(0, 5) == []
    assert chunk_bounds(10, None) == [(0, 10)]
    assert chunk_bounds(10, 10) == [(0, 10)]
    for K, lim, al in [(11, 10, 1), (100, 7, 1), (32768, 32767, 16), (45, 16, 16), (1000, 33, 16)]:
        ch = chunk_bounds(K, lim, al)
        assert ch[0][0] == 0 and ch[-1][1] == K
        assert all(b0 == a1 for (_, a1), (b0, _) in zip(ch, ch[1:]))
        assert all(0 < k1 - k0 <= lim for k0, k1 in ch)


def test_choose_mode():
    assert choose_mode(8192, 8192, 8192) == "diagonal"
    assert choose_mode(1024, 1024, 1024, 32) == "diagonal"
    assert choose_mode(65536, 10, 1024) == "toeplitz_b"
    assert choose_mode(10, 65536, 1024) == "toeplitz_a"


# --------------------------------------------------------------------------------------
# limbs
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits,dt", RINGS)
def test_split_limbs_roundtrip(rng, bits, dt):
    edge = np.array([0, 1, (1 << bits) - 1, 1 << (bits - 1), (1 << (bits - 1)) - 1, 0x80, 0x7F, 0xFF,
                     int(worst(bits, ()))], dt)
    a = np.concatenate([edge, rand(rng, bits, dt, 4000)])
    limbs = split_limbs(a, bits)
    assert limbs.dtype == np.int8 and limbs.shape == (bits // 8,) + a.shape
    assert np.array_equal(combine_limbs(limbs, bits), a)
    assert np.all(limbs[:, -4001] == -128)  # the worst-case operand
    assert np.all(limbs[:, 0] == 0)  # zero has zero limbs (zero padding stays zero)
    # Python-int check of the balanced representation
    for v, col in zip(a[:50].tolist(), limbs[:, :50].T.tolist()):
        assert sum(int(x) << (8 * i) for i, x in enumerate(col)) % (1 << bits) == v


def test_split_limbs_type_errors():
    with pytest.raises(TypeError):
        split_limbs(np.zeros(3, np.int64), 64)
    with pytest.raises(TypeError):
        int8_matmul_emulated(np.zeros((2, 2), np.uint64), np.zeros((2, 2), np.uint32))
    with pytest.raises(ValueError):
        int8_matmul_emulated(np.zeros((2, 3), np.uint64), np.zeros((2, 2), np.uint64))
    with pytest.raises(ValueError):
        int8_matmul_emulated(np.zeros((2, 2), np.uint64), np.zeros((2, 2), np.uint64), mode="bogus")


def test_wrap_int32():
    v = np.array([0, INT32_MAX, INT32_MAX + 1, -(1 << 31), -(1 << 31) - 1, (1 << 40) + 5, -(1 << 33) - 7])
    w = wrap_int32(v)
    assert w.dtype == np.int32
    assert w.tolist() == [((x + (1 << 31)) % (1 << 32)) - (1 << 31) for x in v.tolist()]


# --------------------------------------------------------------------------------------
# emulated algorithm vs references
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits,dt", RINGS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wrap_ok", [True, False])
def test_emulated_matches_references(rng, bits, dt, mode, wrap_ok):
    a = rand(rng, bits, dt, (2, 1, 5, 37))
    b = rand(rng, bits, dt, (3, 37, 6))
    ref = CPUBackend.matmul(a, b, 0, bits)
    assert np.array_equal(ref, ref_matmul(a, b, bits))
    got = int8_matmul_emulated(a, b, mode=mode, wrap_ok=wrap_ok)
    assert got.dtype == dt and got.shape == (2, 3, 5, 6)
    assert np.array_equal(got, ref)
    # K chunked (K not a multiple of the chunk)
    assert np.array_equal(int8_matmul_emulated(a, b, mode=mode, wrap_ok=wrap_ok, k_chunk=8), ref)


@pytest.mark.parametrize("bits,dt", RINGS)
def test_emulated_odd_shapes_and_2d(rng, bits, dt):
    for M, K, N in [(1, 1, 1), (3, 17, 1), (1, 33, 7), (9, 64, 5), (4, 0, 3)]:
        a = rand(rng, bits, dt, (M, K))
        b = rand(rng, bits, dt, (K, N))
        ref = ref_matmul(a, b, bits) if K else np.zeros((M, N), dt)
        for mode in MODES:
            assert np.array_equal(int8_matmul_emulated(a, b, mode=mode), ref)


@pytest.mark.parametrize("mode", MODES)
def test_z64_k_above_exact_limit(rng, mode):
    """Z_2^64 at K past 32767 (the exact-diagonal limit): chunked, worst case and random."""
    K = 32767 + 40
    a = worst(64, (2, K))
    a[1] = rand(rng, 64, np.uint64, K)
    b = worst(64, (K, 2))
    b[:, 1] = rand(rng, 64, np.uint64, K)
    ref = ref_matmul(a, b, 64)
    assert np.array_equal(int8_matmul_emulated(a, b, mode=mode), ref)
    assert np.array_equal(int8_matmul_emulated(a, b, mode=mode, wrap_ok=False), ref)
    # without chunking diagonal 3 (which must stay exact) overflows int32: the limit is real
    with pytest.raises(ExactnessViolation):
        int8_matmul_emulated(a, b, mode=mode, k_chunk=0)


def test_z64_limits_tight_per_mode():
    """At exactly K = 32767 no exact diagonal overflows; at 16384 a wrap-safe one does."""
    a = worst(64, (1, 32767))
    b = worst(64, (32767, 1))
    ref = ref_matmul(a, b, 64)
    # one chunk, strict: only wrap-safe diagonals (d >= 4) overflow, which is allowed
    assert np.array_equal(int8_matmul_emulated(a, b, k_chunk=0), ref)
    # if the hardware saturated instead of wrapping, d = 7 would already break at 16384
    a2, b2 = worst(64, (1, 16384)), worst(64, (16384, 1))
    with pytest.raises(ExactnessViolation):
        int8_matmul_emulated(a2, b2, wrap_ok=False, k_chunk=0)
    assert np.array_equal(int8_matmul_emulated(a2, b2, wrap_ok=False), ref_matmul(a2, b2, 64))
    a3, b3 = worst(64, (1, 16383)), worst(64, (16383, 1))
    assert np.array_equal(int8_matmul_emulated(a3, b3, wrap_ok=False, k_chunk=0), ref_matmul(a3, b3, 64))


@pytest.mark.parametrize("bits,d", [(64, d) for d in range(8)] + [(32, d) for d in range(4)])
def test_k_just_past_each_diagonal_limit(rng, bits, d):
    """K = k_exact(d) + 1 for every diagonal: exact with the default chunking (wrapping or
    not); without chunking, an overflow is flagged exactly when a diagonal that must stay
    exact has passed its limit."""
    plan = int8_plan(bits)
    dt = np.uint64 if bits == 64 else np.uint32
    K = plan.diagonals[d].k_exact + 1
    a = worst(bits, (2, K))
    a[1] = rand(rng, bits, dt, K)
    b = worst(bits, (K, 2))
    b[:, 1] = rand(rng, bits, dt, K)
    ref = ref_matmul(a, b, bits)
    assert np.array_equal(int8_matmul_emulated(a, b), ref)
    assert np.array_equal(int8_matmul_emulated(a, b, wrap_ok=False), ref)
    with pytest.raises(ExactnessViolation):  # diagonal d itself overflows
        int8_matmul_emulated(a, b, wrap_ok=False, k_chunk=0)
    must_stay_exact_broken = any(K > dg.k_exact for dg in plan.diagonals if not dg.wrap_safe)
    if must_stay_exact_broken:
        with pytest.raises(ExactnessViolation):
            int8_matmul_emulated(a, b, k_chunk=0)
    else:  # only wrap-safe diagonals overflowed: harmless
        assert np.array_equal(int8_matmul_emulated(a, b, k_chunk=0), ref)


def test_z32_needs_no_chunking_when_wrapping(rng):
    """Z_2^32: every diagonal is wrap-safe, so K = 40000 runs in one chunk."""
    K = 40000
    a = worst(32, (2, K))
    a[1] = rand(rng, 32, np.uint32, K)
    b = worst(32, (K, 3))
    b[:, 2] = rand(rng, 32, np.uint32, K)
    ref = ref_matmul(a, b, 32)
    for mode in MODES:
        assert np.array_equal(int8_matmul_emulated(a, b, mode=mode), ref)
    assert np.array_equal(int8_matmul_emulated(a, b, wrap_ok=False), ref)
    with pytest.raises(ExactnessViolation):
        int8_matmul_emulated(a, b, wrap_ok=False, k_chunk=0)


# --------------------------------------------------------------------------------------
# CUDA source: compiles, and its element math matches the emulation bit for bit
# --------------------------------------------------------------------------------------
def test_kernel_entries_present():
    src = CU.read_text()
    for name in ci8.KERNEL_ENTRIES:
        assert f" {name}(" in src or f"({name}," in src, name
    assert ci8.kernel_source() == src


@pytest.mark.build
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles(tmp_path, arch):
    r = subprocess.run(["nvcc", f"-arch={arch}", "-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "k.cubin"),
                        str(CU)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "spill stores" in r.stderr
    # no register spills in any kernel
    for line in r.stderr.splitlines():
        if "spill" in line:
            assert "0 bytes spill stores, 0 bytes spill loads" in line, line


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
        return nvrtc
    except Exception:
        return None


@pytest.mark.build
@pytest.mark.skipif(_nvrtc() is None, reason="NVRTC not available")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvrtc_compiles(arch):
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(CU.read_text(), "int8_limbs.cu", [], [])
    try:
        nvrtc.compileProgram(prog, [f"--gpu-architecture={arch}", "--std=c++17"])
    except Exception as exc:  # pragma: no cover - shows the log
        pytest.fail(f"NVRTC: {exc}\n{nvrtc.getProgramLog(prog)}")
    assert len(nvrtc.getCUBIN(prog)) > 1000


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    so = tmp_path_factory.mktemp("i8l") / "i8l_host.so"
    r = subprocess.run([cxx, "-std=c++17", "-O2", "-DI8L_HOST_TEST", "-shared", "-fPIC", "-x", "c++", str(CU),
                        "-o", str(so)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return ctypes.CDLL(str(so))


def _p(x):
    return x.ctypes.data_as(ctypes.c_void_p)


@pytest.mark.parametrize("bits,dt", RINGS)
def test_device_split_and_recombine_math(host_lib, rng, bits, dt):
    L = bits // 8
    n = 4096
    a = rand(rng, bits, dt, n)
    a[:4] = [0, (1 << bits) - 1, 1 << (bits - 1), int(worst(bits, ()))]
    out = np.empty((n, L), np.int8)
    getattr(host_lib, f"i8l_host_split_u{bits}")(_p(a), ctypes.c_longlong(n), _p(out))
    assert np.array_equal(out.T, split_limbs(a, bits))
    # recombine: random int32 diagonal sums, including extremes
    s = rng.integers(-(1 << 31), (1 << 31) - 1, size=(L, n), dtype=np.int32, endpoint=True)
    s[:, 0] = INT32_MAX
    s[:, 1] = -(1 << 31)
    res = np.empty(n, dt)
    getattr(host_lib, f"i8l_host_recombine_u{bits}")(_p(s), ctypes.c_longlong(n), _p(res))
    exp = [sum(int(s[d, e]) << (8 * d) for d in range(L)) % (1 << bits) for e in range(n)]
    assert res.tolist() == exp


@pytest.mark.parametrize("kind", ["blocks16", "limb6"])
def test_device_f64_limb_math(host_lib, rng, kind):
    L, w, bal, kmax = ci8._f64_plan(64, kind)
    n = 2000
    a = rand(rng, 64, np.uint64, n)
    a[:3] = [0, (1 << 64) - 1, 1 << 63]
    out = np.empty((n, L), np.float64)
    host_lib.i8l_host_f64_limbs_u64(_p(a), ctypes.c_longlong(n), L, w, bal, _p(out))
    vals = [sum(int(x) << (w * i) for i, x in enumerate(row)) for row in out.tolist()]
    assert [v % (1 << 64) for v in vals] == a.tolist()
    if bal:
        assert np.abs(out[:, :-1]).max() <= 1 << (w - 1)
    else:
        assert out.min() >= 0 and out.max() < 1 << w
    assert kmax >= (1024 if kind == "limb6" else 1 << 19)


# --------------------------------------------------------------------------------------
# GPU orchestration on emulated kernels and cuBLAS (host memory, real addresses)
# --------------------------------------------------------------------------------------
def _view(addr, dtype, shape, strides):
    dtype = np.dtype(dtype)
    if 0 in shape:
        return np.zeros(shape, dtype)
    span = sum((n - 1) * s for n, s in zip(shape, strides)) + 1
    buf = (ctypes.c_char * (span * dtype.itemsize)).from_address(int(addr))
    return np.ndarray(shape, dtype, buffer=buf, strides=[s * dtype.itemsize for s in strides])


def _f64_limbs(vals, bits, L, w, bal):
    out = np.empty((L,) + vals.shape, np.float64)
    if not bal:
        u = vals.astype(np.uint64)
        for i in range(L):
            out[i] = ((u >> np.uint64(w * i)) & np.uint64((1 << w) - 1)).astype(np.float64)
        return out
    v = vals.astype(np.uint64).view(np.int64) if bits == 64 else vals.view(np.int32).astype(np.int64)
    half, mask = 1 << (w - 1), (1 << w) - 1
    for i in range(L - 1):
        li = ((v + half) & mask) - half
        out[i] = li
        v = (v - li) >> w
    out[L - 1] = v
    return out


class _EmuKernel:
    def __init__(self, name):
        self.name = name

    def __call__(self, grid, block, args):
        assert block == (256,)
        n = self.name
        if "split" in n:
            self._split(grid, args)
        else:
            self._recombine(grid, args)

    def _split(self, grid, args):
        n = self.name
        f64 = "f64" in n
        bits = 64 if "u64" in n else 32
        T = np.uint64 if bits == 64 else np.uint32
        src, sb, s_r, s_k, R, Kc, Rp, Kp, out, ld, ob, mode = args[:12]
        assert isinstance(src, np.uint64) and out.ndim == 3
        B = grid[2]
        assert out.shape[0] == B and out.shape[2] == ld and ob == out.shape[1] * ld
        assert grid[0] * 64 >= Kp and grid[1] * 32 >= Rp
        assert (s_k == 1) == n.endswith("_kc")
        vals = np.zeros((B, int(Rp), int(Kp)), T)
        vals[:, :R, :Kc] = _view(src, T, (B, int(R), int(Kc)), (int(sb), int(s_r), int(s_k)))
        if f64:
            L, w, bal = (int(x) for x in args[12:15])
            limbs = _f64_limbs(vals, bits, L, w, bal)
        else:
            assert Kp % 16 == 0 and ld % 16 == 0
            limbs = split_limbs(vals, bits)
            L = bits // 8
        for i in range(L):
            if mode == 0:
                out[:, :Rp, i * Kp:(i + 1) * Kp] = limbs[i]
            elif mode == 1:
                out[:, :Rp, (L - 1 - i) * Kp:(L - i) * Kp] = limbs[i]
        if mode == 2:
            assert not f64
            for d in range(L):
                for j in range(L):
                    out[:, d * Rp:(d + 1) * Rp, j * Kp:(j + 1) * Kp] = limbs[d - j] if j <= d else 0

    def _recombine(self, grid, args):
        f64 = "f64" in self.name
        C, ds, bs, rs, out, M, N, B = args[:8]
        M, N, B = int(M), int(N), int(B)
        L = int(args[8]) if f64 else (8 if out.dtype == np.uint64 else 4)
        width = int(args[9]) if f64 else 8
        acc_flag = int(args[-1])
        flat = C.reshape(-1)
        b, m, nn = np.meshgrid(np.arange(B), np.arange(M), np.arange(N), indexing="ij")
        base = b * int(bs) + m * int(rs) + nn
        acc = np.zeros((B, M, N), np.uint64)
        for d in range(L):
            if width * d < 64:
                acc += flat[base + d * int(ds)].astype(np.int64).astype(np.uint64) << np.uint64(width * d)
        o = out.reshape(B, M, N)
        o[...] = (o.astype(np.uint64) + acc).astype(out.dtype) if acc_flag else acc.astype(out.dtype)


def _emu_gemm(m, n, k, A, lda, B, ldb, C, ldc, *, dtype, batch=1, sA=0, sB=0, sC=0):
    assert lda >= k and ldb >= k and ldc >= m
    if dtype == "i8":
        assert k % 16 == 0 and lda % 16 == 0 and ldb % 16 == 0 and ldc % 4 == 0
        it, ot = np.int8, np.int32
    else:
        it, ot = np.float64, np.float64
    Ar = _view(A, it, (batch, m, k), (sA, lda, 1)).astype(np.float64)
    Br = _view(B, it, (batch, n, k), (sB, ldb, 1)).astype(np.float64)
    Cr = _view(C, ot, (batch, n, m), (sC, ldc, 1))
    prod = np.matmul(Br, Ar.transpose(0, 2, 1))
    Cr[...] = wrap_int32(prod.astype(np.int64)) if dtype == "i8" else prod


def _fake_cupy():
    def empty(shape, dtype):
        return np.full(shape, 77, dtype)  # garbage: kernels must write what they use

    return types.SimpleNamespace(
        ndarray=np.ndarray, int8=np.int8, int32=np.int32, float64=np.float64, uint64=np.uint64,
        uint32=np.uint32, empty=empty, zeros=np.zeros, full=np.full, asarray=np.asarray, asnumpy=np.asarray,
        ascontiguousarray=np.ascontiguousarray, broadcast_to=np.broadcast_to,
        cuda=types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=-1)))


@pytest.fixture
def emulated_gpu(monkeypatch):
    monkeypatch.setattr(ci8, "_cupy", _fake_cupy)
    monkeypatch.setattr(ci8, "_addr", lambda x: x.ctypes.data)
    monkeypatch.setattr(ci8, "_kernel", _EmuKernel)
    monkeypatch.setattr(ci8, "_gemm_tn", _emu_gemm)
    monkeypatch.setattr(ci8, "_wrap_state", {})
    return ci8


@pytest.mark.parametrize("bits,dt", RINGS)
@pytest.mark.parametrize("mode", ["auto"] + list(MODES))
def test_orchestration_emulated(emulated_gpu, rng, bits, dt, mode):
    a = rand(rng, bits, dt, (2, 1, 7, 45))
    b = rand(rng, bits, dt, (3, 45, 5))
    ref = CPUBackend.matmul(a, b, 0, bits)
    got = ci8.int8_matmul(a, b, bits, mode=mode)
    assert got.dtype == dt and np.array_equal(got, ref)
    assert np.array_equal(ci8.int8_matmul(a, b, mode=mode, k_chunk=16), ref)
    # strided operands: a transposed view (K-strided rows), b transposed (K-contiguous)
    at = np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
    bt = np.ascontiguousarray(np.swapaxes(b, -1, -2)).swapaxes(-1, -2)
    assert np.array_equal(ci8.int8_matmul(at, bt, bits, mode=mode), ref)
    # 2-D, and batched a with a 2-D b (folded into one GEMM)
    a2, b2 = a[0, 0], b[0]
    assert np.array_equal(ci8.int8_matmul(a2, b2, mode=mode), ref_matmul(a2, b2, bits))
    a3 = rand(rng, bits, dt, (4, 3, 45))
    assert np.array_equal(ci8.int8_matmul(a3, b2, mode=mode), CPUBackend.matmul(a3, b2, 0, bits))


def test_orchestration_large_k_and_wrap_probe(emulated_gpu, rng):
    assert ci8.wrap_probe() is True
    K = 32767 + 21
    a = worst(64, (2, K))
    a[1] = rand(rng, 64, np.uint64, K)
    b = worst(64, (K, 3))
    b[:, 1] = rand(rng, 64, np.uint64, K)
    assert np.array_equal(ci8.int8_matmul(a, b), ref_matmul(a, b, 64))


def test_orchestration_errors(emulated_gpu):
    with pytest.raises(TypeError):
        ci8.int8_matmul(np.zeros((2, 2), np.uint64), np.zeros((2, 2), np.uint32))
    with pytest.raises(TypeError):
        ci8.int8_matmul(np.zeros((2, 2), np.uint64), np.zeros((2, 2), np.uint64), 32)
    with pytest.raises(ValueError):
        ci8.int8_matmul(np.zeros((2, 3), np.uint64), np.zeros((2, 2), np.uint64))
    with pytest.raises(ValueError):
        ci8.int8_matmul(np.zeros((2, 2), np.uint64), np.zeros((2, 2), np.uint64), mode="nope")
    z = ci8.int8_matmul(np.zeros((3, 0), np.uint64), np.zeros((0, 2), np.uint64))
    assert z.shape == (3, 2) and not z.any()


@pytest.mark.parametrize("bits,dt", RINGS)
def test_f64_baselines_emulated(emulated_gpu, rng, bits, dt):
    a = rand(rng, bits, dt, (2, 6, 50))
    b = rand(rng, bits, dt, (50, 4))
    ref = CPUBackend.matmul(a, b, 0, bits)
    assert np.array_equal(ci8.f64_blocks16_matmul(a, b), ref)
    assert np.array_equal(ci8.f64_limb6_matmul(a, b), ref)


def test_selfcheck_emulated(emulated_gpu):
    assert ci8.int8_selfcheck(None) is True


class _SimtBackend:
    """Stand-in CUDA backend whose SIMT path is the CPU matmul, optionally off by one."""

    def __init__(self, off_by_one=False):
        self.off = off_by_one
        self.calls = 0

    @staticmethod
    def to_numpy(x):
        return np.asarray(x)

    def matmul_path(self, a, b, q, bits, path="simt"):
        assert path == "simt"
        self.calls += 1
        r = CPUBackend.matmul(a, b, q, bits)
        if self.off:
            r = r.copy()
            r.flat[0] += r.dtype.type(1)
        return r


def test_selfcheck_against_simt(emulated_gpu):
    be = _SimtBackend()
    assert ci8.int8_selfcheck(be) is True and be.calls == 2
    with pytest.warns(RuntimeWarning, match="SIMT kernel disagrees"):
        assert ci8.int8_selfcheck(_SimtBackend(off_by_one=True)) is False


def test_selfcheck_reports_mismatch(emulated_gpu, monkeypatch):
    def broken(m, n, k, A, lda, B, ldb, C, ldc, **kw):
        _emu_gemm(m, n, k, A, lda, B, ldb, C, ldc, **kw)
        Cr = _view(C, np.int32, (1, 1, 1), (0, 0, 1))
        Cr[...] += 1  # one wrong accumulator

    monkeypatch.setattr(ci8, "_gemm_tn", broken)
    with pytest.warns(RuntimeWarning, match="self-check failed"):
        assert ci8.int8_selfcheck(None) is False


def test_import_touches_no_gpu():
    code = ("import sys, hecrypt.backend.cuda_int8, hecrypt.backend.int8_limbs;"
            "assert 'cupy' not in sys.modules, 'cupy imported'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


# --------------------------------------------------------------------------------------
# on a GPU
# --------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_gpu_selfcheck_and_wrap():
    from hecrypt.backend import get_backend

    assert ci8.int8_selfcheck(get_backend("cuda")) is True
    assert isinstance(ci8.wrap_probe(), bool)


@pytest.mark.gpu
@pytest.mark.parametrize("bits,dt", RINGS)
@pytest.mark.parametrize("mode", ["auto"] + list(MODES))
def test_gpu_int8_matmul(rng, bits, dt, mode):
    import cupy

    for ashape, bshape in [((37, 45), (45, 29)), ((2, 1, 33, 1025), (3, 1025, 17)), ((5, 129, 64), (64, 7)),
                           ((1, 4097), (4097, 3))]:
        a = rand(rng, bits, dt, ashape)
        b = rand(rng, bits, dt, bshape)
        got = cupy.asnumpy(ci8.int8_matmul(cupy.asarray(a), cupy.asarray(b), bits, mode=mode))
        assert np.array_equal(got, CPUBackend.matmul(a, b, 0, bits))


@pytest.mark.gpu
@pytest.mark.parametrize("bits,dt", RINGS)
def test_gpu_int8_matmul_strided_operands(rng, bits, dt):
    """Transposed and sliced views (the row-contiguous split kernels, non-unit strides)."""
    import cupy

    a = rand(rng, bits, dt, (45, 74))
    b = rand(rng, bits, dt, (58, 45))
    ga, gb = cupy.asarray(a), cupy.asarray(b)
    want = CPUBackend.matmul(np.ascontiguousarray(a.T[::2]), np.ascontiguousarray(b.T), 0, bits)
    for mode in ["auto"] + list(MODES):
        got = cupy.asnumpy(ci8.int8_matmul(ga.T[::2], gb.T, bits, mode=mode))
        assert np.array_equal(got, want), mode


@pytest.mark.gpu
@pytest.mark.parametrize("bits", [64, 32])
def test_gpu_k_past_limits(rng, bits):
    import cupy

    dt = np.uint64 if bits == 64 else np.uint32
    K = 40000  # past 32767 (Z_2^64 exact diagonals) and 32767 (Z_2^32 without wrap)
    a = worst(bits, (3, K))
    a[1] = rand(rng, bits, dt, K)
    b = worst(bits, (K, 4))
    b[:, 2] = rand(rng, bits, dt, K)
    ref = ref_matmul(a, b, bits)
    for mode in MODES:
        got = cupy.asnumpy(ci8.int8_matmul(cupy.asarray(a), cupy.asarray(b), bits, mode=mode))
        assert np.array_equal(got, ref)


@pytest.mark.gpu
@pytest.mark.parametrize("bits,dt", RINGS)
def test_gpu_f64_baselines(rng, bits, dt):
    import cupy

    a = rand(rng, bits, dt, (2, 65, 1500))
    b = rand(rng, bits, dt, (1500, 33))
    ref = CPUBackend.matmul(a, b, 0, bits)
    for fn in (ci8.f64_blocks16_matmul, ci8.f64_limb6_matmul):
        assert np.array_equal(cupy.asnumpy(fn(cupy.asarray(a), cupy.asarray(b))), ref)


# --------------------------------------------------------------------------------------
# the ring-tc benchmark suite
# --------------------------------------------------------------------------------------
def test_bench_suite_skips_on_cpu():
    from hecrypt.benchmarks import Bench, tensorcore

    msgs = []
    b = Bench(device="cpu", quick=True, suite=tensorcore.SUITE, log=msgs.append)
    tensorcore.run(b)
    assert tensorcore.SUITE == "ring-tc" and not b.rows and "GPU-only" in msgs[0]


def test_bench_suite_rows_emulated(emulated_gpu, rng):
    """The suite's code paths on the emulated GPU with a stand-in CUDA backend (tiny shapes)."""
    from hecrypt.benchmarks import Bench, tensorcore

    class FakePath:
        def __init__(self, name):
            self.name = name

    class FakeBackend:
        xp = np
        _matmul_paths = [FakePath("limb-f64"), FakePath("simt")]

        @staticmethod
        def asarray(x):
            return np.asarray(x)

        @staticmethod
        def matmul_path(a, b, q, bits, path="simt"):
            return CPUBackend.matmul(a, b, q, bits)

        @staticmethod
        def select_matmul_path(q, bits, M, N, K, batch=1):
            return "int8-tc"

    bench = Bench(device="cpu", quick=True, suite="ring-tc")
    rate = tensorcore.bench_int8_gemm(bench, FakeBackend, ci8, rng, n=64)
    assert rate and bench.rows[0]["int8_tmacs"] > 0
    for bits in (64, 32):
        tensorcore.bench_ring_matmul(bench, FakeBackend, ci8, rng, bits, (16, 40, 8), rate)
    rows = bench.rows[1:]
    assert len(rows) == 7
    assert all(r["exact"] for r in rows)
    assert [r["baseline"] for r in rows if r["bits"] == 64] == [
        "SIMT kernel", "f64 limbs, Karatsuba 5 GEMMs (limb-f64)", "f64 6-product limbs",
        "f64 16-bit blocks, 10 products (CrypTen)"]
    assert [r["baseline"] for r in rows if r["bits"] == 32] == [
        "SIMT kernel", "f64 limbs, 3 products (limb-f64)", "f64 16-bit blocks, 10 products (CrypTen)"]
    assert all(r["frac_of_ideal"] > 0 and r["dispatch"] == "int8-tc" for r in rows)
