"""Suite ``he``: CKKS operations at N = 8192 and 16384 against TenSEAL on the CPU.

Parameter sets (the issue's):

* ``n8192``: N = 8192, primes ``[60, 40, 40, 60]`` (special prime last), scale ``2^40``;
* ``n16384``: N = 16384, primes ``[60, 40 x 7, 60]`` (9 primes, 400 bits), scale ``2^40``.

Cases per set: ``keygen`` (secret, public, relinearization key; no baseline), ``encode+encrypt``
(public key), ``add``, ``mul+relin+rescale``, ``rotate`` (by one slot), ``decrypt`` (with
decoding), ``ntt`` (forward NTT of one polynomial over every prime including ``P``; no
baseline) and ``ciphertext bytes`` (serialized size of a fresh public-key ciphertext, plus
the seeded symmetric size; TenSEAL's ``serialize()`` size as baseline).  TenSEAL 0.3.x runs
in the peers venv (``hecrypt.benchmarks.peers``) on the same inputs: its ``ckks_vector``
for encrypt/add/mul/decrypt (auto relinearize + rescale) and SEAL's ``rotate_vector`` through
``tenseal.sealapi`` with a Galois key for step 1 only.  ``speedup = TenSEAL / hecrypt``
(wall clock).  On the CPU the rows also carry ``cpu_s`` / ``baseline_cpu_s``: median process
CPU time (all threads), which a machine shared with other jobs distorts less.

The ``agreement`` row decrypts the same computation done by both libraries on the same
inputs, ``rotate(x * y, 1) + x``, and reports ``max_abs_diff`` (hecrypt vs TenSEAL) and each
library's ``max_err`` against the exact result (CKKS is approximate: agreement means both
are within the CKKS error, not bit equality; the ciphertexts are not compatible).

Inputs are public benchmark data from numpy's generator (uniform in [-1, 1]).  Without the
peers venv the rows carry ``baseline = None`` and the reason is logged.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from ..backend.ntt import he_ops, make_ntt_tables
from ..he import CKKSContext, CKKSParameters
from ._harness import Bench
from .peers import run_peer

SUITE = "he"
DESCRIPTION = ("CKKS at N=8192 [60,40,40,60] and N=16384 [60,40x7,60]: encrypt, add, mul+relin+rescale, "
               "rotate, decrypt, NTT, ciphertext bytes; TenSEAL baseline on the CPU")

CASES = (
    ("n8192", 8192, (60, 40, 40, 60), 40),
    ("n16384", 16384, (60,) + (40,) * 7 + (60,), 40),
)
SECURITY: int | None = 128  # the CASES are all within the 128-bit table (tests shrink them)

_TENSEAL_SNIPPET = r"""
import numpy as np, tenseal as ts, tenseal.sealapi as sa, time
N, chain, sb, rep = ARGS["N"], ARGS["chain"], ARGS["scale_bits"], ARGS["repeat"]
x = np.array(ARGS["x"]); y = np.array(ARGS["y"])
t0 = time.perf_counter()
ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=N, coeff_mod_bit_sizes=chain)
ctx.global_scale = 2.0 ** sb
keygen = time.perf_counter() - t0
sctx = ctx.seal_context().data
gk = sa.GaloisKeys()
sa.KeyGenerator(sctx, ctx.secret_key().data).create_galois_keys([3], gk)  # SEAL: step 1 = element 3
evl = sa.Evaluator(sctx)
dec = sa.Decryptor(sctx, ctx.secret_key().data)
encd = sa.CKKSEncoder(sctx)
a = ts.ckks_vector(ctx, x); b = ts.ckks_vector(ctx, y)
def cpu_time(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.process_time(); fn(); ts.append(time.process_time() - t0)
    return sorted(ts)[len(ts) // 2]
out = {"tenseal": ts.__version__, "keygen": keygen}
c = a.ciphertext()[0]
r = sa.Ciphertext()
cases = {"encrypt": (lambda: ts.ckks_vector(ctx, x), rep), "add": (lambda: a + b, max(rep, 20)),
         "mul": (lambda: a * b, rep), "decrypt": (lambda: a.decrypt(), rep),
         "rotate": (lambda: evl.rotate_vector(c, 1, gk, r), rep)}
for k, (fn, n) in cases.items():
    out[k] = median_time(fn, repeat=n)
    out[k + "_cpu"] = cpu_time(fn, n)
out["bytes"] = len(a.serialize())
# agreement case: rotate(x*y, 1) + x
p = (a * b).ciphertext()[0]
rp = sa.Ciphertext()
evl.rotate_vector(p, 1, gk, rp)
pt = sa.Plaintext(); dec.decrypt(rp, pt)
rot = np.array(encd.decode_double(pt))[: len(x)]
out["agree"] = (rot + np.array(a.decrypt())).tolist()
emit(out)
"""


def _wall_and_cpu(fn, repeat: int) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds (all threads) of ``fn()`` over
    ``repeat`` runs after one warm-up run (CPU only; the GPU path uses :meth:`Bench.time`).
    CPU time is the work done, which a machine shared with other jobs distorts less."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def _tenseal(N: int, bits, scale_bits: int, x: np.ndarray, y: np.ndarray, repeat: int, log) -> dict | None:
    return run_peer(_TENSEAL_SNIPPET, {"N": N, "chain": list(bits), "scale_bits": scale_bits, "x": x.tolist(),
                                       "y": y.tolist(), "repeat": repeat}, timeout=600, log=log)


def run(bench: Bench) -> None:
    seed = 20240501
    # load (or JIT-compile) every kernel once, so keygen below measures key generation only
    warm = CKKSContext(CKKSParameters(64, [40, 30, 40], 30, security=None), device=bench.device)
    w = warm.encrypt(np.ones(4))
    warm.decrypt(warm.rotate(w * w, 1))
    for name, N, bits, sb in CASES:
        params = CKKSParameters(N, bits, sb, security=SECURITY)
        label = f"N={N} {list(bits[:2])}..{len(bits)} primes"
        rng = np.random.default_rng(seed + N)
        x, y = rng.uniform(-1, 1, (2, N // 2))
        repeat = 3 if bench.quick else 7
        bench.log(f"he: {name}: key generation")
        t0 = time.perf_counter()
        ctx = CKKSContext(params, device=bench.device)
        keygen = time.perf_counter() - t0
        ctx.generate_galois_keys([1])
        pub = ctx.public_context()
        peer = _tenseal(N, bits, sb, x, y, repeat, bench.log)
        base = f"TenSEAL {peer['tenseal']} (CPU)" if peer else None

        def rec(case, s, key=None, **extra):
            bs = peer.get(key) if (peer and key) else None
            if peer and key and key + "_cpu" in peer:
                extra["baseline_cpu_s"] = peer[key + "_cpu"]
            bench.record(f"{name} {case}", s, base if bs is not None else None, bs, params=label, **extra)

        def timed(case, fn, key, n):
            if bench.device == "cpu":
                wall, cpu = _wall_and_cpu(fn, n)
                rec(case, wall, key, cpu_s=cpu)
            else:
                rec(case, bench.time(fn, repeat=n), key)

        rec("keygen (sk, pk, relin)", keygen, "keygen")
        a, b = pub.encrypt(x), pub.encrypt(y)
        timed("encode+encrypt", lambda: pub.encrypt(x), "encrypt", repeat)
        timed("add", lambda: a + b, "add", max(repeat, 20))
        timed("mul+relin+rescale", lambda: a * b, "mul", repeat)
        timed("rotate", lambda: ctx.rotate(a, 1), "rotate", repeat)
        timed("decrypt", lambda: ctx.decrypt(a), "decrypt", repeat)
        tables = make_ntt_tables(params.primes, N)
        poly = a.data[0, :1].repeat(len(params.primes), axis=0) % ctx._ev.ring.qs_col(tuple(range(len(params.primes))))
        ops = he_ops(poly)
        rec(f"ntt ({len(params.primes)} limbs)", bench.time(lambda: ops.ntt(poly, tables), repeat=max(repeat, 10)))
        nbytes = len(a.to_bytes())
        seeded = len(ctx.encrypt(x, symmetric=True).to_bytes())
        tb = peer.get("bytes") if peer else None
        bench.record(f"{name} ciphertext bytes {nbytes} (seeded {seeded}; TenSEAL {tb or '-'})", None,
                     base if peer else None, None, params=label, bytes=nbytes, seeded_bytes=seeded,
                     baseline_bytes=tb)
        # agreement on rotate(x*y, 1) + x
        exact = np.roll(x * y, -1) + x
        mine = ctx.decrypt(ctx.rotate(a * b, 1) + a)
        row = {"max_err": float(np.abs(mine - exact).max())}
        if peer:
            theirs = np.asarray(peer["agree"])
            row.update(baseline_max_err=float(np.abs(theirs - exact).max()),
                       max_abs_diff=float(np.abs(theirs - mine).max()))
        txt = f"err {row['max_err']:.1e}"
        if peer:
            txt += f", TenSEAL {row['baseline_max_err']:.1e}, diff {row['max_abs_diff']:.1e}"
        bench.record(f"{name} rot(x*y,1)+x: {txt}", None, base, None, params=label, **row)
