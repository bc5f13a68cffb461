// RNS polynomial kernels for CKKS: negacyclic NTT / inverse NTT, pointwise modular arithmetic,
// fast RNS basis conversion and Galois automorphisms.  Counterpart of hecrypt/backend/he_cpu.py
// (Numba); every kernel returns the unique residue in [0, q), so both are bit-identical.
//
// Layout: a polynomial batch is a C-contiguous uint64 array (B, L, N); row r = b*L + l uses
// modulus qs[l] and table row l.  One launch covers every limb and batch entry.
//
// Numeric contract (same as hecrypt/backend/ntt.py):
//   * moduli: odd q < 2^61 (NTT: primes q = 1 mod 2N); inputs fully reduced in [0, q).
//   * Shoup: w' = floor(w 2^64 / q); hk_shoup_lazy(w, w', y, q) = w*y - umulhi(w', y)*q lies in
//     [0, 2q) for any 64-bit y.
//   * Forward NTT (Cooley-Tukey, natural order in, bit-reversed out, twiddles psi_rev[m + i] =
//     psi^brv(m + i)): Harvey butterflies keep values in [0, 4q) (4q < 2^63); the last stage
//     reduces to [0, q).
//   * Inverse NTT (Gentleman-Sande, twiddles ipsi_rev[h + i] = psi^-brv(h + i)): values in
//     [0, 2q); the last stage (span N/2) is fused with the N^-1 scaling (twiddle
//     last = ipsi_rev[1] * N^-1) and reduces to [0, q).
//   * 128-bit Barrett: (rhi, rlo) = floor(2^128 / q); reduces any 128-bit value, estimate
//     error < 2, one conditional subtraction (SEAL's barrett_reduce_128).
//
// Two launches per transform, each reading and writing the data once, all stages in shared
// memory (C = 2^logC = min(N, 2048) coefficients, 16 KiB per block):
//   * "smem" kernels: the stages with span t <= C/2, on contiguous chunks of C coefficients;
//   * "outer" kernels (only when N > C): the S = log2(N/C) stages with span >= C, on tiles of
//     2^S strided coefficients x J = C/2^S consecutive columns (coalesced rows of J words).
// Forward: outer then smem; inverse: smem then outer.  hecrypt/backend/he_cuda.py
// (ntt_launches) plans the launches.
//
// The same file compiles as plain C++ with -DHK_HOST_EMULATION (tests/test_ntt.py): thread
// loops then run sequentially (one "thread" of stride 1), each kernel takes the block index
// and a shared-memory buffer as extra arguments, and the host test replays the launch plan.
#include "common/modarith.cuh"

typedef hc_u64 u64;

#if defined(HK_HOST_EMULATION)
#define HK_KERNEL extern "C" void
#define HK_EMU_ARGS , long long hk_block, u64* hk_smem
#define HK_SHARED(name) u64* name = hk_smem
#define HK_BLOCK (hk_block)
#define HK_TID 0
#define HK_NT 1
#define HK_SYNC() ((void)0)
#define HK_GRID_STRIDE(i, n) for (long long i = 0; i < (n); ++i)
#else
#define HK_KERNEL extern "C" __global__ void
#define HK_EMU_ARGS
#define HK_SHARED(name) extern __shared__ u64 name[]
#define HK_BLOCK ((long long)blockIdx.x)
#define HK_TID ((int)threadIdx.x)
#define HK_NT ((int)blockDim.x)
#define HK_SYNC() __syncthreads()
#define HK_GRID_STRIDE(i, n)                                                           \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);       \
         i += (long long)blockDim.x * gridDim.x)
#endif

// w*y mod q in [0, 2q) for w < q < 2^63, wp = floor(w 2^64 / q), any 64-bit y.
HC_HD u64 hk_shoup_lazy(u64 w, u64 wp, u64 y, u64 q) { return w * y - hc_umulhi(wp, y) * q; }

