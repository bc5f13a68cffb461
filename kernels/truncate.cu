// Fixed-point truncation: floor(signed(a) / 2^f) mapped back into the ring, 0 <= f < bits.
//   truncate_u64: Z_2^64 (int64 view, arithmetic shift)
//   truncate_u32: Z_2^32 (int32 view, arithmetic shift)
//   truncate_zq : Z_q, signed representative in [-(q-1)/2, (q-1)/2], output in [0, q)
// Bit-identical to CPUBackend.truncate.  Grid-stride loops, 64-bit indices.
#include "common/ring.cuh"

typedef unsigned long long u64;
typedef unsigned int u32;

#define HC_GRID_STRIDE(i, n)                                                           \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);       \
         i += (long long)blockDim.x * gridDim.x)

extern "C" __global__ void truncate_u64(const u64* __restrict__ a, u64* __restrict__ out, long long n,
                                        u32 f) {
    HC_GRID_STRIDE(i, n) { out[i] = hc_trunc_u64(a[i], f); }
}

extern "C" __global__ void truncate_u32(const u32* __restrict__ a, u32* __restrict__ out, long long n,
                                        u32 f) {
    HC_GRID_STRIDE(i, n) { out[i] = hc_trunc_u32(a[i], f); }
}

extern "C" __global__ void truncate_zq(const u64* __restrict__ a, u64* __restrict__ out, long long n,
                                       u32 f, u64 q) {
    HC_GRID_STRIDE(i, n) { out[i] = hc_trunc_zq(a[i], f, q); }
}
