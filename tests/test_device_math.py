"""The GPU kernels' arithmetic, verified on the CPU.

Every kernel in ``kernels/*.cu`` is a thin loop around ``__host__ __device__`` helpers in
``kernels/common/*.cuh`` (128-bit products, Barrett reduction, 128/192-bit reductions, ring
functors, truncation, balanced-limb split and recombination, the 192-bit matmul accumulator,
the ChaCha20 block).  Here those headers are compiled into a small host shared library (with
g++ and with nvcc when present) and called through ctypes on fresh random inputs; results
are compared bit for bit with Python integers, CPUBackend's Numba kernels, the
``cryptography`` package's ChaCha20 and the RFC 8439 test vector.  On the host ``__umul64hi``
is replaced by the equivalent ``unsigned __int128`` product; everything above it is the same
source the GPU runs.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hecrypt.backend import cpu
from hecrypt.backend.cpu import CPUBackend, limb_plan
from hecrypt.backend.modarith import barrett, two64_mod

KDIR = Path(__file__).resolve().parents[1] / "kernels"

WRAPPER = r"""
#include "common/ring.cuh"
#include "common/chacha20.cuh"
typedef hc_u64 u64;
typedef long long i64;
#define EXPORT extern "C"

EXPORT void t_mul128(const u64* a, const u64* b, u64* lo, u64* hi, i64 n) {
    for (i64 i = 0; i < n; ++i) lo[i] = hc_mul128(a[i], b[i], &hi[i]);
}
EXPORT void t_barrett(const u64* hi, const u64* lo, u64* out, i64 n, u64 q, u64 mu, u64 k) {
    for (i64 i = 0; i < n; ++i) out[i] = hc_barrett_reduce(hi[i], lo[i], q, mu, k);
}
EXPORT void t_zq_ops(const u64* a, const u64* b, u64* add, u64* sub, u64* neg, u64* mul, i64 n,
                     u64 q, u64 mu, u64 k) {
    RingZq r; r.q = q; r.mu = mu; r.k = k;
    for (i64 i = 0; i < n; ++i) {
        add[i] = r.add(a[i], b[i]); sub[i] = r.sub(a[i], b[i]);
        neg[i] = r.neg(a[i]); mul[i] = r.mul(a[i], b[i]);
    }
}
EXPORT void t_reduce_u128(const u64* lo, const u64* hi, u64* out, i64 n, u64 q, u64 mu, u64 k, u64 r64) {
    for (i64 i = 0; i < n; ++i) out[i] = hc_reduce_u128(lo[i], hi[i], q, mu, k, r64);
}
EXPORT void t_reduce_u192(const u64* lo, const u64* hi, const u64* top, u64* out, i64 n, u64 q, u64 mu,
                          u64 k, u64 r64, u64 r128) {
    for (i64 i = 0; i < n; ++i) out[i] = hc_reduce_u192(lo[i], hi[i], top[i], q, mu, k, r64, r128);
}
EXPORT void t_i64_mod(const i64* v, u64* out, i64 n, u64 q) {
    for (i64 i = 0; i < n; ++i) out[i] = hc_i64_mod(v[i], q);
}
/* dot products with the 192-bit lazy accumulator (the Z_q SIMT matmul inner loop) */
EXPORT void t_dot_zq(const u64* a, const u64* b, i64 rows, i64 K, u64* out, u64* raw, u64 q, u64 mu,
                     u64 k, u64 r64, u64 r128) {
    for (i64 r = 0; r < rows; ++r) {
        HcAcc192 s; hc_acc192_zero(s);
        for (i64 j = 0; j < K; ++j) hc_acc192_fma(s, a[r * K + j], b[r * K + j]);
        raw[3 * r] = s.lo; raw[3 * r + 1] = s.hi; raw[3 * r + 2] = s.top;
        out[r] = hc_acc192_finish(s, q, mu, k, r64, r128);
    }
}
/* one accumulator step from an arbitrary state (carry chains) */
EXPORT void t_acc192_step(u64* state, const u64* a, const u64* b, i64 n) {
    for (i64 i = 0; i < n; ++i) {
        HcAcc192 s; s.lo = state[3 * i]; s.hi = state[3 * i + 1]; s.top = state[3 * i + 2];
        hc_acc192_fma(s, a[i], b[i]);
        state[3 * i] = s.lo; state[3 * i + 1] = s.hi; state[3 * i + 2] = s.top;
    }
}
EXPORT void t_trunc_u64(const u64* a, u64* out, i64 n, unsigned f) {
    for (i64 i = 0; i < n; ++i) out[i] = hc_trunc_u64(a[i], f);
}
EXPORT void t_trunc_u32(const hc_u32* a, hc_u32* out, i64 n, unsigned f) {
    for (i64 i = 0; i < n; ++i) out[i] = hc_trunc_u32(a[i], f);
}
EXPORT void t_trunc_zq(const u64* a, u64* out, i64 n, unsigned f, u64 q) {
    for (i64 i = 0; i < n; ++i) out[i] = hc_trunc_zq(a[i], f, q);
}
/* split one row of n elements into the (L*n) layout of CPUBackend._split_rows */
template <int L, int W>
static void split_row(const hc_i64* v, double* out, i64 n) {
    for (i64 i = 0; i < n; ++i) {
        double limbs[L];
        hc_split_limbs<L, W>(v[i], limbs);
        for (int j = 0; j < L; ++j) out[j * n + i] = limbs[j];
    }
}
EXPORT void t_split(int ring, const void* in, double* out, i64 n, u64 q, int L) {
    hc_i64* v = new hc_i64[n > 0 ? n : 1];
    for (i64 i = 0; i < n; ++i) {
        if (ring == 0) v[i] = hc_signed_u64(((const u64*)in)[i]);
        else if (ring == 1) v[i] = hc_signed_u32(((const hc_u32*)in)[i]);
        else v[i] = hc_signed_zq(((const u64*)in)[i], q);
    }
    if (ring == 0) split_row<3, 22>(v, out, n);
    else if (ring == 1) split_row<2, 16>(v, out, n);
    else if (L == 1) split_row<1, 22>(v, out, n);
    else if (L == 2) split_row<2, 22>(v, out, n);
    else split_row<3, 22>(v, out, n);
    delete[] v;
}
EXPORT void t_recombine_pow2(const double* diags, int D, int W, u64* acc, i64 n) {
    for (i64 i = 0; i < n; ++i) {
        u64 s = acc[i];
        for (int d = 0; d < D; ++d) s += hc_recombine_pow2_term(diags[d * n + i], W * d);
        acc[i] = s;
    }
}
EXPORT void t_recombine_zq(const double* diags, int D, const u64* pows, u64* acc, i64 n, u64 q, u64 mu,
                           u64 k) {
    for (i64 i = 0; i < n; ++i) {
        u64 s = acc[i];
        for (int d = 0; d < D; ++d) s = hc_addmod(s, hc_recombine_zq_term(diags[d * n + i], pows[d], q, mu, k), q);
        acc[i] = s;
    }
}
EXPORT void t_split64k(const u64* in, double* out, i64 n) {  /* [a0 | a2 | a1 | a0 + a1] */
    for (i64 i = 0; i < n; ++i) {
        hc_i64 a0, a1, a2;
        hc_split64_k((hc_i64)in[i], &a0, &a1, &a2);
        out[i] = (double)a0; out[n + i] = (double)a2; out[2 * n + i] = (double)a1; out[3 * n + i] = (double)(a0 + a1);
    }
}
EXPORT void t_recombine64k(const double* p, u64* acc, i64 n) {
    for (i64 i = 0; i < n; ++i) acc[i] += hc_recombine64_k(p[i], p[n + i], p[2 * n + i], p[3 * n + i]);
}
EXPORT void t_chacha20(const hc_u32* key8, const hc_u32* nonce3, u64 counter, i64 nblocks, hc_u32* out) {
    HcChaChaKey key;
    for (int i = 0; i < 8; ++i) key.k[i] = key8[i];
    for (int i = 0; i < 3; ++i) key.n[i] = nonce3[i];
    for (i64 b = 0; b < nblocks; ++b) hc_chacha20_block(key, counter + (u64)b, out + 16 * b);
}
"""

_U64P = np.ctypeslib.ndpointer(np.uint64, flags="C_CONTIGUOUS")
_U32P = np.ctypeslib.ndpointer(np.uint32, flags="C_CONTIGUOUS")
_I64P = np.ctypeslib.ndpointer(np.int64, flags="C_CONTIGUOUS")
_F64P = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
_U, _L, _I = ctypes.c_uint64, ctypes.c_longlong, ctypes.c_int

_SIGS = {
    "t_mul128": [_U64P, _U64P, _U64P, _U64P, _L],
    "t_barrett": [_U64P, _U64P, _U64P, _L, _U, _U, _U],
    "t_zq_ops": [_U64P] * 6 + [_L, _U, _U, _U],
    "t_reduce_u128": [_U64P, _U64P, _U64P, _L, _U, _U, _U, _U],
    "t_reduce_u192": [_U64P] * 4 + [_L, _U, _U, _U, _U, _U],
    "t_i64_mod": [_I64P, _U64P, _L, _U],
    "t_dot_zq": [_U64P, _U64P, _L, _L, _U64P, _U64P, _U, _U, _U, _U, _U],
    "t_acc192_step": [_U64P, _U64P, _U64P, _L],
    "t_trunc_u64": [_U64P, _U64P, _L, ctypes.c_uint],
    "t_trunc_u32": [_U32P, _U32P, _L, ctypes.c_uint],
    "t_trunc_zq": [_U64P, _U64P, _L, ctypes.c_uint, _U],
    "t_split": [_I, ctypes.c_void_p, _F64P, _L, _U, _I],
    "t_recombine_pow2": [_F64P, _I, _I, _U64P, _L],
    "t_recombine_zq": [_F64P, _I, _U64P, _U64P, _L, _U, _U, _U],
    "t_split64k": [_U64P, _F64P, _L],
    "t_recombine64k": [_F64P, _U64P, _L],
    "t_chacha20": [_U32P, _U32P, _U, _L, _U32P],
}

COMPILERS = [c for c in ("g++", "nvcc") if shutil.which(c)]


@pytest.fixture(scope="module", params=COMPILERS or [None])
def lib(request, tmp_path_factory):
    compiler = request.param
    if compiler is None:
        pytest.skip("neither g++ nor nvcc is installed")
    d = tmp_path_factory.mktemp(f"devmath_{compiler.replace('+', 'p')}")
    so = d / "libdevmath.so"
    if compiler == "nvcc":
        src = d / "wrapper.cu"
        cmd = ["nvcc", "-O2", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", f"-I{KDIR}", "-o", str(so), str(src)]
    else:
        src = d / "wrapper.cpp"
        cmd = ["g++", "-O2", "-std=c++17", "-shared", "-fPIC", "-Wall", "-Wno-unknown-pragmas", f"-I{KDIR}",
               "-o", str(so), str(src)]
    src.write_text(WRAPPER)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{compiler} failed:\n{res.stderr}"
    handle = ctypes.CDLL(str(so))
    for name, argtypes in _SIGS.items():
        getattr(handle, name).argtypes = argtypes
        getattr(handle, name).restype = None
    return handle


@pytest.fixture
def rng():
    return np.random.default_rng(int.from_bytes(os.urandom(8), "little"))


def _u64(rng, n, hi=1 << 64):
    """n uniform integers in [0, hi) (hi <= 2^64) as uint64."""
    if hi == 1 << 64:
        return rng.integers(0, 1 << 64, size=n, dtype=np.uint64, endpoint=False)
    return rng.integers(0, hi, size=n, dtype=np.uint64)


def _moduli(rng):
    """Edge moduli plus random odd moduli of random bit lengths (all < 2^62)."""
    qs = [3, 5, 501337, (1 << 31) - 1, (1 << 32) + 15, (1 << 61) - 1, (1 << 62) - 57, (1 << 62) - 1 - 2]
    for bits in rng.integers(3, 63, size=6):
        qs.append(int(rng.integers(1 << (int(bits) - 1), 1 << int(bits))) | 1)
    return [q for q in qs if 3 <= q < (1 << 62) and q % 2 == 1]


def _edge_u64(q=None):
    vals = [0, 1, 2, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, (1 << 64) - 2, 1 << 32, (1 << 32) - 1]
    if q is not None:
        vals = [0, 1, q - 1, q - 2, (q - 1) // 2, (q + 1) // 2, q // 3]
        vals = [v for v in vals if 0 <= v < q]
    return np.array(vals, np.uint64)


# --------------------------------------------------------------------------------------
def test_mul128_matches_python(lib, rng):
    a = np.concatenate([_u64(rng, 4000), _edge_u64()])
    b = np.concatenate([_u64(rng, 4000), _edge_u64()[::-1]])
    lo, hi = np.empty_like(a), np.empty_like(a)
    lib.t_mul128(a, b, lo, hi, a.size)
    for x, y, l_, h_ in zip(a.tolist(), b.tolist(), lo.tolist(), hi.tolist()):
        assert (h_ << 64) | l_ == x * y


def test_barrett_reduce_full_range(lib, rng):
    """hc_barrett_reduce(x) == x mod q for every x < 2^(2k) (random and extreme x)."""
    for q in _moduli(rng):
        qq, mu, k = barrett(q)
        top = 1 << (2 * k)
        xs = [int.from_bytes(os.urandom(16), "little") % top for _ in range(600)]
        xs += [top - 1, top - 2, q * q - 1, (q - 1) ** 2, q, q - 1, 0]
        xs += [int(x) * int(y) for x, y in zip(_u64(rng, 300, q).tolist(), _u64(rng, 300, q).tolist())]
        hi = np.array([x >> 64 for x in xs], np.uint64)
        lo = np.array([x & ((1 << 64) - 1) for x in xs], np.uint64)
        out = np.empty_like(lo)
        lib.t_barrett(hi, lo, out, lo.size, qq, mu, k)
        assert out.tolist() == [x % q for x in xs], f"q={q}"


def test_zq_ring_ops_match_python_and_cpu(lib, rng):
    for q in _moduli(rng):
        qq, mu, k = barrett(q)
        a = np.concatenate([_u64(rng, 2000, q), _edge_u64(q)])
        b = np.concatenate([_u64(rng, 2000, q), _edge_u64(q)[::-1]])
        outs = [np.empty_like(a) for _ in range(4)]
        lib.t_zq_ops(a, b, *outs, a.size, qq, mu, k)
        add, sub, neg, mul = (o.tolist() for o in outs)
        A, B = a.tolist(), b.tolist()
        assert add == [(x + y) % q for x, y in zip(A, B)]
        assert sub == [(x - y) % q for x, y in zip(A, B)]
        assert neg == [(-x) % q for x in A]
        assert mul == [(x * y) % q for x, y in zip(A, B)]
        np.testing.assert_array_equal(outs[3], CPUBackend.mul(a, b, q))
        np.testing.assert_array_equal(outs[1], CPUBackend.sub(a, b, q))


def test_reduce_u128_matches_cpu_backend(lib, rng):
    for q in _moduli(rng):
        qq, mu, k = barrett(q)
        lo = np.concatenate([_u64(rng, 3000), _edge_u64()])
        hi = np.concatenate([_u64(rng, 3000), _edge_u64()[::-1]])
        out = np.empty_like(lo)
        lib.t_reduce_u128(lo, hi, out, lo.size, qq, mu, k, two64_mod(q))
        np.testing.assert_array_equal(out, CPUBackend.reduce_u128(lo, hi, q))
        assert out.tolist() == [(l_ + (h_ << 64)) % q for l_, h_ in zip(lo.tolist(), hi.tolist())]


def test_reduce_u192(lib, rng):
    for q in _moduli(rng):
        qq, mu, k = barrett(q)
        lo, hi, top = _u64(rng, 1000), _u64(rng, 1000), _u64(rng, 1000)
        out = np.empty_like(lo)
        lib.t_reduce_u192(lo, hi, top, out, lo.size, qq, mu, k, two64_mod(q), (1 << 128) % q)
        want = [(l_ + (h_ << 64) + (t_ << 128)) % q for l_, h_, t_ in zip(lo.tolist(), hi.tolist(), top.tolist())]
        assert out.tolist() == want


def test_i64_mod_is_python_mod(lib, rng):
    for q in _moduli(rng):
        v = rng.integers(-(1 << 53), 1 << 53, size=2000, dtype=np.int64)
        v = np.concatenate([v, np.array([-(1 << 63), (1 << 63) - 1, -1, 0, 1, -q, q], np.int64)])
        out = np.empty(v.size, np.uint64)
        lib.t_i64_mod(v, out, v.size, q)
        assert out.tolist() == [x % q for x in v.tolist()]


@pytest.mark.parametrize("K", [1, 17, 1025, 4097])
def test_lazy_192_accumulator_dot_products(lib, rng, K):
    """Z_q SIMT matmul inner loop: exact sum of K 128-bit products, one final reduction."""
    for q in [(1 << 62) - 57, 501337, int(rng.integers(1 << 40, 1 << 41)) | 1]:
        qq, mu, k = barrett(q)
        rows = 3
        a = _u64(rng, rows * K, q)
        b = _u64(rng, rows * K, q)
        a[:K] = q - 1  # worst case: every product is (q-1)^2
        b[:K] = q - 1
        out = np.empty(rows, np.uint64)
        raw = np.empty(3 * rows, np.uint64)
        lib.t_dot_zq(a, b, rows, K, out, raw, qq, mu, k, two64_mod(q), (1 << 128) % q)
        A, B = a.reshape(rows, K).tolist(), b.reshape(rows, K).tolist()
        for r in range(rows):
            s = sum(x * y for x, y in zip(A[r], B[r]))
            got_raw = raw[3 * r].item() + (raw[3 * r + 1].item() << 64) + (raw[3 * r + 2].item() << 128)
            assert got_raw == s
            assert out[r].item() == s % q


def test_acc192_step_carry_chains(lib, rng):
    """Every carry of the 192-bit add, including lo and hi both wrapping (hi = 2^64 - 1)."""
    m = (1 << 64) - 1
    n = 3000
    lo, hi = _u64(rng, n), _u64(rng, n)
    top = _u64(rng, n, 1 << 62)
    a, b = _u64(rng, n), _u64(rng, n)
    # force the rare chains: lo + plo wraps and hi + phi + carry wraps (or hits 2^64 - 1 exactly)
    lo[:1000] = m - rng.integers(0, 1 << 20, size=1000, dtype=np.uint64)
    hi[:1000] = m - rng.integers(0, 3, size=1000, dtype=np.uint64)
    a[:500] = rng.integers(1 << 21, 1 << 30, size=500, dtype=np.uint64)  # small products (phi == 0)
    b[:500] = rng.integers(1 << 21, 1 << 30, size=500, dtype=np.uint64)  # whose low word still wraps lo
    state = np.stack([lo, hi, top], axis=1).reshape(-1).copy()
    lib.t_acc192_step(state, a, b, n)
    st = state.reshape(n, 3).tolist()
    for i in range(n):
        want = (lo[i].item() + (hi[i].item() << 64) + (top[i].item() << 128) + a[i].item() * b[i].item())
        assert st[i][0] + (st[i][1] << 64) + (st[i][2] << 128) == want


def test_truncation_matches_cpu_backend(lib, rng):
    a64 = np.concatenate([_u64(rng, 3000), _edge_u64()])
    a32 = rng.integers(0, 1 << 32, size=3000, dtype=np.uint64).astype(np.uint32)
    for f in [0, 1, 16, 31, int(rng.integers(1, 63)), 63]:
        out = np.empty_like(a64)
        lib.t_trunc_u64(a64, out, a64.size, f)
        np.testing.assert_array_equal(out, CPUBackend.truncate(a64, f, 0))
        if f < 32:
            o32 = np.empty_like(a32)
            lib.t_trunc_u32(a32, o32, a32.size, f)
            np.testing.assert_array_equal(o32, CPUBackend.truncate(a32, f, 0))
    for q in _moduli(rng):
        a = np.concatenate([_u64(rng, 2000, q), _edge_u64(q)])
        for f in sorted({0, 1, q.bit_length() - 1, int(rng.integers(0, q.bit_length()))}):
            out = np.empty_like(a)
            lib.t_trunc_zq(a, out, a.size, f, q)
            np.testing.assert_array_equal(out, CPUBackend.truncate(a, f, q))
            half = (q - 1) // 2
            want = [((x - q if x > half else x) >> f) % q for x in a.tolist()]
            assert out.tolist() == want


def _split_cpu(a, L, w, q, bits):
    out = np.empty((1, 1, L * a.size), np.float64)
    cpu._split_rows(a.reshape(1, 1, -1), out, L, w, np.uint64(q), bits)
    return out.reshape(-1)


@pytest.mark.parametrize("ring", ["u64", "u32", "zq"])
def test_limb_split_matches_cpu_backend(lib, rng, ring):
    cases = []
    if ring == "u64":
        cases.append((np.concatenate([_u64(rng, 3000), _edge_u64()]), 0, 64, 0))
    elif ring == "u32":
        cases.append((rng.integers(0, 1 << 32, size=3000, dtype=np.uint64).astype(np.uint32), 0, 32, 1))
    else:
        for q in _moduli(rng):
            cases.append((np.concatenate([_u64(rng, 1000, q), _edge_u64(q)]), q, 64, 2))
    for a, q, bits, code in cases:
        plan = limb_plan(bits, q)
        L, w = plan.nlimbs, plan.width
        got = np.empty(L * a.size, np.float64)
        lib.t_split(code, a.ctypes.data, got, a.size, q, L)
        np.testing.assert_array_equal(got, _split_cpu(a, L, w, q, bits))
        # the limbs recombine to the signed representative (mod 2^bits or exactly for Z_q)
        limbs = got.reshape(L, -1).astype(np.int64).tolist()
        for i, x in enumerate(a.tolist()):
            v = sum(limbs[j][i] << (w * j) for j in range(L))
            if q:
                assert v % q == x
                assert all(abs(limbs[j][i]) <= plan.bounds[j] for j in range(L))
            else:
                assert v % (1 << bits) == x


def test_recombine_matches_cpu_backend(lib, rng):
    n = 2500
    for bits in (64, 32):
        plan = limb_plan(bits, 0)
        diags = rng.integers(-(1 << 52), 1 << 52, size=(plan.ndiag, n)).astype(np.float64)
        acc0 = _u64(rng, n)
        got, want = acc0.copy(), acc0.copy()
        lib.t_recombine_pow2(diags, plan.ndiag, plan.width, got, n)
        cpu._recombine_pow2(diags, want, plan.width)
        np.testing.assert_array_equal(got, want)
    for q in _moduli(rng):
        plan = limb_plan(64, q)
        qq, mu, k = barrett(q)
        pows = np.array([pow(2, plan.width * d, q) for d in range(plan.ndiag)], np.uint64)
        diags = rng.integers(-(1 << 53) + 1, 1 << 53, size=(plan.ndiag, n)).astype(np.float64)
        acc0 = _u64(rng, n, q)
        got, want = acc0.copy(), acc0.copy()
        lib.t_recombine_zq(diags, plan.ndiag, pows, got, n, qq, mu, k)
        cpu._recombine_q(diags, want, pows, np.uint64(qq), np.uint64(mu), np.uint64(k))
        np.testing.assert_array_equal(got, want)


def test_karatsuba64_split_and_recombine_match_cpu_backend(lib, rng):
    a = np.concatenate([_u64(rng, 4000), _edge_u64()])
    got = np.empty(4 * a.size, np.float64)
    lib.t_split64k(a, got, a.size)
    want = np.empty((1, 1, 4 * a.size), np.float64)
    cpu._split64_rows(a.reshape(1, 1, -1), want)
    np.testing.assert_array_equal(got, want.reshape(-1))
    l0, l2, l1 = (got.reshape(4, -1)[i].astype(np.int64).tolist() for i in range(3))
    for x, a0, a1, a2 in zip(a.tolist(), l0, l1, l2):
        assert (a0 + (a1 << 22) + (a2 << 42)) % (1 << 64) == x
        assert abs(a0) <= 1 << 21 and abs(a1) <= 1 << 19 and abs(a2) <= (1 << 21) + 1
    n = 3000
    p = rng.integers(-(1 << 52), 1 << 52, size=(4, n)).astype(np.float64)
    acc0 = _u64(rng, n)
    got_acc, want_acc = acc0.copy(), acc0.copy()
    lib.t_recombine64k(p, got_acc, n)
    cpu._recombine64(p, want_acc)
    np.testing.assert_array_equal(got_acc, want_acc)


def _chacha_words(b: bytes) -> np.ndarray:
    return np.frombuffer(b, "<u4").astype(np.uint32)


def test_chacha20_rfc8439_block_vector(lib):
    """RFC 8439 section 2.3.2: key 00..1f, nonce 000000090000004a00000000, counter 1."""
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a00000000")
    expect = np.array([0xE4E7F110, 0x15593BD1, 0x1FDD0F50, 0xC47120A3, 0xC7F4D1C7, 0x0368C033, 0x9AAA2204,
                       0x4E6CD4C3, 0x466482D2, 0x09AA9F07, 0x05D7C214, 0xA2028BD9, 0xD19C12B5, 0xB94E16DE,
                       0xE883D0CB, 0x4E3C50A2], np.uint32)
    out = np.empty(16, np.uint32)
    lib.t_chacha20(_chacha_words(key), _chacha_words(nonce), 1, 1, out)
    np.testing.assert_array_equal(out, expect)
    np.testing.assert_array_equal(out, CPUBackend.chacha20_keystream(key, nonce, 1, 1))


def _keystream_with_carry(key: bytes, nonce: bytes, counter: int, nblocks: int) -> np.ndarray:
    """The CPU keystream, continued past block 2^32 - 1 the way OpenSSL continues it: the block
    counter carries into the first nonce word.  Built from two calls that each stay below the
    32-bit limit, because newer ``cryptography`` releases refuse to cross it."""
    first = min(nblocks, max(0, (1 << 32) - counter))
    parts = [CPUBackend.chacha20_keystream(key, nonce, counter, first)] if first else []
    if nblocks > first:
        assert counter + first == 1 << 32, "the test's counters stay below 2^33"
        n0 = (int.from_bytes(nonce[:4], "little") + 1) % (1 << 32)
        parts.append(CPUBackend.chacha20_keystream(key, n0.to_bytes(4, "little") + nonce[4:], 0, nblocks - first))
    return np.concatenate(parts)


def test_chacha20_matches_cryptography(lib, rng):
    for counter, nblocks in [(0, 37), (int(rng.integers(0, 1 << 31)), 64), ((1 << 32) - 3, 7)]:
        key, nonce = os.urandom(32), os.urandom(12)
        out = np.empty(16 * nblocks, np.uint32)
        lib.t_chacha20(_chacha_words(key), _chacha_words(nonce), counter, nblocks, out)
        # past 2^32 blocks the counter carries into the first nonce word, as OpenSSL does
        np.testing.assert_array_equal(out, _keystream_with_carry(key, nonce, counter, nblocks))


# --------------------------------------------------------------------------------------
# CUDABackend's host logic with emulated kernels
# --------------------------------------------------------------------------------------
# CuPy is replaced by numpy and every extern "C" entry point by a numpy model of what the
# .cu file computes, reading its arguments exactly as the kernel signature declares them.
# This runs cuda.py's own code (argument order and types, buffer shapes, broadcasting,
# batch strides, K chunking, diagonal slicing, path dispatch, the int8 hook) on the CPU;
# the kernels' arithmetic itself is what the tests above check.
import ctypes as _ct  # noqa: E402
import types  # noqa: E402

from hecrypt.backend import cuda as cuda_mod  # noqa: E402
from hecrypt.backend import kernels as kernels_mod  # noqa: E402


def _fake_cupy():
    cp = types.SimpleNamespace()
    for name in ("asarray", "ascontiguousarray", "empty", "zeros", "broadcast_arrays", "broadcast_to",
                 "moveaxis", "matmul"):
        setattr(cp, name, getattr(np, name))
    cp.ndarray = np.ndarray
    cp.asnumpy = np.asarray
    dev = types.SimpleNamespace(id=0, attributes={"MultiProcessorCount": 1})
    stream = types.SimpleNamespace(synchronize=lambda: None)
    cp.cuda = types.SimpleNamespace(Device=lambda *a: dev, get_current_stream=lambda: stream)
    return cp


def _qcheck(q, mu, k):
    assert (int(q), int(mu), int(k)) == barrett(int(q)), "Barrett constants passed out of order"
    return int(q)


def _view(ptr_array, n, dtype):
    return np.ctypeslib.as_array((_ct.c_byte * (n * np.dtype(dtype).itemsize)).from_address(int(ptr_array))) \
        .view(dtype)


def _batched(x, nb, rows, cols, stride):
    flat = x.reshape(-1)
    return np.lib.stride_tricks.as_strided(flat, (nb, rows, cols),
                                           (stride * flat.itemsize, cols * flat.itemsize, flat.itemsize))


def _emulated_kernel(module, name):  # noqa: C901 - one branch per entry point
    assert name in cuda_mod.KERNELS[module]
    cpu_be = CPUBackend

    def run(grid, block, args):
        assert all(g >= 1 for g in grid) and block == (256,)
        for a in args:  # every scalar must be a fixed-width numpy scalar, as CuPy needs
            assert isinstance(a, (np.ndarray, np.integer)), (name, type(a))
        sfx = name.rsplit("_", 1)[-1]
        zq = sfx == "zq" or sfx.startswith("zq")
        if name.startswith("ew_nsum"):
            ptrs, nin, out, n = args[:4]
            q = _qcheck(*args[4:]) if zq else 0
            xs = [_view(p, int(n), out.dtype) for p in ptrs[: int(nin)]]
            out.reshape(-1)[:] = cpu_be.nsum(xs, q)
        elif name.startswith("ew_neg"):
            a, out, n = args[:3]
            q = _qcheck(*args[3:]) if zq else 0
            out.reshape(-1)[:] = cpu_be.neg(a.reshape(-1)[: int(n)], q)
        elif name.startswith("ew_"):
            op = name.split("_")[1]
            a, b, out, n = args[:4]
            q = _qcheck(*args[4:]) if zq else 0
            x = a.reshape(-1)[: int(n)]
            y = b.reshape(-1)[0] if op.endswith("s") else b.reshape(-1)[: int(n)]
            y = np.asarray(y, dtype=out.dtype)
            fn = {"add": "add", "sub": "sub", "mul": "mul", "adds": "add", "subs": "sub", "muls": "mul"}
            if op == "rsubs":
                res = cpu_be.sub(np.broadcast_to(y, x.shape), x, q)
            else:
                res = getattr(cpu_be, fn[op])(x, np.broadcast_to(y, x.shape), q)
            out.reshape(-1)[:] = res
        elif name.startswith("ax_sum_strided"):
            a, out, pre, C, post = args[:5]
            q = _qcheck(*args[5:]) if zq else 0
            out.reshape(-1)[:] = np.asarray(cpu_be.sum(a.reshape(int(pre), int(C), int(post)), 1, q)).reshape(-1)
        elif name.startswith("ax_sum_rows"):
            a, out, rows, C, chunk = (args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
            q = _qcheck(*args[5:]) if zq else 0
            a2 = a.reshape(rows, C)
            nch = -(-C // chunk)
            for t in range(rows * nch):
                r, c = divmod(t, nch)
                out.reshape(-1)[t] = cpu_be.sum(a2[r, c * chunk:(c + 1) * chunk], None, q)
        elif name == "reduce_u128_zq":
            lo, hi, out, n = args[:4]
            q = _qcheck(*args[4:7])
            assert int(args[7]) == two64_mod(q)
            out.reshape(-1)[:] = cpu_be.reduce_u128(lo.reshape(-1), hi.reshape(-1), q)
        elif name.startswith("truncate_"):
            a, out, n, f = args[:4]
            q = int(args[4]) if zq else 0
            out.reshape(-1)[:] = cpu_be.truncate(a.reshape(-1), int(f), q)
        elif name.startswith("matmul_"):
            A, B, C, M, N, K, nb, sa, sb, sc = args[:10]
            M, N, K, nb, sa, sb, sc = (int(v) for v in (M, N, K, nb, sa, sb, sc))
            q = 0
            if zq:
                q = _qcheck(*args[10:13])
                assert int(args[13]) == two64_mod(q) and int(args[14]) == (1 << 128) % q
            assert grid[0] >= -(-N // 64) and grid[1] >= min(-(-M // 64), 65535) and grid[2] >= min(nb, 65535)
            bits = 8 * A.dtype.itemsize if not q else 64
            Ab, Bb = _batched(A, nb, M, K, sa), _batched(B, nb, K, N, sb)
            _batched(C, nb, M, N, sc)[...] = cpu_be.matmul(np.ascontiguousarray(Ab), np.ascontiguousarray(Bb), q,
                                                           bits)
        elif name.startswith("split_rows_") or name.startswith("split_cols_"):
            rowsplit = name.startswith("split_rows_")
            if rowsplit:
                A, out, nb, M, K, sa, c0, kc = args[:8]
                rest = args[8:]
            else:
                A, out, nb, N, sb, c0, kc = args[:7]
                rest = args[7:]
            q = int(rest[0]) if zq else 0
            bits = 32 if sfx == "u32" else 64
            plan = limb_plan(bits, q)
            L = int(sfx[2:]) if zq else plan.nlimbs
            assert L == plan.nlimbs
            nb, c0, kc = int(nb), int(c0), int(kc)
            if rowsplit:
                M, K, sa = int(M), int(K), int(sa)
                src = np.ascontiguousarray(_batched(A, nb, M, K, sa)[:, :, c0:c0 + kc])
                assert out.shape == (nb, M, L * kc) and out.flags.c_contiguous
                cpu._split_rows(src, out, L, plan.width, np.uint64(q), bits)
            else:
                N, sb = int(N), int(sb)
                Ktot = A.size // max(1, nb) // N if sb else A.size // N
                src = np.ascontiguousarray(_batched(A, nb, Ktot, N, sb)[:, c0:c0 + kc, :])
                assert out.shape == (nb, L * kc, N) and out.flags.c_contiguous
                cpu._split_cols_rev(src, out, L, plan.width, np.uint64(q), bits)
        elif name in ("split64k_rows", "split64k_cols"):
            if name == "split64k_rows":
                A, out, nb, M, K, sa, c0, kc = (args[0], args[1], *(int(v) for v in args[2:8]))
                src = np.ascontiguousarray(_batched(A, nb, M, K, sa)[:, :, c0:c0 + kc])
                assert out.shape == (nb, M, 4 * kc) and out.flags.c_contiguous
                cpu._split64_rows(src, out)
            else:
                A, out, nb, N, sb, c0, kc = (args[0], args[1], *(int(v) for v in args[2:7]))
                Ktot = A.size // max(1, nb) // N if sb else A.size // N
                src = np.ascontiguousarray(_batched(A, nb, Ktot, N, sb)[:, c0:c0 + kc, :])
                assert out.shape == (nb, 4 * kc, N) and out.flags.c_contiguous
                cpu._split64_cols(src, out)
        elif name == "recombine64k":
            p, acc, n = args
            assert p.shape == (4, int(n))
            cpu._recombine64(p, acc.reshape(-1))
        elif name.startswith("recombine_pow2_"):
            diags, acc, n = args
            D = diags.size // int(n)
            width = {"u64": 22, "u32": 16}[sfx]
            a64 = acc.reshape(-1).astype(np.uint64)
            cpu._recombine_pow2(diags.reshape(D, -1), a64, width)
            acc.reshape(-1)[:] = a64.astype(acc.dtype)
        elif name == "recombine_zq":
            diags, acc, n, D = args[:4]
            q = _qcheck(*args[4:7])
            D = int(D)
            pows = np.array([int(p) for p in args[7:7 + D]], np.uint64)
            assert pows.tolist() == [pow(2, 22 * d, q) for d in range(D)]
            qq, mu, k = barrett(q)
            cpu._recombine_q(diags.reshape(D, -1), acc.reshape(-1), pows, np.uint64(qq), np.uint64(mu), np.uint64(k))
        elif name == "chacha20_blocks":
            out, counter, nblocks = args[:3]
            key = np.array(args[3:11], np.uint32).astype("<u4").tobytes()
            nonce = np.array(args[11:14], np.uint32).astype("<u4").tobytes()
            out[:] = cpu_be.chacha20_keystream(key, nonce, int(counter), int(nblocks))
        else:  # pragma: no cover
            raise AssertionError(f"no emulation for {name}")

    return run


# The real kernels, compiled for the host: a shim maps blockIdx/threadIdx/__syncthreads/__shared__
# onto C++ (one block at a time; kernels with barriers run each thread of the block on its own
# std::thread), and a launcher unpacks cuda.py's actual argument list (numpy arrays -> pointers,
# numpy scalars -> C scalars) into the kernel's signature.
SHIM = r"""
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>
struct hc_dim3 { unsigned x, y, z; };
static thread_local hc_dim3 threadIdx, blockIdx;
static hc_dim3 blockDim, gridDim;
struct hc_barrier {
    std::mutex m; std::condition_variable cv; unsigned n = 0, count = 0, gen = 0;
    void wait() {
        std::unique_lock<std::mutex> l(m);
        const unsigned g = gen;
        if (++count == n) { count = 0; ++gen; cv.notify_all(); }
        else cv.wait(l, [&] { return g != gen; });
    }
};
static hc_barrier* hc_bar = nullptr;
static inline void __syncthreads() { hc_bar->wait(); }
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) ulonglong2 { unsigned long long x, y; };
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#include "KERNEL_FILE"
template <class... A, std::size_t... I>
static void hc_call(void (*f)(A...), void** argv, std::index_sequence<I...>) {
    f(*reinterpret_cast<A*>(argv[I])...);
}
template <class... A>
static void hc_launch(void (*f)(A...), unsigned gx, unsigned gy, unsigned gz, unsigned bx, int threaded,
                      void** argv) {
    gridDim = hc_dim3{gx, gy, gz};
    blockDim = hc_dim3{bx, 1, 1};
    if (!threaded) {
        for (unsigned z = 0; z < gz; ++z)
            for (unsigned y = 0; y < gy; ++y)
                for (unsigned x = 0; x < gx; ++x) {
                    blockIdx = hc_dim3{x, y, z};
                    for (unsigned t = 0; t < bx; ++t) {
                        threadIdx = hc_dim3{t, 0, 0};
                        hc_call(f, argv, std::index_sequence_for<A...>{});
                    }
                }
        return;
    }
    // one OS thread per CUDA thread of a block, reused for every block (a barrier between blocks)
    hc_barrier bar;
    bar.n = bx;
    hc_bar = &bar;
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < bx; ++t)
        ts.emplace_back([=, &bar] {
            threadIdx = hc_dim3{t, 0, 0};
            for (unsigned z = 0; z < gz; ++z)
                for (unsigned y = 0; y < gy; ++y)
                    for (unsigned x = 0; x < gx; ++x) {
                        blockIdx = hc_dim3{x, y, z};
                        hc_call(f, argv, std::index_sequence_for<A...>{});
                        bar.wait();
                    }
        });
    for (auto& th : ts) th.join();
}
#define HC_EXPORT(name)                                                                               \
    extern "C" void L_##name(unsigned gx, unsigned gy, unsigned gz, unsigned bx, int threaded, void** argv) { \
        hc_launch(name, gx, gy, gz, bx, threaded, argv);                                             \
    }