// (hi 2^64 + lo) mod q for any 128-bit value; (rhi, rlo) = floor(2^128 / q). Output in [0, q).
HC_HD u64 hk_barrett128(u64 hi, u64 lo, u64 q, u64 rhi, u64 rlo) {
    const u64 carry = hc_umulhi(lo, rlo);
    const u64 t2lo = lo * rhi;
    u64 t2hi = hc_umulhi(lo, rhi);
    const u64 t1 = t2lo + carry;
    t2hi += (t1 < t2lo) ? 1ULL : 0ULL;
    const u64 u_lo = hi * rlo;
    u64 u_hi = hc_umulhi(hi, rlo);
    u_hi += ((t1 + u_lo) < t1) ? 1ULL : 0ULL;
    const u64 qest = hi * rhi + t2hi + u_hi;
    u64 r = lo - qest * q;
    return (r >= q) ? r - q : r;
}

// ---------------------------------------------------------------------------------------
// butterflies
// ---------------------------------------------------------------------------------------
// Forward (CT): x, y in [0, 4q) -> x', y' in [0, 4q).
HC_HD void hk_ct(u64* x, u64* y, u64 w, u64 wp, u64 q, u64 two_q) {
    u64 u = *x;
    u = (u >= two_q) ? u - two_q : u;
    const u64 v = hk_shoup_lazy(w, wp, *y, q);
    *x = u + v;
    *y = u - v + two_q;
}

// Inverse (GS): x, y in [0, 2q) -> x', y' in [0, 2q).
HC_HD void hk_gs(u64* x, u64* y, u64 w, u64 wp, u64 q, u64 two_q) {
    const u64 u = *x, v = *y;
    u64 s = u + v;
    *x = (s >= two_q) ? s - two_q : s;
    *y = hk_shoup_lazy(w, wp, u - v + two_q, q);
}

// Last inverse stage fused with N^-1: x, y in [0, 2q) -> [0, q).
HC_HD void hk_gs_last(u64* x, u64* y, u64 ni, u64 nip, u64 w, u64 wp, u64 q, u64 two_q) {
    const u64 u = *x, v = *y;
    u64 a = hk_shoup_lazy(ni, nip, u + v, q);
    u64 b = hk_shoup_lazy(w, wp, u - v + two_q, q);
    *x = (a >= q) ? a - q : a;
    *y = (b >= q) ? b - q : b;
}

HC_HD u64 hk_reduce4(u64 x, u64 q, u64 two_q) {
    x = (x >= two_q) ? x - two_q : x;
    return (x >= q) ? x - q : x;
}

// Butterfly k in [0, N/2) of a stage with span t = 2^logt: returns the index j of its first
// element (partner j + t) and its group i (twiddle index m + i, or h + i for the inverse).
HC_HD long long hk_pair(long long k, int logt, long long* group) {
    const long long i = k >> logt;
    *group = i;
    return (i << (logt + 1)) + (k & ((1LL << logt) - 1));
}

// ---------------------------------------------------------------------------------------
// NTT kernels
// ---------------------------------------------------------------------------------------
// Forward stages s = 0 .. S-1 (S = logN - logC; spans N/2 .. C) in shared memory.  These
// stages only combine coefficients x = j + k*C with the same j, so a block takes a tile of
// all 2^S values of k for J = 2^(logC - S) consecutive j (C coefficients, sm[k*J + jj]).
// Needs logN <= 2*logC.  Output lazy in [0, 4q) for hk_ntt_fwd_smem.  Grid: R * 2^S blocks.
HK_KERNEL hk_ntt_fwd_outer(u64* __restrict__ a, const u64* __restrict__ psi, const u64* __restrict__ psip,
                           const u64* __restrict__ qs, int L, int logN, long long R,
                           int logC HK_EMU_ARGS) {
    HK_SHARED(sm);
    const int S = logN - logC;
    const int logJ = logC - S;
    const long long blk = HK_BLOCK;
    const long long r = blk >> S;
    const long long j0 = (blk & ((1LL << S) - 1)) << logJ;
    const int l = (int)(r % L);
    const u64 q = qs[l], two_q = q + q;
    const int C = 1 << logC;
    const int J = 1 << logJ;
    u64* base = a + (r << logN) + j0;
    const u64* w_row = psi + ((long long)l << logN);
    const u64* wp_row = psip + ((long long)l << logN);
    for (int c = HK_TID; c < C; c += HK_NT) sm[c] = base[((long long)(c >> logJ) << logC) + (c & (J - 1))];
    HK_SYNC();
    for (int s = 0; s < S; ++s) {
        const int logks = S - 1 - s;  // span in k
        for (int b = HK_TID; b < (C >> 1); b += HK_NT) {
            const int jj = b & (J - 1);
            long long i;
            const long long k = hk_pair(b >> logJ, logks, &i);
            const long long tw = (1LL << s) + i;
            hk_ct(sm + (k << logJ) + jj, sm + ((k + (1LL << logks)) << logJ) + jj, w_row[tw], wp_row[tw], q,
                  two_q);
        }
        HK_SYNC();
    }
    for (int c = HK_TID; c < C; c += HK_NT) base[((long long)(c >> logJ) << logC) + (c & (J - 1))] = sm[c];
}

