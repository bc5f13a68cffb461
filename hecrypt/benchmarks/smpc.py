"""Suite ``smpc``: secret-shared products (2 parties, Z_2^64, 16 fractional bits).

Cases (hecrypt vs baseline, same run):

* shared matmul ``(n x n) @ (n x n)`` with Beaver triples and truncation at n = 128, 512,
  1024 (and 4096 on a GPU);
* shared elementwise product at 10^6 elements;
* on a GPU, the same protocol at the largest n with the ring matmul replaced by CrypTen's
  GPU method (four 16-bit blocks, ten float64 GEMMs: :func:`block_matmul_10`).

The products use the context's default protocol: for two parties with local truncation the
doubled Beaver form (one ring matmul per party online, one at the dealer; ``beaver`` column).
Every row reports ``hecrypt_s`` = **total** seconds (offline + online: the dealer's triples
are produced on demand, all parties' work in this one process), ``online_s`` (the same
product with the triple precomputed by ``ctx.dealer.precompute_*``), ``offline_s`` (the
dealer's share of the total, from ``ctx.timing``), the online ``bytes``, ``rounds`` and
``messages``, the dealer's ``offline_bytes``, and ``max_abs_err`` against float64.

Baseline: CrypTen 0.4.1 (2 processes, its trusted-first-party provider, 16 fractional bits),
run in the peers venv (``hecrypt.benchmarks.peers``) when present; its ``online`` figure is
measured with CrypTen's own trace / fill_cache precomputation.  Without CrypTen the baseline
is the plaintext float64 product in numpy (the floor: what the computation costs with no
privacy at all).  Inputs are public benchmark data from numpy's generator.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._harness import Bench
from .peers import peer_call

SUITE = "smpc"
DESCRIPTION = ("secret-shared matmul (Beaver + truncation) and elementwise product, 2 parties, "
               "total / online / offline seconds, bytes and rounds; vs CrypTen (or numpy float64)")

SIZES = (128, 512, 1024)   # shared matmul n (CPU and GPU)
GPU_SIZES = (4096,)         # GPU only
ELEMENTS = 10 ** 6          # shared elementwise product

_CRYPTEN_SNIPPET = """
import statistics, time
import torch
import crypten
import crypten.communicator as comm
from crypten.mpc.context import run_multiprocess

def job():
    torch.set_num_threads(ARGS["threads"])
    prov = crypten.mpc.get_default_provider()
    out = {}
    for kind, n in ARGS["cases"]:
        g = torch.Generator().manual_seed(1000 + n)
        shape = (n, n) if kind == "matmul" else (n,)
        a = torch.rand(shape, generator=g) * 2 - 1
        b = torch.rand(shape, generator=g) * 2 - 1
        op = (lambda x, y: x.matmul(y)) if kind == "matmul" else (lambda x, y: x * y)
        x = crypten.cryptensor(a, src=0)
        y = crypten.cryptensor(b, src=1)
        z = op(x, y)
        err = (z.get_plain_text() - (a @ b if kind == "matmul" else a * b)).abs().max().item()
        rep = ARGS["repeat"]
        tot, onl = [], []
        for _ in range(rep):
            comm.get().barrier()
            t0 = time.perf_counter()
            op(x, y)
            tot.append(time.perf_counter() - t0)
        for _ in range(rep):
            crypten.trace()
            op(x, y)
            crypten.trace(False)
            crypten.fill_cache()
            comm.get().barrier()
            t0 = time.perf_counter()
            op(x, y)
            onl.append(time.perf_counter() - t0)
            prov.tuple_cache = {}
            prov.request_cache = []
        out[f"{kind}{n}"] = {"total": statistics.median(tot), "online": statistics.median(onl), "err": err}
    return out

res = run_multiprocess(world_size=2)(job)()
if res is None:
    raise SystemExit("crypten parties failed")
merged = {}
for k in res[0]:
    merged[k] = {m: max(r[k][m] for r in res) for m in ("total", "online", "err")}