"""


@pytest.fixture(scope="session")
def host_kernels(tmp_path_factory):
    """{module: ctypes.CDLL} of every kernel file cuda.py uses, compiled for the host with g++."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    d = tmp_path_factory.mktemp("host_kernels")
    procs = {}
    for module, names in cuda_mod.KERNELS.items():
        src = d / f"{module}_host.cpp"
        exports = "\n".join(f"HC_EXPORT({n})" for n in names)
        src.write_text(SHIM.replace("KERNEL_FILE", str(KDIR / f"{module}.cu")) + exports + "\n")
        so = d / f"{module}.so"
        cmd = ["g++", "-O1", "-std=c++17", "-shared", "-fPIC", "-pthread", f"-I{KDIR}", "-o", str(so), str(src)]
        procs[module] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), so)
    libs = {}
    for module, (proc, so) in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"host compile of {module}.cu failed:\n{err}"
        libs[module] = ctypes.CDLL(str(so))
    return libs


def _ctype(a):
    if isinstance(a, np.ndarray):
        return ctypes.c_void_p(a.ctypes.data)
    for t, c in ((np.int64, ctypes.c_longlong), (np.uint64, ctypes.c_uint64), (np.uint32, ctypes.c_uint32),
                 (np.int32, ctypes.c_int)):
        if isinstance(a, t):
            return c(a)
    raise TypeError(f"kernel argument of type {type(a).__name__} cannot be passed to a CUDA kernel")


