"""Negacyclic NTT: tables, primes, known answers against a naive transform, round trips,
convolution, Galois automorphisms, CUDA source compilation and GPU parity."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hecrypt.backend import cuda_status
from hecrypt.backend import he_cpu as H
from hecrypt.backend.ntt import (
    MAX_PRIME_BITS,
    bit_reverse_indices,
    galois_permutation,
    he_ops,
    is_prime,
    make_ntt_tables,
    ntt_primes,
)

KERNELS = Path(__file__).resolve().parents[1] / "kernels"


def rand_poly(rng, qs, N, batch=()):
    """Uniform residues in [0, q_l) shaped batch + (L, N)."""
    return np.stack([rng.integers(0, q, batch + (N,), dtype=np.uint64) for q in qs], axis=-2)


def naive_ntt(a_row, q, psi, N):
    """out[i] = sum_j a_j psi^((2 brv(i) + 1) j) mod q, Python ints, O(N^2)."""
    brv = bit_reverse_indices(N)
    a = [int(x) for x in a_row]
    return [sum(a[j] * pow(psi, (2 * int(brv[i]) + 1) * j, q) for j in range(N)) % q for i in range(N)]


def schoolbook_negacyclic(a, b, q):
    N = len(a)
    c = [0] * N
    for i in range(N):
        ai = int(a[i])
        for j in range(N):
            k = i + j
            if k < N:
                c[k] += ai * int(b[j])
            else:
                c[k - N] -= ai * int(b[j])
    return [x % q for x in c]


# ---------------------------------------------------------------------------------------
# primes and tables
# ---------------------------------------------------------------------------------------
def test_ntt_primes_properties():
    N = 4096
    bits = [60, 40, 40, 60, 61, 30]
    qs = ntt_primes(bits, N)
    assert [q.bit_length() for q in qs] == bits
    assert len(set(qs)) == len(qs)
    for q in qs:
        assert q % (2 * N) == 1 and is_prime(q)
    more = ntt_primes([60, 40], N, exclude=qs)
    assert not set(more) & set(qs)
    # largest first, deterministic
    assert ntt_primes([60], N) == ntt_primes([60], N)
    assert qs[0] > qs[3]


def test_ntt_primes_errors():
    with pytest.raises(ValueError):
        ntt_primes([MAX_PRIME_BITS + 1], 1024)
    with pytest.raises(ValueError):
        ntt_primes([12], 4096)  # 2N = 2^13 does not fit
    with pytest.raises(ValueError):
        ntt_primes([40], 1000)  # not a power of two
    with pytest.raises(TypeError):
        ntt_primes([40.0], 1024)
    with pytest.raises(ValueError):  # only few 17-bit primes = 1 mod 2^14 exist
        ntt_primes([17] * 50, 4096)


def test_is_prime_against_trial_division(rng):
    for n in rng.integers(2, 10**6, 200):
        n = int(n)
        assert is_prime(n) == all(n % d for d in range(2, int(n**0.5) + 1))
    assert is_prime((1 << 61) - 1) and not is_prime((1 << 61) + 1)


@pytest.mark.parametrize("N", [8, 1024])
def test_tables_contents(N):
    qs = ntt_primes([61, 45, 30], N)
    t = make_ntt_tables(qs, N)
    assert make_ntt_tables(tuple(qs), N) is t  # cached
    brv = bit_reverse_indices(N)
    for l, q in enumerate(qs):
        psi = t.psi[l]
        assert pow(psi, N, q) == q - 1
        # smallest primitive 2N-th root
        odd = [pow(psi, k, q) for k in range(1, 2 * N, 2)]
        assert psi == min(odd)
        for k in (0, 1, N // 2, N - 1):
            w = pow(psi, int(brv[k]), q)
            assert int(t.psi_rev[l, k]) == w
            assert int(t.psi_rev_shoup[l, k]) == (w << 64) // q
            iw = pow(psi, -int(brv[k]), q)
            assert int(t.ipsi_rev[l, k]) == iw
            assert int(t.ipsi_rev_shoup[l, k]) == (iw << 64) // q
        assert int(t.n_inv[l]) * N % q == 1
        assert (int(t.barrett_hi[l]) << 64) + int(t.barrett_lo[l]) == (1 << 128) // q
    assert not t.psi_rev.flags.writeable


def test_tables_reject_bad_moduli():
    N = 64
    (q,) = ntt_primes([40], N)
    with pytest.raises(ValueError, match="not 1 mod"):
        make_ntt_tables([q], 2 * N * 4)
    with pytest.raises(ValueError, match="not prime"):
        composite = next(c for c in range(q - 2 * N, 0, -2 * N) if not is_prime(c))
        make_ntt_tables([composite], N)
    with pytest.raises(ValueError, match="out of range"):
        make_ntt_tables([(1 << 62) + 1], N)
    with pytest.raises(ValueError, match="distinct"):
        make_ntt_tables([q, q], N)
    with pytest.raises(ValueError):
        make_ntt_tables([], N)
    with pytest.raises(ValueError):
        make_ntt_tables([q], 48)
    with pytest.raises(TypeError):
        make_ntt_tables(["x"], N)


# ---------------------------------------------------------------------------------------
# known answers and round trips
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("N", [2, 4, 8, 16, 32])
def test_ntt_matches_naive_transform(rng, N):
    qs = ntt_primes([61, 50, 31, 20], N)
    t = make_ntt_tables(qs, N)
    a = rand_poly(rng, qs, N, (2,))
    A = H.ntt(a, t)
    assert A.shape == a.shape and A.dtype == np.uint64
    for b in range(2):
        for l, q in enumerate(qs):
            assert [int(x) for x in A[b, l]] == naive_ntt(a[b, l], q, t.psi[l], N)
    np.testing.assert_array_equal(H.intt(A, t), a)


def test_ntt_extreme_values(rng):
    """All q-1 (largest lazy intermediates) and zeros."""
    N = 32
    qs = ntt_primes([61, 61], N)
    t = make_ntt_tables(qs, N)
    a = np.stack([np.full(N, q - 1, dtype=np.uint64) for q in qs])
    A = H.ntt(a, t)
    for l, q in enumerate(qs):
        assert [int(x) for x in A[l]] == naive_ntt(a[l], q, t.psi[l], N)
    np.testing.assert_array_equal(H.intt(A, t), a)
    z = np.zeros_like(a)
    np.testing.assert_array_equal(H.ntt(z, t), z)


@pytest.mark.parametrize("log_n", range(1, 18))  # every N the tables accept, 2 .. 2^17
def test_round_trip_all_sizes(rng, log_n):
    N = 1 << log_n
    qs = ntt_primes([60, 40, 61], N)
    t = make_ntt_tables(qs, N)
    a = rand_poly(rng, qs, N)
    A = H.ntt(a, t)
    assert int(A.max()) < max(qs) and (A[1] < qs[1]).all()
    np.testing.assert_array_equal(H.intt(A, t), a)
    # spot check one slot against the definition (Horner, Python ints)
    i = int(rng.integers(0, N))
    brv = bit_reverse_indices(N)
    for l, q in enumerate(qs):
        x = pow(t.psi[l], 2 * int(brv[i]) + 1, q)
        acc = 0
        for c in a[l, ::-1]:
            acc = (acc * x + int(c)) % q
        assert int(A[l, i]) == acc


def test_in_place_and_out(rng):
    N = 256
    qs = ntt_primes([50, 60], N)
    t = make_ntt_tables(qs, N)
    a = rand_poly(rng, qs, N, (3,))
    ref = H.ntt(a, t)
    b = a.copy()
    assert H.ntt(b, t, out=b) is b
    np.testing.assert_array_equal(b, ref)
    o = np.empty_like(a)
    assert H.intt(ref, t, out=o) is o
    np.testing.assert_array_equal(o, a)
    # a is not modified by the out-of-place call
    a2 = a.copy()
    H.ntt(a, t)
    np.testing.assert_array_equal(a, a2)


@pytest.mark.parametrize("N", [64, 256])
def test_negacyclic_convolution(rng, N):
    qs = ntt_primes([61, 36], N)
    t = make_ntt_tables(qs, N)
    a = rand_poly(rng, qs, N)
    b = rand_poly(rng, qs, N)
    c = H.intt(H.rns_mul(H.ntt(a, t), H.ntt(b, t), t.qs), t)
    for l, q in enumerate(qs):
        assert [int(x) for x in c[l]] == schoolbook_negacyclic(a[l], b[l], q)


def test_ntt_linearity_batched(rng):
    N = 1024
    qs = ntt_primes([60, 60, 40, 40], N)
    t = make_ntt_tables(qs, N)
    a = rand_poly(rng, qs, N, (2, 3))
    b = rand_poly(rng, qs, N, (2, 3))
    lhs = H.ntt(H.rns_add(a, b, t.qs), t)
    rhs = H.rns_add(H.ntt(a, t), H.ntt(b, t), t.qs)
    np.testing.assert_array_equal(lhs, rhs)
    # each batch entry transforms independently
    np.testing.assert_array_equal(H.ntt(a, t)[1, 2], H.ntt(a[1, 2], t))


def test_ntt_argument_errors(rng):
    N = 64
    qs = ntt_primes([40, 40], N)
    t = make_ntt_tables(qs, N)
    a = rand_poly(rng, qs, N)
    with pytest.raises(TypeError):
        H.ntt(a.astype(np.int64), t)
    with pytest.raises(TypeError):
        H.ntt(a.tolist(), t)
    with pytest.raises(ValueError):
        H.ntt(a[:1], t)
    with pytest.raises(ValueError):
        H.ntt(a[:, :32], t)
    with pytest.raises(ValueError):
        H.ntt(a[0], t)
    with pytest.raises(TypeError):
        H.ntt(a, qs)
    with pytest.raises(ValueError):
        H.ntt(a, t, out=np.empty((2, 32), dtype=np.uint64))


def test_he_ops_dispatch(rng):
    assert he_ops(np.zeros((1, 8), dtype=np.uint64)) is H


# ---------------------------------------------------------------------------------------
# Galois automorphisms
# ---------------------------------------------------------------------------------------
def ref_automorphism(a, g, qs):
    N = a.shape[-1]
    out = np.zeros(a.shape, dtype=object)
    for j in range(N):
        e = j * g % (2 * N)
        for l, q in enumerate(qs):
            v = a[..., l, j].astype(object)
            out[..., l, e % N] = v if e < N else (-v) % q
    return out.astype(np.uint64)


@pytest.mark.parametrize("N", [16, 512])
def test_automorphism_coefficient_and_ntt_form(rng, N):
    qs = ntt_primes([60, 40, 33], N)
    t = make_ntt_tables(qs, N)
    a = rand_poly(rng, qs, N, (2,))
    gens = [3, 5, 2 * N - 1, int(rng.integers(0, N)) * 2 + 1]
    for g in gens:
        ac = H.automorphism(a, g, N, False, t.qs)
        np.testing.assert_array_equal(ac, ref_automorphism(a, g, qs))
        an = H.automorphism(H.ntt(a, t), g, N, True)
        np.testing.assert_array_equal(H.ntt(ac, t), an)
    # composition: x -> x^g1 then x -> x^g2 equals x -> x^(g1 g2)
    g1, g2 = 5, 3 ** 3
    two = H.automorphism(H.automorphism(a, g1, N, False, qs), g2, N, False, qs)
    np.testing.assert_array_equal(two, H.automorphism(a, g1 * g2 % (2 * N), N, False, qs))
    # identity
    np.testing.assert_array_equal(H.automorphism(a, 1, N, True), a)


def test_galois_permutation_is_permutation():
    N = 256
    for g in (3, 5, 511):
        for form in (False, True):
            p = galois_permutation(g, N, form) & np.uint32(0x7FFFFFFF)
            assert sorted(p.tolist()) == list(range(N))
    with pytest.raises(ValueError):
        galois_permutation(4, N, True)
    with pytest.raises(ValueError):
        galois_permutation(2 * N + 1, N, True)
    with pytest.raises(TypeError):
        galois_permutation(3.0, N, True)


def test_automorphism_errors(rng):
    N = 32
    qs = ntt_primes([40], N)
    a = rand_poly(rng, qs, N)
    with pytest.raises(ValueError, match="needs qs"):
        H.automorphism(a, 3, N, False)
    with pytest.raises(ValueError):
        H.automorphism(a, 3, 64, True)
    with pytest.raises(ValueError):
        H.automorphism(a, 3, N, True, out=a)


# ---------------------------------------------------------------------------------------
# CUDA source: compiles with nvcc / NVRTC, and the GPU agrees with the CPU
# ---------------------------------------------------------------------------------------
@pytest.mark.build
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_ntt_cu_compiles_with_nvcc(tmp_path, arch):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found")
    out = tmp_path / "ntt.cubin"
    res = subprocess.run(
        [nvcc, f"-arch={arch}", "-cubin", "-std=c++17", "-Werror", "all-warnings", f"-I{KERNELS}",
         "-o", str(out), str(KERNELS / "ntt.cu")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 0


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_ntt_cu_compiles_with_nvrtc(arch):
    try:
        from cupy.cuda import nvrtc  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"NVRTC unavailable: {exc}")
    from hecrypt.backend import he_cuda

    cubin = he_cuda.compile_nvrtc(arch)
    for name in he_cuda.KERNEL_NAMES:
        assert name.encode() in cubin, name


# ---------------------------------------------------------------------------------------
# The CUDA code on the host: kernels/ntt.cu compiled as C++ (-DHK_HOST_EMULATION, thread
# loops sequential, blocks replayed) and driven by the real he_cuda launch code with a numpy
# stand-in for CuPy.  Checks the index maths, the launch plan and the argument lists
# without a GPU; races and launch limits are left to the GPU parity tests.
# ---------------------------------------------------------------------------------------
class _FakeDevice:
    id = -1  # never collides with a real device's cached constants


class _FakeCupy:
    uint64 = np.uint64
    empty = staticmethod(np.empty)
    asarray = staticmethod(np.asarray)
    ascontiguousarray = staticmethod(np.ascontiguousarray)
    broadcast_to = staticmethod(np.broadcast_to)
    shares_memory = staticmethod(np.shares_memory)

    class cuda:  # noqa: N801
        Device = _FakeDevice


@pytest.fixture(scope="module")
def emu_lib(tmp_path_factory):
    import ctypes

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler")
    so = tmp_path_factory.mktemp("ntt_emu") / "ntt_emu.so"
    res = subprocess.run(
        [cxx, "-std=c++17", "-O2", "-DHK_HOST_EMULATION", "-x", "c++", "-shared", "-fPIC",
         f"-I{KERNELS}", "-o", str(so), str(KERNELS / "ntt.cu")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return ctypes.CDLL(str(so))


@pytest.fixture
def emu(emu_lib, monkeypatch):
    """he_cuda running ntt.cu's host build on numpy arrays."""
    import ctypes

    from hecrypt.backend import he_cuda

    launches = []

    def arg(x):
        if isinstance(x, np.ndarray):
            assert x.flags.c_contiguous
            return ctypes.c_void_p(x.ctypes.data)
        if isinstance(x, np.int32):
            return ctypes.c_int(int(x))
        if isinstance(x, np.int64):
            return ctypes.c_longlong(int(x))
        raise TypeError(type(x))

    def fn(name):
        f = getattr(emu_lib, name)

        def launch(grid, block, args, shared_mem=0):
            launches.append((name, grid[0], block[0], shared_mem))
            assert 1 <= block[0] <= 1024 and shared_mem <= 48 * 1024
            cargs = [arg(x) for x in args]
            if shared_mem:  # block-level kernels: replay every block with its shared memory
                sm = np.zeros(shared_mem // 8, dtype=np.uint64)
                for blk in range(grid[0]):
                    f(*cargs, ctypes.c_longlong(blk), ctypes.c_void_p(sm.ctypes.data))
            else:
                f(*cargs, ctypes.c_longlong(0), ctypes.c_void_p(0))

        return launch

    monkeypatch.setattr(he_cuda, "_cupy", lambda: _FakeCupy)
    monkeypatch.setattr(he_cuda, "_fn", fn)
    monkeypatch.setattr(he_cuda, "_is_cupy", lambda a: isinstance(a, np.ndarray))
    he_cuda.launches = launches
    yield he_cuda
    del he_cuda.launches


@pytest.mark.parametrize("log_n", [1, 3, 5, 11, 12, 13, 14, 15, 16, 17])
def test_cuda_ntt_host_emulation(rng, emu, log_n):
    N = 1 << log_n
    qs = ntt_primes([61, 30, 20], N) if log_n < 12 else ntt_primes([60, 40, 61], N)
    t = make_ntt_tables(qs, N)
    a = rand_poly(rng, qs, N, (2,))
    A = emu.ntt(a, t)
    np.testing.assert_array_equal(A, H.ntt(a, t))
    np.testing.assert_array_equal(emu.intt(A, t), a)
    names = [x[0] for x in emu.launches]
    two = log_n > 11
    assert names == (
        ["hk_ntt_fwd_outer", "hk_ntt_fwd_smem", "hk_ntt_inv_smem", "hk_ntt_inv_outer"] if two
        else ["hk_ntt_fwd_smem", "hk_ntt_inv_smem"]
    )  # fmt: skip
    b = a.copy()
    assert emu.ntt(b, t, out=b) is b
    np.testing.assert_array_equal(b, A)


def test_cuda_rns_host_emulation(rng, emu):
    N = 256
    qs = ntt_primes([61, 60, 40, 30], N)
    qa = np.array(qs, dtype=np.uint64)
    a, b, c = (rand_poly(rng, qs, N, (2, 3)) for _ in range(3))
    p = rand_poly(rng, qs, N)
    mid = rand_poly(rng, qs, N, (1, 3))
    for f in ("rns_add", "rns_sub", "rns_mul"):
        for x, y in ((a, b), (a, p), (p, a), (a, mid)):
            np.testing.assert_array_equal(getattr(emu, f)(x, y, qa), getattr(H, f)(x, y, qa), err_msg=f)
    np.testing.assert_array_equal(emu.rns_neg(a, qs), H.rns_neg(a, qs))
    np.testing.assert_array_equal(emu.rns_fma(c, a, b, qs), H.rns_fma(c, a, b, qs))
    np.testing.assert_array_equal(emu.rns_fma(p, a, p, qs), H.rns_fma(p, a, p, qs))
    acc = c.copy()
    emu.rns_fma(acc, a, b, qs, out=acc)
    np.testing.assert_array_equal(acc, H.rns_fma(c, a, b, qs))
    s = [int(v) for v in rng.integers(0, 2**63, len(qs), dtype=np.uint64)]
    np.testing.assert_array_equal(emu.rns_mul_scalar(a, s, qs), H.rns_mul_scalar(a, s, qs))
    for K in (1, 70):
        d = rand_poly(rng, qs, N, (K, 2, 1))
        k = rand_poly(rng, qs, N, (K, 3))
        np.testing.assert_array_equal(emu.rns_dot(d, k, qs), H.rns_dot(d, k, qs))


@pytest.mark.parametrize("lf,lt", [(1, 3), (4, 2), (9, 5)])
def test_cuda_base_convert_host_emulation(rng, emu, lf, lt):
    N = 128
    fq = ntt_primes([60] * lf, N)
    tq = ntt_primes([61] * lt, N, exclude=fq)
    a = rand_poly(rng, fq, N, (3,))
    np.testing.assert_array_equal(emu.base_convert(a, fq, tq), H.base_convert(a, fq, tq))


def test_cuda_automorphism_host_emulation(rng, emu):
    N = 64
    qs = ntt_primes([60, 40], N)
    a = rand_poly(rng, qs, N, (2,))
    for g in (3, 5, 2 * N - 1, 77):
        for form in (False, True):
            np.testing.assert_array_equal(emu.automorphism(a, g, N, form, qs), H.automorphism(a, g, N, form, qs))
    np.testing.assert_array_equal(emu.automorphism(a, 5, N, True), H.automorphism(a, 5, N, True))


@pytest.fixture
def cp():
    ok, why = cuda_status()
    if not ok:
        pytest.skip(why)
    import cupy

    return cupy


@pytest.mark.gpu
@pytest.mark.parametrize("log_n", [3, 5, 10, 11, 12, 13, 14, 15, 16])
def test_gpu_ntt_parity(rng, cp, log_n):
    N = 1 << log_n
    qs = ntt_primes([60, 40, 61], N) if log_n > 4 else ntt_primes([61, 30, 20], N)
    t = make_ntt_tables(qs, N)
    a = rand_poly(rng, qs, N, (3,))
    A = H.ntt(a, t)
    from hecrypt.backend import he_cuda

    ga = cp.asarray(a)
    assert he_ops(ga) is he_cuda
    gA = he_cuda.ntt(ga, t)
    np.testing.assert_array_equal(cp.asnumpy(gA), A)
    np.testing.assert_array_equal(cp.asnumpy(he_cuda.intt(gA, t)), a)
    np.testing.assert_array_equal(cp.asnumpy(ga), a)  # input untouched


@pytest.mark.gpu
@pytest.mark.parametrize("N", [16, 4096])
def test_gpu_automorphism_parity(rng, cp, N):
    from hecrypt.backend import he_cuda

    qs = ntt_primes([60, 40], N)
    t = make_ntt_tables(qs, N)
    a = rand_poly(rng, qs, N, (2,))
    for g in (3, 5, 2 * N - 1):
        for form in (False, True):
            ref = H.automorphism(a, g, N, form, t.qs)
            got = he_cuda.automorphism(cp.asarray(a), g, N, form, t.qs)
            np.testing.assert_array_equal(cp.asnumpy(got), ref)


def test_cuda_kernels_run_the_ckks_scheme_bit_identically(rng, emu):
    """The whole CKKS evaluator on the CUDA kernels (host build) with the GPU's batched ModUp:
    products, rotations, conjugation, rescale and decryption equal the CPU path bit for bit."""
    from hecrypt.he import CKKSContext, CKKSParameters

    ctx = CKKSContext(CKKSParameters(64, [50, 30, 30, 50], 30, security=None), device="cpu")
    ctx.generate_galois_keys([1, 3], conjugate=True)
    x, y = rng.uniform(-1, 1, (2, ctx.slots))
    a, b = ctx.encrypt(x), ctx.encrypt_batch(np.stack([y, x]))
    ev = ctx._ev

    def run():
        p = a * a
        return [p.data, (b * a).data, ctx.rotate(a, 3).data, ctx.rotate(b, 1).data, ctx.conjugate(p).data,
                (a * 0.5).data, p.rescale().data, ctx.decrypt(p), ctx.decrypt_batch(b)]

    ref = run()
    cpu_ops = ev.ring._ops
    ev.ring._ops, ev.batched_modup = emu, True
    try:
        got = run()
    finally:
        ev.ring._ops, ev.batched_modup = cpu_ops, False
    for i, (g, r) in enumerate(zip(got, ref)):  # ciphertexts, then decryptions (same integers, same FFT)
        np.testing.assert_array_equal(g, r, err_msg=str(i))
    assert {name for name, *_ in emu.launches} >= {"hk_ntt_fwd_smem", "hk_rns_dot", "hk_gather", "hk_base_convert"}


def test_cpu_serial_and_parallel_builds_agree(rng, monkeypatch):
    """Every CPU kernel has a serial and a parallel build (picked by size): same results."""
    from hecrypt.he import CKKSContext, CKKSParameters

    ctx = CKKSContext(CKKSParameters(128, [50, 30, 30, 50], 30, security=None), device="cpu")
    ctx.generate_galois_keys([1])
    x, y = rng.uniform(-1, 1, (2, ctx.slots))
    a, b = ctx.encrypt(x), ctx.encrypt_batch(np.stack([y, x]))
    qs = ntt_primes([60, 40], 64)
    t = make_ntt_tables(qs, 64)
    p = rand_poly(rng, qs, 64, (3,))
    tq = ntt_primes([61, 59], 64, exclude=qs)

    def run():
        return [(a * a).data, (b * a).data, ctx.rotate(b, 1).data, (a * 0.25 + 1.5 - b[0]).data,
                H.ntt(p, t), H.intt(p, t), H.base_convert(p, qs, tq), H.automorphism(p, 5, 64, True)]

    out = {}
    from hecrypt.backend._numba import DualKernel

    for mode in ("serial", "parallel"):
        monkeypatch.setattr(DualKernel, "force", mode)
        out[mode] = run()
    for i, (s, q) in enumerate(zip(out["serial"], out["parallel"])):
        np.testing.assert_array_equal(s, q, err_msg=str(i))
