// Fused elementwise ring kernels: add / sub / neg / mul, multiply-or-add by a public scalar,
// n-way share sum, axis sums and the 128-bit -> Z_q reduction.
//
// Rings (suffix of every entry point):  _u64 = Z_2^64 (uint64, wraps), _u32 = Z_2^32 (uint32,
// wraps), _zq = Z_q in uint64 with odd q < 2^62 (inputs in [0, q), outputs in [0, q), Barrett
// constants q, mu, k exactly as hecrypt.backend.modarith.barrett).  One template __device__
// function per operation; thin extern "C" entry points per ring.  Grid-stride loops with
// 64-bit indices: any grid size is correct; n may exceed 2^32.  Elementwise maps and the n-way
// sum move 16 bytes per operand per thread when all pointers are 16-byte aligned
// (common/elementwise.cuh); public scalars are read from device memory (no host sync).
#include "common/ring.cuh"
#include "common/elementwise.cuh"

#define HC_GRID_STRIDE(i, n)                                                           \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);       \
         i += (long long)blockDim.x * gridDim.x)

enum { OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_RSUB = 3 };

template <class R, int OP>
__device__ __forceinline__ typename R::T apply_op(const R& r, typename R::T a, typename R::T b) {
    if (OP == OP_ADD) return r.add(a, b);
    if (OP == OP_SUB) return r.sub(a, b);
    if (OP == OP_MUL) return r.mul(a, b);
    return r.sub(b, a);  // OP_RSUB: scalar - array
}

template <class R, int OP>
struct BinOp {
    R r;
    __device__ __forceinline__ typename R::T operator()(typename R::T a, typename R::T b) const {
        return apply_op<R, OP>(r, a, b);
    }
};
template <class R, int OP>
struct ScalarOp {
    R r;
    typename R::T s;
    __device__ __forceinline__ typename R::T operator()(typename R::T a, typename R::T) const {
        return apply_op<R, OP>(r, a, s);
    }
};
template <class R>
struct NegOp {
    R r;
    __device__ __forceinline__ typename R::T operator()(typename R::T a, typename R::T) const { return r.neg(a); }
};

// out[i] = a[i] op b[i]
template <class R, int OP>
__device__ __forceinline__ void ew_binary(const R r, const typename R::T* __restrict__ a,
                                          const typename R::T* __restrict__ b,
                                          typename R::T* __restrict__ out, long long n) {
    BinOp<R, OP> f;
    f.r = r;
    hc_map<typename R::T, 2>(f, out, a, b, n);
}

// out[i] = a[i] op s[0]   (s: one public scalar in device memory, already reduced into the ring)
template <class R, int OP>
__device__ __forceinline__ void ew_scalar(const R r, const typename R::T* __restrict__ a,
                                          const typename R::T* __restrict__ sp, typename R::T* __restrict__ out,
                                          long long n) {
    ScalarOp<R, OP> f;
    f.r = r;
    f.s = sp[0];
    hc_map<typename R::T, 1>(f, out, a, a, n);
}

template <class R>
__device__ __forceinline__ void ew_neg(const R r, const typename R::T* __restrict__ a,
                                       typename R::T* __restrict__ out, long long n) {
    NegOp<R> f;
    f.r = r;
    hc_map<typename R::T, 1>(f, out, a, a, n);
}

// n-way sum in one pass: out[i] = sum_j ptrs[j][i]; ptrs is a device array of nin pointers.
// 16-byte accesses when every pointer is 16-byte aligned.
template <class R>
__device__ __forceinline__ void ew_nsum(const R r, const unsigned long long* __restrict__ ptrs, int nin,
                                        typename R::T* __restrict__ out, long long n) {
    typedef typename R::T T;
    typedef HcVec16<T> VT;
    typedef typename VT::V V;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)blockDim.x * gridDim.x;
    unsigned long long align = (unsigned long long)out;
    for (int j = 0; j < nin; ++j) align |= ptrs[j];
    long long done = 0;
    if ((align & 15ULL) == 0ULL) {
        const long long nv = n / VT::N;
        for (long long v = tid; v < nv; v += stride) {
            T s[VT::N], x[VT::N];
            VT::load(reinterpret_cast<const V*>(ptrs[0]) + v, s);
            for (int j = 1; j < nin; ++j) {
                VT::load(reinterpret_cast<const V*>(ptrs[j]) + v, x);
#pragma unroll
                for (int e = 0; e < VT::N; ++e) s[e] = r.add(s[e], x[e]);
            }
            VT::store(reinterpret_cast<V*>(out) + v, s);
        }
        done = nv * VT::N;
    }
    for (long long i = done + tid; i < n; i += stride) {
        T s = ((const T*)ptrs[0])[i];
        for (int j = 1; j < nin; ++j) s = r.add(s, ((const T*)ptrs[j])[i]);
        out[i] = s;
    }
}