def _host_kernel_getter(libs):
    def get_function(module, name):
        fn = getattr(libs[module], f"L_{name}")
        fn.restype = None
        threaded = int(name.startswith(("matmul_", "ax_sum_rows")))

        def run(grid, block, args):
            g = tuple(grid) + (1,) * (3 - len(grid))
            vals = [_ctype(a) for a in args]
            argv = (ctypes.c_void_p * len(vals))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in vals])
            fn(ctypes.c_uint(g[0]), ctypes.c_uint(g[1]), ctypes.c_uint(g[2]), ctypes.c_uint(block[0]),
               ctypes.c_int(threaded), argv)

        return run

    return get_function


@pytest.fixture(params=["model", "host-compiled"])
def emulated(request, monkeypatch):
    if request.param == "model":
        monkeypatch.setattr(kernels_mod, "get_function", _emulated_kernel)
    else:
        monkeypatch.setattr(kernels_mod, "get_function", _host_kernel_getter(request.getfixturevalue("host_kernels")))
    monkeypatch.setattr(cuda_mod, "_device_pointer", lambda x: x.ctypes.data)
    be = cuda_mod.CUDABackend.__new__(cuda_mod.CUDABackend)
    cp = _fake_cupy()
    be.xp = cp
    be._cp = cp
    be._sm_count = {}
    be._int8_state = "not registered (emulated device)"
    be._limb_verified = {}
    be._matmul_paths = [
        cuda_mod.MatmulPath("limb-f64", be._limb_accepts, be._matmul_limb),
        cuda_mod.MatmulPath("simt", lambda *args: True, be._matmul_simt),
    ]
    return be