// Forward stages s0 = logN - logC .. logN-1 (spans C/2 .. 1) of one chunk of C = 2^logC
// coefficients per block, in shared memory (C * 8 bytes); input in [0, 4q), final reduction
// to [0, q).
// Grid: R * (N / C) blocks.
HK_KERNEL hk_ntt_fwd_smem(u64* __restrict__ a, const u64* __restrict__ psi, const u64* __restrict__ psip,
                          const u64* __restrict__ qs, int L, int logN, long long R,
                          int logC HK_EMU_ARGS) {
    HK_SHARED(sm);
    const long long nchunk = 1LL << (logN - logC);
    const long long blk = HK_BLOCK;
    const long long r = blk / nchunk;
    const long long chunk = blk % nchunk;
    const int l = (int)(r % L);
    const u64 q = qs[l], two_q = q + q;
    const int C = 1 << logC;
    u64* base = a + (r << logN) + (chunk << logC);
    const u64* w_row = psi + ((long long)l << logN);
    const u64* wp_row = psip + ((long long)l << logN);
    for (int c = HK_TID; c < C; c += HK_NT) sm[c] = base[c];
    HK_SYNC();
    const int s0 = logN - logC;
    for (int s = s0; s < logN; ++s) {
        const int logt = logN - 1 - s;
        const long long m = 1LL << s;
        // groups of this chunk start at chunk * (C / 2t)
        const long long g0 = chunk << (logC - 1 - logt);
        for (int k = HK_TID; k < (C >> 1); k += HK_NT) {
            long long i;
            const long long j = hk_pair(k, logt, &i);
            const long long tw = m + g0 + i;
            hk_ct(sm + j, sm + j + (1LL << logt), w_row[tw], wp_row[tw], q, two_q);
        }
        HK_SYNC();
    }
    for (int c = HK_TID; c < C; c += HK_NT) base[c] = hk_reduce4(sm[c], q, two_q);
}

// Inverse stages with spans 1 .. C/2 (h = N/2 .. N/C groups) of one chunk, in shared memory.
// If C == N the last stage (span N/2) is fused with N^-1 and the output is in [0, q);
// otherwise the output is in [0, 2q) and hk_ntt_inv_outer finishes.
HK_KERNEL hk_ntt_inv_smem(u64* __restrict__ a, const u64* __restrict__ ipsi, const u64* __restrict__ ipsip,
                          const u64* __restrict__ qs, const u64* __restrict__ ninv,
                          const u64* __restrict__ ninvp, const u64* __restrict__ last,
                          const u64* __restrict__ lastp, int L, int logN, long long R,
                          int logC HK_EMU_ARGS) {
    HK_SHARED(sm);
    const long long nchunk = 1LL << (logN - logC);
    const long long blk = HK_BLOCK;
    const long long r = blk / nchunk;
    const long long chunk = blk % nchunk;
    const int l = (int)(r % L);
    const u64 q = qs[l], two_q = q + q;
    const int C = 1 << logC;
    u64* base = a + (r << logN) + (chunk << logC);
    const u64* w_row = ipsi + ((long long)l << logN);
    const u64* wp_row = ipsip + ((long long)l << logN);
    for (int c = HK_TID; c < C; c += HK_NT) sm[c] = base[c];
    HK_SYNC();
    const int fused = (logC == logN);
    const int nstages = fused ? logC - 1 : logC;
    for (int logt = 0; logt < nstages; ++logt) {
        const long long h = 1LL << (logN - 1 - logt);
        const long long g0 = chunk << (logC - 1 - logt);
        for (int k = HK_TID; k < (C >> 1); k += HK_NT) {
            long long i;
            const long long j = hk_pair(k, logt, &i);
            const long long tw = h + g0 + i;
            hk_gs(sm + j, sm + j + (1LL << logt), w_row[tw], wp_row[tw], q, two_q);
        }
        HK_SYNC();
    }
    if (fused) {
        const int t = C >> 1;
        for (int k = HK_TID; k < t; k += HK_NT)
            hk_gs_last(sm + k, sm + k + t, ninv[l], ninvp[l], last[l], lastp[l], q, two_q);
        HK_SYNC();
    }
    for (int c = HK_TID; c < C; c += HK_NT) base[c] = sm[c];
}