emit({"crypten": crypten.__version__, "torch": torch.__version__, "s": merged})
"""


def block_matmul_10(a: Any, b: Any, xp: Any = np) -> Any:
    """CrypTen's GPU ring matmul (``crypten/cuda/cuda_tensor.py``) for Z_2^64: split each
    operand into four 16-bit blocks, run the 10 float64 block products with ``i + j < 4``
    and add them back with shifts (exact for K <= 2^21).  ``xp`` is numpy or CuPy (obtained
    from the backend); used as the GPU baseline of the same Beaver protocol."""
    A = [((a >> np.uint64(16 * i)) & np.uint64(0xFFFF)).astype(xp.float64) for i in range(4)]
    B = [((b >> np.uint64(16 * j)) & np.uint64(0xFFFF)).astype(xp.float64) for j in range(4)]
    acc = None
    for i in range(4):
        for j in range(4 - i):
            p = xp.matmul(A[i], B[j]).astype(xp.uint64) << np.uint64(16 * (i + j))
            acc = p if acc is None else acc + p
    return acc


def _block_ring() -> Any:
    """Z_2^64 whose matmul is :func:`block_matmul_10` (everything else unchanged)."""
    from ..backend import backend_of
    from ..ring import Ring

    class BlockRing(Ring):
        __slots__ = ()

        def matmul(self, a: Any, b: Any) -> Any:
            self._pair(a, b)
            return block_matmul_10(a, b, backend_of(a).xp)

    return BlockRing(1 << 64)


def _crypten(cases: list[tuple[str, int]], repeat: int, bench: Bench) -> tuple[dict | None, str | None]:
    res, why = peer_call(_CRYPTEN_SNIPPET, {"cases": cases, "repeat": repeat, "threads": 1}, timeout=900)
    if res is None:
        bench.log(f"[smpc] CrypTen baseline unavailable: {why}")
        return None, why
    return res, None


def _plain_time(bench: Bench, A: np.ndarray, B: np.ndarray, kind: str) -> float:
    """The plaintext float64 product on the bench's device (numpy or CuPy): the floor."""
    from ..backend import get_backend

    xp = get_backend(bench.device).xp
    a, b = xp.asarray(A), xp.asarray(B)
    fn = (lambda: xp.matmul(a, b)) if kind == "matmul" else (lambda: xp.multiply(a, b))
    return bench.time(fn, repeat=3)


def _measure(bench: Bench, ctx: Any, a: Any, b: Any, op: Any, pre: Any, ref: np.ndarray,
             slow: bool) -> dict[str, Any]:
    """Total (triple on demand), online (triple precomputed), offline (dealer) for one product."""
    c = op(a, b)  # warm-up (JIT, caches)
    err = float(np.max(np.abs(c.reveal() - ref)))
    repeat = 1 if (slow and bench.quick) else (3 if slow or bench.quick else 5)
    tot, onl, off = [], [], []
    st = None
    for _ in range(repeat):
        ctx.reset_stats()
        bench.sync()
        t0 = time.perf_counter()
        op(a, b)
        bench.sync()
        tot.append(time.perf_counter() - t0)
        off.append(ctx.timing.offline_s)
        offline_bytes = ctx.stats.by_phase["offline"]["bytes_sent"]
        pre()
        ctx.reset_stats()
        bench.sync()
        t0 = time.perf_counter()
        op(a, b)
        bench.sync()
        onl.append(time.perf_counter() - t0)
        st = ctx.stats.snapshot()
    return {"total": float(np.median(tot)), "online": float(np.median(onl)), "offline": float(np.median(off)),
            "bytes": st["by_phase"]["online"]["bytes_sent"], "rounds": st["by_phase"]["online"]["rounds"],
            "messages": st["by_phase"]["online"]["messages"], "offline_bytes": offline_bytes, "err": err}