_EM_RINGS = [(0, np.uint64, 64), (0, np.uint32, 32), (501337, np.uint64, 64), ((1 << 40) + 15, np.uint64, 64),
             ((1 << 62) - 57, np.uint64, 64)]


def _rand_ring(rng, shape, q, dt):
    if q:
        return rng.integers(0, q, size=shape, dtype=np.uint64)
    return rng.integers(0, 1 << 64, size=shape, dtype=np.uint64).astype(dt)


@pytest.mark.parametrize("q,dt,bits", _EM_RINGS)
def test_emulated_cuda_backend_elementwise(emulated, rng, q, dt, bits):
    be = emulated
    a, b = _rand_ring(rng, (37, 29), q, dt), _rand_ring(rng, (37, 29), q, dt)
    s = _rand_ring(rng, (), q, dt)
    col = _rand_ring(rng, (37, 1), q, dt)
    for op in ("add", "sub", "mul"):
        f, g = getattr(be, op), getattr(CPUBackend, op)
        np.testing.assert_array_equal(f(a, b, q), g(a, b, q))
        np.testing.assert_array_equal(f(a, s, q), g(a, s, q))
        np.testing.assert_array_equal(f(s, b, q), g(s, b, q))
        np.testing.assert_array_equal(f(col, b.T[:1], q), g(col, b.T[:1], q))
    np.testing.assert_array_equal(be.neg(a, q), CPUBackend.neg(a, q))
    np.testing.assert_array_equal(be.nsum([a, b, a], q), CPUBackend.nsum([a, b, a], q))
    # offset views: pointers not 16-byte aligned take the element-wise path of the kernels
    fa, fb = a.reshape(-1)[1:], b.reshape(-1)[:-1]
    assert fa.ctypes.data % 16 != 0 or fb.ctypes.data % 16 != 0
    np.testing.assert_array_equal(be.add(fa, fb, q), CPUBackend.add(fa, fb, q))
    np.testing.assert_array_equal(be.neg(fa, q), CPUBackend.neg(fa, q))
    np.testing.assert_array_equal(be.nsum([fa, fb], q), CPUBackend.nsum([fa, fb], q))
    np.testing.assert_array_equal(be.truncate(fa, 3, q), CPUBackend.truncate(fa, 3, q))
    for f in (1, 7):
        np.testing.assert_array_equal(be.truncate(a, f, q), CPUBackend.truncate(a, f, q))
    big = _rand_ring(rng, (3, 40000), q, dt)
    for arr, axis in [(a, None), (a, 0), (a, 1), (big, 1), (big, None), (big.T.copy(), 0), (a.reshape(37, 29, 1), 1)]:
        got = be.sum(arr, axis, q)
        want = np.asarray(CPUBackend.sum(arr, axis, q), dtype=dt)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    if q:
        lo, hi = _u64(rng, 100), _u64(rng, 100)
        np.testing.assert_array_equal(be.reduce_u128(lo, hi, q), CPUBackend.reduce_u128(lo, hi, q))


