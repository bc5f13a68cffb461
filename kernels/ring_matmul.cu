// Tiled shared-memory SIMT ring matmul: the reference GPU kernel and the fallback path.
//
// C[b] = A[b] @ B[b] over the ring, A[b]: (M, K) row-major, B[b]: (K, N) row-major,
// C[b]: (M, N) row-major; batch b = 0..batch-1 with element strides sa, sb, sc between
// batches (0 broadcasts an operand).  Any M, N, K >= 1 (edges are masked; K is not required to
// be a multiple of the tile).
//   matmul_u64: Z_2^64, wrapping uint64 multiply-adds (exact mod 2^64 for any K)
//   matmul_u32: Z_2^32, wrapping uint32 multiply-adds
//   matmul_zq : Z_q, odd q < 2^62, inputs in [0, q): exact 128-bit products summed lazily in a
//               192-bit accumulator (exact for K < 2^64), one reduction to [0, q) at the end
//               (r64 = 2^64 mod q, r128 = 2^128 mod q).
// Tile: 64 x 64 outputs per 256-thread block, K in steps of 16; thread (tx, ty) owns outputs
// (ty + 16 i, tx + 16 j), i, j < 4, so shared-memory reads are broadcast / conflict-free and
// stores are coalesced.  The A tile is stored transposed with one element of padding per row.
#include "common/ring.cuh"

typedef unsigned long long u64;
typedef unsigned int u32;

#define HC_BM 64
#define HC_BN 64
#define HC_BK 16
#define HC_TM 4
#define HC_TN 4
#define HC_THREADS 256

struct AccU64 {
    typedef u64 T;
    u64 s;
    __device__ __forceinline__ void zero() { s = 0ULL; }
    __device__ __forceinline__ void fma(u64 a, u64 b) { s += a * b; }
};
struct AccU32 {
    typedef u32 T;
    u32 s;
    __device__ __forceinline__ void zero() { s = 0u; }
    __device__ __forceinline__ void fma(u32 a, u32 b) { s += a * b; }
};
struct AccZq {
    typedef u64 T;
    HcAcc192 s;
    __device__ __forceinline__ void zero() { hc_acc192_zero(s); }
    __device__ __forceinline__ void fma(u64 a, u64 b) { hc_acc192_fma(s, a, b); }
};

struct FinishPow2 {
    template <class Acc>
    __device__ __forceinline__ typename Acc::T operator()(const Acc& a) const { return a.s; }
};
struct FinishZq {
    u64 q, mu, k, r64, r128;
    __device__ __forceinline__ u64 operator()(const AccZq& a) const {
        return hc_acc192_finish(a.s, q, mu, k, r64, r128);
    }
};

// KUNROLL: unroll depth of the inner k loop (full for the cheap wrapping rings; 4 for Z_q, whose
// 128-bit products and 192-bit sums make a full unroll 3x slower to compile; speed not yet measured).
template <class Acc, class Finish, int KUNROLL>
__device__ __forceinline__ void matmul_tiled(const typename Acc::T* __restrict__ A,
                                             const typename Acc::T* __restrict__ B,
                                             typename Acc::T* __restrict__ C, long long M, long long N,
                                             long long K, long long batch, long long sa, long long sb,
                                             long long sc, const Finish fin) {
    typedef typename Acc::T T;
    __shared__ T As[HC_BK][HC_BM + 1];
    __shared__ T Bs[HC_BK][HC_BN];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const long long mtiles = (M + HC_BM - 1) / HC_BM;
    const long long ntiles = (N + HC_BN - 1) / HC_BN;
    for (long long bz = blockIdx.z; bz < batch; bz += gridDim.z) {
        const T* Ab = A + bz * sa;
        const T* Bb = B + bz * sb;
        T* Cb = C + bz * sc;
        for (long long by = blockIdx.y; by < mtiles; by += gridDim.y) {
            for (long long bx = blockIdx.x; bx < ntiles; bx += gridDim.x) {
                const long long m0 = by * HC_BM, n0 = bx * HC_BN;
                Acc acc[HC_TM][HC_TN];
#pragma unroll
                for (int i = 0; i < HC_TM; ++i)
#pragma unroll
                    for (int j = 0; j < HC_TN; ++j) acc[i][j].zero();
                for (long long k0 = 0; k0 < K; k0 += HC_BK) {
#pragma unroll
                    for (int r = 0; r < (HC_BM * HC_BK) / HC_THREADS; ++r) {
                        const int idx = tid + r * HC_THREADS;
                        const int mm = idx / HC_BK, kk = idx % HC_BK;
                        const long long gm = m0 + mm, gk = k0 + kk;
                        As[kk][mm] = (gm < M && gk < K) ? Ab[gm * K + gk] : (T)0;
                    }
#pragma unroll
                    for (int r = 0; r < (HC_BK * HC_BN) / HC_THREADS; ++r) {
                        const int idx = tid + r * HC_THREADS;
                        const int kk = idx / HC_BN, nn = idx % HC_BN;
                        const long long gk = k0 + kk, gn = n0 + nn;
                        Bs[kk][nn] = (gk < K && gn < N) ? Bb[gk * N + gn] : (T)0;
                    }
                    __syncthreads();
#pragma unroll KUNROLL
                    for (int kk = 0; kk < HC_BK; ++kk) {
                        T av[HC_TM], bv[HC_TN];
#pragma unroll
                        for (int i = 0; i < HC_TM; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
                        for (int j = 0; j < HC_TN; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
                        for (int i = 0; i < HC_TM; ++i)
#pragma unroll
                            for (int j = 0; j < HC_TN; ++j) acc[i][j].fma(av[i], bv[j]);
                    }
                    __syncthreads();
                }
#pragma unroll
                for (int i = 0; i < HC_TM; ++i) {
                    const long long gm = m0 + ty + 16 * i;
#pragma unroll
                    for (int j = 0; j < HC_TN; ++j) {
                        const long long gn = n0 + tx + 16 * j;
                        if (gm < M && gn < N) Cb[gm * N + gn] = fin(acc[i][j]);
                    }
                }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(HC_THREADS)
matmul_u64(const u64* A, const u64* B, u64* C, long long M, long long N, long long K, long long batch,
           long long sa, long long sb, long long sc) {
    matmul_tiled<AccU64, FinishPow2, HC_BK>(A, B, C, M, N, K, batch, sa, sb, sc, FinishPow2());
}

extern "C" __global__ void __launch_bounds__(HC_THREADS)
matmul_u32(const u32* A, const u32* B, u32* C, long long M, long long N, long long K, long long batch,
           long long sa, long long sb, long long sc) {
    matmul_tiled<AccU32, FinishPow2, HC_BK>(A, B, C, M, N, K, batch, sa, sb, sc, FinishPow2());
}

extern "C" __global__ void __launch_bounds__(HC_THREADS)
matmul_zq(const u64* A, const u64* B, u64* C, long long M, long long N, long long K, long long batch,
          long long sa, long long sb, long long sc, u64 q, u64 mu, u64 k, u64 r64, u64 r128) {
    FinishZq fin;
    fin.q = q; fin.mu = mu; fin.k = k; fin.r64 = r64; fin.r128 = r128;
    matmul_tiled<AccZq, FinishZq, 4>(A, B, C, M, N, K, batch, sa, sb, sc, fin);
}
