// Fused split / recombine kernels of the exact float64 limb matmul (the GEMMs between them
// run on cuBLAS float64 through cupy.matmul).  Layout and steps are exactly those of
// CPUBackend.matmul (hecrypt/backend/cpu.py, limb_plan):
//
//   ring      limbs L  width W  diagonals D   signed representative
//   Z_2^64    3        22       3             int64 view
//   Z_2^32    2        16       2             int32 view
//   Z_q       1,2,3    22       2L-1          u > (q-1)/2 ? u - q : u   (odd q < 2^62; L is the
//                                                                           fewest limbs q needs)
//
// split_rows_*    : A[b, m, c0 + kk] (row stride lda = K, batch stride sa; kk < kc)
//                   -> out[b, m, i*kc + kk], limbs i = 0 .. L-1        (out: (B, M, L*kc))
// split_cols_*    : B[b, c0 + kk, n] (row stride N, batch stride sb)
//                   -> out[b, (L-1-i)*kc + kk, n], limb blocks L-1 .. 0 (out: (B, L*kc, N))
// recombine_pow2_*: acc[i] += sum_d int64(diag[d, i]) << (W d)   (wrapping, uint64 / uint32)
// recombine_zq    : acc[i] = (acc[i] + sum_d (diag[d, i] mod q) * pow_d) mod q, pow_d = 2^(W d) mod q
//
// Z_2^64 Karatsuba variant (CPUBackend._matmul64_karatsuba; 4 GEMM calls worth 5 GEMMs):
// split64k_rows   : A -> out[b, m, :] = [a0 | a2 | a1 | a0 + a1]   (blocks of kc; out: (B, M, 4*kc))
// split64k_cols   : B -> out[b, :, n] = [b2; b0; b1; b0 + b1]      (out: (B, 4*kc, N))
// recombine64k    : acc[i] += P00 + (Pk - P00 - P11) 2^22 + D2 2^42 + P11 2^44, p = [D2, P00, P11, Pk]
// The diagonal sums must be exact integers (|x| < 2^53): the caller chunks K at
// limb_plan(bits, q).kmax.  Grid-stride loops, 64-bit indices.
#include "common/ring.cuh"

typedef unsigned long long u64;
typedef unsigned int u32;

#define HC_GRID_STRIDE(i, n)                                                           \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);       \
         i += (long long)blockDim.x * gridDim.x)

struct SignedU64 {
    typedef u64 T;
    __device__ __forceinline__ hc_i64 operator()(u64 u) const { return hc_signed_u64(u); }
};
struct SignedU32 {
    typedef u32 T;
    __device__ __forceinline__ hc_i64 operator()(u32 u) const { return hc_signed_u32(u); }
};
struct SignedZq {
    typedef u64 T;
    u64 q;
    __device__ __forceinline__ hc_i64 operator()(u64 u) const { return hc_signed_zq(u, q); }
};

template <int L, int W, class S>
__device__ __forceinline__ void split_rows(const S sg, const typename S::T* __restrict__ A,
                                           double* __restrict__ out, long long nb, long long M, long long K,
                                           long long sa, long long c0, long long kc) {
    const long long n = nb * M * kc;
    HC_GRID_STRIDE(t, n) {
        const long long kk = t % kc;
        const long long bm = t / kc;  // b * M + m
        const long long b = bm / M, m = bm - b * M;
        double limbs[L];
        hc_split_limbs<L, W>(sg(A[b * sa + m * K + c0 + kk]), limbs);
        double* o = out + bm * (L * kc) + kk;
#pragma unroll
        for (int i = 0; i < L; ++i) o[i * kc] = limbs[i];
    }
}

template <int L, int W, class S>
__device__ __forceinline__ void split_cols(const S sg, const typename S::T* __restrict__ Bm,
                                           double* __restrict__ out, long long nb, long long N,
                                           long long sb, long long c0, long long kc) {
    const long long n = nb * kc * N;
    HC_GRID_STRIDE(t, n) {
        const long long nn = t % N;
        const long long bk = t / N;  // b * kc + kk
        const long long b = bk / kc, kk = bk - b * kc;
        double limbs[L];
        hc_split_limbs<L, W>(sg(Bm[b * sb + (c0 + kk) * N + nn]), limbs);
        double* o = out + b * (L * kc * N) + kk * N + nn;
#pragma unroll
        for (int i = 0; i < L; ++i) o[(L - 1 - i) * kc * N] = limbs[i];
    }
}

template <class T, int D, int W>
__device__ __forceinline__ void recombine_pow2(const double* __restrict__ diags, T* __restrict__ acc,
                                               long long n) {
    HC_GRID_STRIDE(i, n) {
        u64 s = (u64)acc[i];
#pragma unroll
        for (int d = 0; d < D; ++d) s += hc_recombine_pow2_term(diags[d * n + i], W * d);
        acc[i] = (T)s;
    }
}