@pytest.mark.parametrize("q,dt,bits", _EM_RINGS)
@pytest.mark.parametrize("path", ["simt", "limb-f64"])
def test_emulated_cuda_backend_matmul(emulated, rng, q, dt, bits, path):
    be = emulated
    kmax = limb_plan(bits, q).kmax
    kmax = kmax if kmax < 5000 else 1024  # Z_2^32 chunks only past ~4M: not worth the time here
    for sa, sb in [((5, 7), (7, 3)), ((9, kmax + 1), (kmax + 1, 4)), ((3, 4, 6), (3, 6, 5)), ((4, 6), (2, 6, 5)),
                   ((2, 1, 3, 5), (4, 5, 2))]:
        a, b = _rand_ring(rng, sa, q, dt), _rand_ring(rng, sb, q, dt)
        got = be.matmul_path(a, b, q, bits, path=path)
        want = CPUBackend.matmul(a, b, q, bits)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    z = be.matmul_path(_rand_ring(rng, (3, 0), q, dt), _rand_ring(rng, (0, 2), q, dt), q, bits, path=path)
    assert z.shape == (3, 2) and z.dtype == dt and not z.any()  # empty inner dimension: zeros
    assert be.select_matmul_path(q, bits, 8, 8, 8) == "simt"
    be._limb_verified[(bits, limb_plan(bits, q).nlimbs if q else 0)] = True  # self-check: tested below
    assert be.select_matmul_path(q, bits, 256, 256, 256) == "limb-f64"