// Inverse stages with spans C .. N/2 (the mirror of hk_ntt_fwd_outer, same tiles), after
// hk_ntt_inv_smem; the last stage (span N/2) is fused with N^-1 and the output is in [0, q).
HK_KERNEL hk_ntt_inv_outer(u64* __restrict__ a, const u64* __restrict__ ipsi, const u64* __restrict__ ipsip,
                           const u64* __restrict__ qs, const u64* __restrict__ ninv,
                           const u64* __restrict__ ninvp, const u64* __restrict__ last,
                           const u64* __restrict__ lastp, int L, int logN, long long R,
                           int logC HK_EMU_ARGS) {
    HK_SHARED(sm);
    const int S = logN - logC;
    const int logJ = logC - S;
    const long long blk = HK_BLOCK;
    const long long r = blk >> S;
    const long long j0 = (blk & ((1LL << S) - 1)) << logJ;
    const int l = (int)(r % L);
    const u64 q = qs[l], two_q = q + q;
    const int C = 1 << logC;
    const int J = 1 << logJ;
    u64* base = a + (r << logN) + j0;
    const u64* w_row = ipsi + ((long long)l << logN);
    const u64* wp_row = ipsip + ((long long)l << logN);
    for (int c = HK_TID; c < C; c += HK_NT) sm[c] = base[((long long)(c >> logJ) << logC) + (c & (J - 1))];
    HK_SYNC();
    for (int logks = 0; logks < S - 1; ++logks) {
        const long long h = 1LL << (S - 1 - logks);  // groups: N / (2t) with t = C * 2^logks
        for (int b = HK_TID; b < (C >> 1); b += HK_NT) {
            const int jj = b & (J - 1);
            long long i;
            const long long k = hk_pair(b >> logJ, logks, &i);
            const long long tw = h + i;
            hk_gs(sm + (k << logJ) + jj, sm + ((k + (1LL << logks)) << logJ) + jj, w_row[tw], wp_row[tw], q,
                  two_q);
        }
        HK_SYNC();
    }
    {
        const int logks = S - 1;  // last stage: span N/2, one group
        for (int b = HK_TID; b < (C >> 1); b += HK_NT) {
            const int jj = b & (J - 1);
            const long long k = b >> logJ;
            hk_gs_last(sm + (k << logJ) + jj, sm + ((k + (1LL << logks)) << logJ) + jj, ninv[l], ninvp[l],
                       last[l], lastp[l], q, two_q);
        }
        HK_SYNC();
    }
    for (int c = HK_TID; c < C; c += HK_NT) base[((long long)(c >> logJ) << logC) + (c & (J - 1))] = sm[c];
}

// ---------------------------------------------------------------------------------------
// pointwise kernels over out (B, L, N): n_total = B*L*N; an operand whose batch is 1 is
// broadcast (flag *_b1 = 1 reads index (l, n) for every batch entry).
// ---------------------------------------------------------------------------------------
HC_HD long long hk_src(long long g, long long LN, int b1) { return b1 ? (g % LN) : g; }

HK_KERNEL hk_rns_add(const u64* __restrict__ a, const u64* __restrict__ b, u64* __restrict__ out,
                     const u64* __restrict__ qs, int L, int logN, long long n_total, int a_b1,
                     int b_b1 HK_EMU_ARGS) {
    const long long LN = (long long)L << logN;
    HK_GRID_STRIDE(g, n_total) {
        const u64 q = qs[(g >> logN) % L];
        const u64 s = a[hk_src(g, LN, a_b1)] + b[hk_src(g, LN, b_b1)];
        out[g] = (s >= q) ? s - q : s;
    }
}

