// Fixed-point truncation: floor(signed(a) / 2^f) mapped back into the ring, 0 <= f < bits.
//   truncate_u64: Z_2^64 (int64 view, arithmetic shift)
//   truncate_u32: Z_2^32 (int32 view, arithmetic shift)
//   truncate_zq : Z_q, signed representative in [-(q-1)/2, (q-1)/2], output in [0, q)
// Bit-identical to CPUBackend.truncate.  Grid-stride loops, 64-bit indices, 16-byte accesses.
#include "common/ring.cuh"
#include "common/elementwise.cuh"

typedef unsigned long long u64;
typedef unsigned int u32;

struct TruncU64 {
    u32 f;
    __device__ __forceinline__ u64 operator()(u64 a, u64) const { return hc_trunc_u64(a, f); }
};
struct TruncU32 {
    u32 f;
    __device__ __forceinline__ u32 operator()(u32 a, u32) const { return hc_trunc_u32(a, f); }
};
struct TruncZq {
    u32 f;
    u64 q;
    __device__ __forceinline__ u64 operator()(u64 a, u64) const { return hc_trunc_zq(a, f, q); }
};

extern "C" __global__ void truncate_u64(const u64* __restrict__ a, u64* __restrict__ out, long long n,
                                        u32 f) {
    TruncU64 op;
    op.f = f;
    hc_map<u64, 1>(op, out, a, a, n);
}

extern "C" __global__ void truncate_u32(const u32* __restrict__ a, u32* __restrict__ out, long long n,
                                        u32 f) {
    TruncU32 op;
    op.f = f;
    hc_map<u32, 1>(op, out, a, a, n);
}

extern "C" __global__ void truncate_zq(const u64* __restrict__ a, u64* __restrict__ out, long long n,
                                       u32 f, u64 q) {
    TruncZq op;
    op.f = f;
    op.q = q;
    hc_map<u64, 1>(op, out, a, a, n);
}