def test_emulated_int8_hook_registers_first(emulated, rng, monkeypatch):
    be = emulated
    calls = []
    fake = types.SimpleNamespace(int8_matmul=lambda a, b, bits: calls.append(bits) or CPUBackend.matmul(a, b, 0, bits),
                                 int8_selfcheck=lambda backend: backend is be)
    monkeypatch.setitem(__import__("sys").modules, "hecrypt.backend.cuda_int8", fake)
    # `from . import cuda_int8` prefers the package attribute once the real module was imported
    monkeypatch.setattr(__import__("hecrypt.backend").backend, "cuda_int8", fake, raising=False)
    be._int8_state = None
    a, b = _rand_ring(rng, (130, 129), 0, np.uint64), _rand_ring(rng, (129, 131), 0, np.uint64)
    np.testing.assert_array_equal(be.matmul(a, b, 0, 64), CPUBackend.matmul(a, b, 0, 64))
    assert calls == [64] and be._matmul_paths[0].name == "int8-tc"
    rep = be.matmul_path_report()
    assert rep["Z_2^64"]["large"] == "int8-tc" and rep["Z_q (q < 2^62)"]["large"] == "limb-f64"
    assert rep["Z_2^64"]["small (batch*M*N*K < 2^21)"] == "simt"
    # a failing self-check keeps the path out
    be2 = emulated.__class__.__new__(emulated.__class__)
    be2.__dict__.update({k: v for k, v in be.__dict__.items()})
    be2._matmul_paths = [p for p in be._matmul_paths if p.name != "int8-tc"]
    be2._int8_state = None
    fake.int8_selfcheck = lambda backend: False
    be2._register_int8()
    assert "mismatch" in be2._int8_state and all(p.name != "int8-tc" for p in be2._matmul_paths)