extern "C" __global__ void split_rows_u64(const u64* A, double* out, long long nb, long long M, long long K,
                                          long long sa, long long c0, long long kc) {
    split_rows<3, 22>(SignedU64(), A, out, nb, M, K, sa, c0, kc);
}
extern "C" __global__ void split_rows_u32(const u32* A, double* out, long long nb, long long M, long long K,
                                          long long sa, long long c0, long long kc) {
    split_rows<2, 16>(SignedU32(), A, out, nb, M, K, sa, c0, kc);
}
#define HC_SPLIT_ZQ(L)                                                                                 \
    extern "C" __global__ void split_rows_zq##L(const u64* A, double* out, long long nb, long long M,        \
                                               long long K, long long sa, long long c0, long long kc, u64 q) { \
        SignedZq sg;                                                                                     \
        sg.q = q;                                                                                        \
        split_rows<L, 22>(sg, A, out, nb, M, K, sa, c0, kc);                                             \
    }                                                                                                    \
    extern "C" __global__ void split_cols_zq##L(const u64* B, double* out, long long nb, long long N,        \
                                               long long sb, long long c0, long long kc, u64 q) {          \
        SignedZq sg;                                                                                     \
        sg.q = q;                                                                                        \
        split_cols<L, 22>(sg, B, out, nb, N, sb, c0, kc);                                                \
    }
// Z_q uses as few 22-bit limbs as the modulus needs (limb_plan): L = 1, 2 or 3.
HC_SPLIT_ZQ(1)
HC_SPLIT_ZQ(2)
HC_SPLIT_ZQ(3)
extern "C" __global__ void split_cols_u64(const u64* B, double* out, long long nb, long long N, long long sb,
                                          long long c0, long long kc) {
    split_cols<3, 22>(SignedU64(), B, out, nb, N, sb, c0, kc);
}
extern "C" __global__ void split_cols_u32(const u32* B, double* out, long long nb, long long N, long long sb,
                                          long long c0, long long kc) {
    split_cols<2, 16>(SignedU32(), B, out, nb, N, sb, c0, kc);
}
extern "C" __global__ void split64k_rows(const u64* __restrict__ A, double* __restrict__ out, long long nb,
                                        long long M, long long K, long long sa, long long c0, long long kc) {
    const long long n = nb * M * kc;
    HC_GRID_STRIDE(t, n) {
        const long long kk = t % kc;
        const long long bm = t / kc;
        const long long b = bm / M, m = bm - b * M;
        hc_i64 a0, a1, a2;
        hc_split64_k((hc_i64)A[b * sa + m * K + c0 + kk], &a0, &a1, &a2);
        double* o = out + bm * (4 * kc) + kk;
        o[0] = (double)a0;
        o[kc] = (double)a2;
        o[2 * kc] = (double)a1;
        o[3 * kc] = (double)(a0 + a1);
    }
}

extern "C" __global__ void split64k_cols(const u64* __restrict__ B, double* __restrict__ out, long long nb,
                                        long long N, long long sb, long long c0, long long kc) {
    const long long n = nb * kc * N;
    HC_GRID_STRIDE(t, n) {
        const long long nn = t % N;
        const long long bk = t / N;
        const long long b = bk / kc, kk = bk - b * kc;
        hc_i64 b0, b1, b2;
        hc_split64_k((hc_i64)B[b * sb + (c0 + kk) * N + nn], &b0, &b1, &b2);
        double* o = out + b * (4 * kc * N) + kk * N + nn;
        const long long blk = kc * N;
        o[0] = (double)b2;
        o[blk] = (double)b0;
        o[2 * blk] = (double)b1;
        o[3 * blk] = (double)(b0 + b1);
    }
}

// p: (4, n) contiguous float64 = [D2, P00, P11, Pk]; acc: n uint64, updated in place.
extern "C" __global__ void recombine64k(const double* __restrict__ p, u64* __restrict__ acc, long long n) {
    HC_GRID_STRIDE(i, n) { acc[i] += hc_recombine64_k(p[i], p[n + i], p[2 * n + i], p[3 * n + i]); }
}

// diags: (D, n) contiguous float64; acc: n ring elements, updated in place.
extern "C" __global__ void recombine_pow2_u64(const double* diags, u64* acc, long long n) {
    recombine_pow2<u64, 3, 22>(diags, acc, n);
}
extern "C" __global__ void recombine_pow2_u32(const double* diags, u32* acc, long long n) {
    recombine_pow2<u32, 2, 16>(diags, acc, n);
}
// Z_q: D = 2L - 1 diagonals (1, 3 or 5); pow_d for d >= D is ignored.
extern "C" __global__ void recombine_zq(const double* __restrict__ diags, u64* __restrict__ acc, long long n,
                                        int D, u64 q, u64 mu, u64 k, u64 p0, u64 p1, u64 p2, u64 p3, u64 p4) {
    const u64 pw[5] = {p0, p1, p2, p3, p4};
    HC_GRID_STRIDE(i, n) {
        u64 s = acc[i];
#pragma unroll
        for (int d = 0; d < 5; ++d) {
            if (d < D) s = hc_addmod(s, hc_recombine_zq_term(diags[d * n + i], pw[d], q, mu, k), q);
        }
        acc[i] = s;
    }
}