HK_KERNEL hk_rns_sub(const u64* __restrict__ a, const u64* __restrict__ b, u64* __restrict__ out,
                     const u64* __restrict__ qs, int L, int logN, long long n_total, int a_b1,
                     int b_b1 HK_EMU_ARGS) {
    const long long LN = (long long)L << logN;
    HK_GRID_STRIDE(g, n_total) {
        const u64 q = qs[(g >> logN) % L];
        const u64 s = a[hk_src(g, LN, a_b1)] - b[hk_src(g, LN, b_b1)] + q;
        out[g] = (s >= q) ? s - q : s;
    }
}

HK_KERNEL hk_rns_neg(const u64* __restrict__ a, u64* __restrict__ out, const u64* __restrict__ qs, int L,
                     int logN, long long n_total HK_EMU_ARGS) {
    HK_GRID_STRIDE(g, n_total) {
        const u64 q = qs[(g >> logN) % L];
        const u64 v = a[g];
        out[g] = (v == 0ULL) ? 0ULL : q - v;
    }
}

HK_KERNEL hk_rns_mul(const u64* __restrict__ a, const u64* __restrict__ b, u64* __restrict__ out,
                     const u64* __restrict__ qs, const u64* __restrict__ rhi, const u64* __restrict__ rlo,
                     int L, int logN, long long n_total, int a_b1, int b_b1 HK_EMU_ARGS) {
    const long long LN = (long long)L << logN;
    HK_GRID_STRIDE(g, n_total) {
        const int l = (int)((g >> logN) % L);
        const u64 x = a[hk_src(g, LN, a_b1)], y = b[hk_src(g, LN, b_b1)];
        out[g] = hk_barrett128(hc_umulhi(x, y), x * y, qs[l], rhi[l], rlo[l]);
    }
}

HK_KERNEL hk_rns_fma(const u64* __restrict__ acc, const u64* __restrict__ a, const u64* __restrict__ b,
                     u64* out, const u64* __restrict__ qs, const u64* __restrict__ rhi,
                     const u64* __restrict__ rlo, int L, int logN, long long n_total, int c_b1, int a_b1,
                     int b_b1 HK_EMU_ARGS) {
    // out may alias acc (in-place accumulation): each element is read before it is written.
    const long long LN = (long long)L << logN;
    HK_GRID_STRIDE(g, n_total) {
        const int l = (int)((g >> logN) % L);
        const u64 x = a[hk_src(g, LN, a_b1)], y = b[hk_src(g, LN, b_b1)];
        const u64 plo = x * y;
        u64 phi = hc_umulhi(x, y);
        const u64 s = plo + acc[hk_src(g, LN, c_b1)];
        phi += (s < plo) ? 1ULL : 0ULL;
        out[g] = hk_barrett128(phi, s, qs[l], rhi[l], rlo[l]);
    }
}

// out[g] = sum_k a[k, ia[b], l, n] * b[k, ib[b], l, n] mod q_l for g = (b, l, n): the inner
// product over the leading axis (key switching), a and b batch-broadcast through the index
// maps ia/ib; 128-bit lazy sums (products < 2^122) reduced every 63 terms.
HK_KERNEL hk_rns_dot(const u64* __restrict__ a, const u64* __restrict__ b, u64* __restrict__ out,
                     const long long* __restrict__ ia, const long long* __restrict__ ib,
                     const u64* __restrict__ qs, const u64* __restrict__ rhi, const u64* __restrict__ rlo,
                     int L, int logN, int K, long long a_stride, long long b_stride,
                     long long n_total HK_EMU_ARGS) {
    const long long LN = (long long)L << logN;
    HK_GRID_STRIDE(g, n_total) {
        const long long bi = g / LN;
        const long long rem = g - bi * LN;
        const int l = (int)(rem >> logN);
        const u64 q = qs[l], h = rhi[l], lo = rlo[l];
        const u64* pa = a + ia[bi] * LN + rem;
        const u64* pb = b + ib[bi] * LN + rem;
        u64 shi = 0ULL, slo = 0ULL;
        for (int k = 0; k < K; ++k) {
            const u64 x = pa[(long long)k * a_stride], y = pb[(long long)k * b_stride];
            const u64 plo = x * y;
            slo += plo;
            shi += hc_umulhi(x, y) + ((slo < plo) ? 1ULL : 0ULL);
            if (k % 63 == 62 && k + 1 < K) {
                slo = hk_barrett128(shi, slo, q, h, lo);
                shi = 0ULL;
            }
        }
        out[g] = hk_barrett128(shi, slo, q, h, lo);
    }
}