def test_emulated_limb_selfcheck_disables_a_wrong_limb_path(emulated, rng, monkeypatch, request):
    if "host-compiled" in request.node.name:
        pytest.skip("path logic only: the model kernels suffice (the host SIMT kernel is slow at K=1100)")
    be = emulated
    assert be.select_matmul_path(0, 64, 256, 256, 256) == "limb-f64"
    assert be._limb_verified == {(64, 0): True}
    real = be._matmul_limb
    monkeypatch.setattr(be, "_matmul_limb", lambda a, b, q, bits: real(a, b, q, bits) + np.uint32(1))
    with pytest.warns(RuntimeWarning, match="disagrees"):
        assert be.select_matmul_path(0, 32, 256, 256, 256) == "simt"
    assert be._limb_verified[(32, 0)] is False
    with pytest.warns(RuntimeWarning):  # Z_q's first check also sees the broken path
        rep = be.matmul_path_report()
    assert rep["Z_2^32"]["large"] == "simt" and rep["Z_2^64"]["large"] == "limb-f64"
    assert rep["limb-f64 self-check"]["bits=32, limbs=0"] is False


def test_emulated_chacha20(emulated):
    key, nonce = os.urandom(32), os.urandom(12)
    np.testing.assert_array_equal(emulated.chacha20_keystream(key, nonce, 5, 9),
                                  CPUBackend.chacha20_keystream(key, nonce, 5, 9))
    with pytest.raises(ValueError):
        emulated.chacha20_keystream(key[:31], nonce, 0, 1)
    np.testing.assert_array_equal(emulated.chacha20_keystream(key, nonce, (1 << 32) - 2, 2),
                                  CPUBackend.chacha20_keystream(key, nonce, (1 << 32) - 2, 2))
    for counter, nblocks in [((1 << 32) - 2, 3), (1 << 32, 1), (-1, 2), (0, -1)]:
        with pytest.raises(ValueError, match="2\\^32"):
            emulated.chacha20_keystream(key, nonce, counter, nblocks)