// Axis sum over the middle axis of a contiguous (pre, C, post) array, one thread per output
// element (coalesced across `post`): out[p, j] = sum_c a[p, c, j].
template <class R>
__device__ __forceinline__ void ax_sum_strided(const R r, const typename R::T* __restrict__ a,
                                               typename R::T* __restrict__ out, long long pre, long long C,
                                               long long post) {
    typedef typename R::T T;
    const long long n = pre * post;
    HC_GRID_STRIDE(o, n) {
        const long long p = o / post, j = o - p * post;
        const T* src = a + p * C * post + j;
        T s = (T)0;
        for (long long c = 0; c < C; ++c) s = r.add(s, src[c * post]);
        out[o] = s;
    }
}

// Chunked row sums of a contiguous (rows, C) array: block `t` of rows*nchunks sums chunk
// t % nchunks of row t / nchunks (chunk elements, the last one shorter) into out[t], where
// nchunks = ceil(C / chunk).  chunk >= C gives plain row sums; a second call on the
// (rows, nchunks) partials finishes long rows.  blockDim.x must be a power of two <= 1024.
template <class R>
__device__ __forceinline__ void ax_sum_rows(const R r, const typename R::T* __restrict__ a,
                                            typename R::T* __restrict__ out, long long rows, long long C,
                                            long long chunk) {
    typedef typename R::T T;
    __shared__ T buf[1024];
    const long long nchunks = (C + chunk - 1) / chunk;
    for (long long t = blockIdx.x; t < rows * nchunks; t += gridDim.x) {
        const long long row = t / nchunks, ci = t - row * nchunks;
        const long long start = row * C + ci * chunk;
        long long end = start + chunk;
        if (end > row * C + C) end = row * C + C;
        T s = (T)0;
        for (long long i = start + threadIdx.x; i < end; i += blockDim.x) s = r.add(s, a[i]);
        buf[threadIdx.x] = s;
        __syncthreads();
        for (unsigned int w = blockDim.x >> 1; w > 0; w >>= 1) {
            if (threadIdx.x < w) buf[threadIdx.x] = r.add(buf[threadIdx.x], buf[threadIdx.x + w]);
            __syncthreads();
        }
        if (threadIdx.x == 0) out[t] = buf[0];
        __syncthreads();
    }
}

// ---------------------------------------------------------------------------------------
// entry points
// ---------------------------------------------------------------------------------------
typedef unsigned long long u64;
typedef unsigned int u32;

#define HC_RING_ARGS_zq , u64 q, u64 mu, u64 k
#define HC_RING_ARGS_u64
#define HC_RING_ARGS_u32
#define HC_RING_MAKE_zq RingZq r; r.q = q; r.mu = mu; r.k = k;
#define HC_RING_MAKE_u64 RingU64 r;
#define HC_RING_MAKE_u32 RingU32 r;
#define HC_RING_T_zq u64
#define HC_RING_T_u64 u64
#define HC_RING_T_u32 u32