def run(bench: Bench) -> None:
    from ..smpc import SMPCContext
    from ..smpc.protocols import doubled_products

    dev = bench.device
    sizes = list(SIZES) + (list(GPU_SIZES) if dev == "cuda" else [])
    elems = ELEMENTS
    rng = np.random.default_rng(2024)
    ctx = SMPCContext(parties=("alice", "bob"), ring="Z2_64", frac_bits=16, device=dev)
    # which Beaver form the fixed-point products use (docs/smpc.md): "doubled" = one ring
    # product per party online and one at the dealer
    beaver = "doubled" if doubled_products(ctx) else "ordinary"

    base = None
    if dev == "cpu":
        cases = [("matmul", n) for n in sizes if n <= 1024] + [("mul", elems)]
        base, _ = _crypten(cases, 3 if bench.quick else 5, bench)

    def row(case: str, key: str, m: dict, plain_s: float, extra: dict) -> None:
        cp = (base or {}).get("s", {}).get(key) if base else None
        if cp is not None:
            bname, bs = f"CrypTen {base.get('crypten', '')} (2 proc)", cp["total"]
            extra = {**extra, "baseline_online_s": cp["online"], "baseline_max_abs_err": cp["err"],
                     "online_speedup": (cp["online"] / m["online"]) if m["online"] else None,
                     "online_vs_baseline_total": (cp["total"] / m["online"]) if m["online"] else None}
        else:
            bname, bs = f"{'CuPy' if dev == 'cuda' else 'numpy'} float64 (plaintext floor)", plain_s
        bench.record(case, m["total"], bname, bs, online_s=m["online"], offline_s=m["offline"],
                     bytes=m["bytes"], rounds=m["rounds"], messages=m["messages"],
                     offline_bytes=m["offline_bytes"], max_abs_err=m["err"], plaintext_s=plain_s,
                     truncation=ctx.truncation, beaver=beaver, **extra)

    for n in sizes:
        A = rng.uniform(-1, 1, (n, n))
        B = rng.uniform(-1, 1, (n, n))
        a, b = ctx.share(A, owner="alice"), ctx.share(B, owner="bob")
        ref = A @ B
        plain_s = _plain_time(bench, A, B, "matmul")
        m = _measure(bench, ctx, a, b, lambda x, y: x @ y,
                     lambda: ctx.dealer.precompute_matmul((n, n), (n, n)), ref, slow=n >= 1024)
        row(f"shared matmul n={n} (Z2_64, f=16)", f"matmul{n}", m, plain_s, {"n": n})
        del a, b

    if dev == "cuda":
        # the same protocol on CrypTen's 10-product float64-block matmul, at the largest size
        n = sizes[-1]
        bctx = SMPCContext(parties=("alice", "bob"), ring=_block_ring(), frac_bits=16, device=dev)
        A = rng.uniform(-1, 1, (n, n))
        B = rng.uniform(-1, 1, (n, n))
        a, b = ctx.share(A, owner="alice"), ctx.share(B, owner="bob")
        ba, bb = bctx.share(A, owner="alice"), bctx.share(B, owner="bob")
        mine = _measure(bench, ctx, a, b, lambda x, y: x @ y,
                        lambda: ctx.dealer.precompute_matmul((n, n), (n, n)), A @ B, slow=True)
        blk = _measure(bench, bctx, ba, bb, lambda x, y: x @ y,
                       lambda: bctx.dealer.precompute_matmul((n, n), (n, n)), A @ B, slow=True)
        bench.record(f"shared matmul n={n} vs 10-block float64 ring matmul", mine["total"],
                     "same protocol, CrypTen-style 10-GEMM matmul", blk["total"], online_s=mine["online"],
                     offline_s=mine["offline"], baseline_online_s=blk["online"], max_abs_err=mine["err"],
                     baseline_max_abs_err=blk["err"], bytes=mine["bytes"], rounds=mine["rounds"], n=n,
                     online_speedup=(blk["online"] / mine["online"]) if mine["online"] else None)
        del a, b, ba, bb

    A = rng.uniform(-1, 1, elems)
    B = rng.uniform(-1, 1, elems)
    a, b = ctx.share(A, owner="alice"), ctx.share(B, owner="bob")
    plain_s = _plain_time(bench, A, B, "mul")
    m = _measure(bench, ctx, a, b, lambda x, y: x * y, lambda: ctx.dealer.precompute_mul((elems,)),
                 A * B, slow=False)
    row(f"shared mul {elems:.0e} elems (Z2_64, f=16)", f"mul{elems}", m, plain_s, {"elements": elems})