// out = a * s_l mod q_l (Shoup with sp_l = floor(s_l 2^64 / q_l), s_l < q_l).
HK_KERNEL hk_rns_mul_scalar(const u64* __restrict__ a, u64* __restrict__ out, const u64* __restrict__ qs,
                            const u64* __restrict__ s, const u64* __restrict__ sp, int L, int logN,
                            long long n_total HK_EMU_ARGS) {
    HK_GRID_STRIDE(g, n_total) {
        const int l = (int)((g >> logN) % L);
        const u64 q = qs[l];
        const u64 v = hk_shoup_lazy(s[l], sp[l], a[g], q);
        out[g] = (v >= q) ? v - q : v;
    }
}

// ---------------------------------------------------------------------------------------
// fast basis conversion (FastBConv): a (B, Lf, N) over fq -> out (B, Lt, N) over tq.
// y_i = [a_i * qinv_i]_{q_i};  out_j = (sum_i y_i * qhat_p[j, i]) mod p_j, the sum of at most
// 63 products < 2^122 accumulated exactly in 128 bits.  One thread per (b, n).
// ---------------------------------------------------------------------------------------
#define HK_MAX_BCONV 63

HK_KERNEL hk_base_convert(const u64* __restrict__ a, u64* __restrict__ out, const u64* __restrict__ fq,
                          const u64* __restrict__ qinv, const u64* __restrict__ qinvp,
                          const u64* __restrict__ qhat_p, const u64* __restrict__ tq,
                          const u64* __restrict__ rhi, const u64* __restrict__ rlo, int Lf, int Lt,
                          int logN, long long n_total HK_EMU_ARGS) {
    // n_total = B * N
    const long long N = 1LL << logN;
    HK_GRID_STRIDE(g, n_total) {
        const long long b = g >> logN;
        const long long n = g & (N - 1);
        u64 y[HK_MAX_BCONV];
        const u64* src = a + b * Lf * N + n;
        for (int i = 0; i < Lf; ++i) {
            const u64 q = fq[i];
            const u64 v = hk_shoup_lazy(qinv[i], qinvp[i], src[(long long)i * N], q);
            y[i] = (v >= q) ? v - q : v;
        }
        u64* dst = out + b * Lt * N + n;
        for (int j = 0; j < Lt; ++j) {
            const u64* c = qhat_p + (long long)j * Lf;
            u64 shi = 0ULL, slo = 0ULL;
            for (int i = 0; i < Lf; ++i) {
                const u64 plo = y[i] * c[i];
                const u64 phi = hc_umulhi(y[i], c[i]);
                slo += plo;
                shi += phi + ((slo < plo) ? 1ULL : 0ULL);
            }
            dst[(long long)j * N] = hk_barrett128(shi, slo, tq[j], rhi[j], rlo[j]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Galois automorphism as a gather: out[r, i] = +/- a[r, perm[i] & 0x7fffffff], negated mod q
// when bit 31 of perm[i] is set (coefficient form); NTT form has no sign bits.
// ---------------------------------------------------------------------------------------
HK_KERNEL hk_gather(const u64* __restrict__ a, u64* __restrict__ out, const unsigned int* __restrict__ perm,
                    const u64* __restrict__ qs, int L, int logN, long long n_total HK_EMU_ARGS) {
    const long long N = 1LL << logN;
    HK_GRID_STRIDE(g, n_total) {
        const long long r = g >> logN;
        const unsigned int p = perm[g & (N - 1)];
        u64 v = a[(r << logN) + (long long)(p & 0x7fffffffu)];
        if ((p >> 31) && v != 0ULL) v = qs[r % L] - v;
        out[g] = v;
    }
}