#define HC_DEFINE_RING(SFX)                                                                     \
    extern "C" __global__ void ew_add_##SFX(const HC_RING_T_##SFX* a, const HC_RING_T_##SFX* b,   \
                                            HC_RING_T_##SFX* out, long long n HC_RING_ARGS_##SFX) { \
        HC_RING_MAKE_##SFX ew_binary<decltype(r), OP_ADD>(r, a, b, out, n);                      \
    }                                                                                           \
    extern "C" __global__ void ew_sub_##SFX(const HC_RING_T_##SFX* a, const HC_RING_T_##SFX* b,   \
                                            HC_RING_T_##SFX* out, long long n HC_RING_ARGS_##SFX) { \
        HC_RING_MAKE_##SFX ew_binary<decltype(r), OP_SUB>(r, a, b, out, n);                      \
    }                                                                                           \
    extern "C" __global__ void ew_mul_##SFX(const HC_RING_T_##SFX* a, const HC_RING_T_##SFX* b,   \
                                            HC_RING_T_##SFX* out, long long n HC_RING_ARGS_##SFX) { \
        HC_RING_MAKE_##SFX ew_binary<decltype(r), OP_MUL>(r, a, b, out, n);                      \
    }                                                                                           \
    extern "C" __global__ void ew_adds_##SFX(const HC_RING_T_##SFX* a, const HC_RING_T_##SFX* s,         \
                                             HC_RING_T_##SFX* out, long long n HC_RING_ARGS_##SFX) { \
        HC_RING_MAKE_##SFX ew_scalar<decltype(r), OP_ADD>(r, a, s, out, n);                      \
    }                                                                                           \
    extern "C" __global__ void ew_subs_##SFX(const HC_RING_T_##SFX* a, const HC_RING_T_##SFX* s,         \
                                             HC_RING_T_##SFX* out, long long n HC_RING_ARGS_##SFX) { \
        HC_RING_MAKE_##SFX ew_scalar<decltype(r), OP_SUB>(r, a, s, out, n);                      \
    }                                                                                           \
    extern "C" __global__ void ew_rsubs_##SFX(const HC_RING_T_##SFX* a, const HC_RING_T_##SFX* s,        \
                                              HC_RING_T_##SFX* out, long long n HC_RING_ARGS_##SFX) { \
        HC_RING_MAKE_##SFX ew_scalar<decltype(r), OP_RSUB>(r, a, s, out, n);                     \
    }                                                                                           \
    extern "C" __global__ void ew_muls_##SFX(const HC_RING_T_##SFX* a, const HC_RING_T_##SFX* s,         \
                                             HC_RING_T_##SFX* out, long long n HC_RING_ARGS_##SFX) { \
        HC_RING_MAKE_##SFX ew_scalar<decltype(r), OP_MUL>(r, a, s, out, n);                      \
    }                                                                                           \
    extern "C" __global__ void ew_neg_##SFX(const HC_RING_T_##SFX* a, HC_RING_T_##SFX* out,       \
                                            long long n HC_RING_ARGS_##SFX) {                     \
        HC_RING_MAKE_##SFX ew_neg<decltype(r)>(r, a, out, n);                                    \
    }                                                                                           \
    extern "C" __global__ void ew_nsum_##SFX(const u64* ptrs, int nin, HC_RING_T_##SFX* out,      \
                                             long long n HC_RING_ARGS_##SFX) {                    \
        HC_RING_MAKE_##SFX ew_nsum<decltype(r)>(r, ptrs, nin, out, n);                           \
    }                                                                                           \
    extern "C" __global__ void ax_sum_strided_##SFX(const HC_RING_T_##SFX* a, HC_RING_T_##SFX* out, \
                                                    long long pre, long long C,                   \
                                                    long long post HC_RING_ARGS_##SFX) {          \
        HC_RING_MAKE_##SFX ax_sum_strided<decltype(r)>(r, a, out, pre, C, post);                 \
    }                                                                                           \
    extern "C" __global__ void ax_sum_rows_##SFX(const HC_RING_T_##SFX* a, HC_RING_T_##SFX* out,  \
                                                 long long rows, long long C,                     \
                                                 long long chunk HC_RING_ARGS_##SFX) {            \
        HC_RING_MAKE_##SFX ax_sum_rows<decltype(r)>(r, a, out, rows, C, chunk);                  \
    }

HC_DEFINE_RING(u64)
HC_DEFINE_RING(u32)
HC_DEFINE_RING(zq)

// (lo[i] + hi[i] * 2^64) mod q, r64 = 2^64 mod q; as CPUBackend.reduce_u128.  Output in [0, q).
struct ReduceU128 {
    u64 q, mu, k, r64;
    __device__ __forceinline__ u64 operator()(u64 lo, u64 hi) const { return hc_reduce_u128(lo, hi, q, mu, k, r64); }
};
extern "C" __global__ void reduce_u128_zq(const u64* __restrict__ lo, const u64* __restrict__ hi,
                                          u64* __restrict__ out, long long n, u64 q, u64 mu, u64 k,
                                          u64 r64) {
    ReduceU128 f;
    f.q = q; f.mu = mu; f.k = k; f.r64 = r64;
    hc_map<u64, 2>(f, out, lo, hi, n);
}
