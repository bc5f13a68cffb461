// Ring matmul on tensor cores through int8 limbs: fused split and recombine kernels.
//
// The GEMMs themselves are cuBLAS int8 x int8 -> int32 (cublasGemmEx, CUBLAS_COMPUTE_32I),
// called from hecrypt/backend/cuda_int8.py; the algebra and its exactness limits are in
// hecrypt/backend/int8_limbs.py (a bit-exact CPU emulation of this file's kernels).
//
// Numeric contract
//   * Ring elements: uint64 (Z_2^64, L = 8 limbs) or uint32 (Z_2^32, L = 4 limbs).
//   * Split: x = a + 0x8080...80 (mod 2^bits); limb i = byte i of x, minus 128, as int8,
//     so sum_i limb_i 2^(8i) == a (mod 2^bits) and every limb lies in [-128, 127].
//     An input element of value 0 gives all-zero limbs, so zero padding stays zero.
//   * Layout (bytes, K-contiguous rows of Kp-wide limb blocks, Kp % 16 == 0):
//       mode 0: row r = [limb_0 | limb_1 | ... | limb_{L-1}]          (A side, ascending)
//       mode 1: row r = [limb_{L-1} | ... | limb_0]                    (B side, reversed)
//       mode 2: row d*Rp + r, block j = limb_{d-j} for j <= d, else 0   (block Toeplitz)
//     Diagonal d of the product is then the GEMM of the first (d+1)*Kp columns of the
//     mode-0 rows against the last (d+1)*Kp columns of the mode-1 rows; mode 2 gives all
//     diagonals from one GEMM against a mode-0 operand.
//   * Recombine: out (+)= sum_d (int64) S_d << 8d  (mod 2^bits), where S_d is the int32
//     GEMM output of diagonal d.  For a diagonal with bits - 8d <= 32 the int32 may have
//     wrapped modulo 2^32: harmless, only S_d mod 2^(bits-8d) reaches the result.
//   * The float64 kernels (f64_*) serve the float64 baselines of the tensor-core
//     benchmark: unsigned 16-bit blocks (CrypTen's 10-product method) or signed balanced
//     limbs (the six-product method); every partial sum is an integer below 2^53.
//
// Everything but the __global__ kernels is plain C++ as well, so that the host test suite
// can compile this file with g++ (-DI8L_HOST_TEST) and check the element math bit for bit.

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define I8L_HD __host__ __device__ __forceinline__
#define I8L_GPU 1
#else
#define I8L_HD static inline
#endif

typedef unsigned long long i8l_u64;
typedef long long i8l_i64;
typedef unsigned int i8l_u32;
typedef int i8l_i32;

template <typename T> struct I8lRing;
template <> struct I8lRing<i8l_u64> {
    static constexpr int L = 8;
    static constexpr i8l_u64 BIAS = 0x8080808080808080ULL;
};
template <> struct I8lRing<i8l_u32> {
    static constexpr int L = 4;
    static constexpr i8l_u32 BIAS = 0x80808080u;
};

// Bit pattern (as a byte) of signed limb i of the biased value xb = a + BIAS.
template <typename T> I8L_HD i8l_u32 i8l_limb_bits(T xb, int i) {
    return ((i8l_u32)(xb >> (8 * i)) & 0xFFu) ^ 0x80u;
}

// Limb i of four consecutive elements packed into one little-endian 32-bit word.
template <typename T> I8L_HD i8l_u32 i8l_pack4(T x0, T x1, T x2, T x3, int i) {
    return i8l_limb_bits(x0, i) | (i8l_limb_bits(x1, i) << 8) | (i8l_limb_bits(x2, i) << 16) |
           (i8l_limb_bits(x3, i) << 24);
}

// One output element from its L diagonal sums (int32, possibly wrapped where harmless).
template <typename T> I8L_HD T i8l_recombine_one(const i8l_i32* s, i8l_i64 stride) {
    T acc = 0;
#pragma unroll
    for (int d = 0; d < I8lRing<T>::L; ++d) acc += ((T)(i8l_i64)s[d * stride]) << (8 * d);
    return acc;
}

// Signed representative of a Z_2^bits element as int64.
I8L_HD i8l_i64 i8l_signed(i8l_u64 a) { return (i8l_i64)a; }
I8L_HD i8l_i64 i8l_signed(i8l_u32 a) { return (i8l_i64)(i8l_i32)a; }

// Float64 limb i of one element: balanced signed limbs of `width` bits (top limb takes the
// rest) or unsigned blocks (value bits 16i .. 16i+width-1).
template <typename T> I8L_HD double i8l_f64_limb(T a, int i, int nlimbs, int width, int balanced) {
    if (!balanced) return (double)(((i8l_u64)a >> (width * i)) & ((1ULL << width) - 1ULL));
    i8l_i64 v = i8l_signed(a);
    const i8l_i64 half = 1LL << (width - 1), mask = (1LL << width) - 1;
    for (int j = 0; j < nlimbs - 1; ++j) {
        i8l_i64 lj = ((v + half) & mask) - half;
        if (j == i) return (double)lj;
        v = (v - lj) >> width;
    }
    return (double)v;
}

#ifdef I8L_GPU
#define I8L_TR 32   // rows per tile
#define I8L_TK 64   // K per tile (multiple of 4)

// Split a (batched, strided) operand into int8 limbs, transposing through shared memory so
// that both the read (along the source's contiguous axis) and the write (along K) are
// coalesced.  src element (b, r, k) is src[b*s_b + r*s_r + k*s_k]; rows r >= R and
// columns k >= Kc read as 0 (zero limbs).  Output rows 0..Rp-1 (and the Toeplitz copies)
// of pitch ld bytes, batch pitch ob bytes.
template <typename T, bool KCONTIG>
__device__ __forceinline__ void i8l_split_tile(const T* __restrict__ src, i8l_i64 s_b, i8l_i64 s_r,
                                               i8l_i64 s_k, int R, int Kc, int Rp, int Kp,
                                               unsigned char* __restrict__ out, i8l_i64 ld, i8l_i64 ob,
                                               int mode) {
    constexpr int L = I8lRing<T>::L;
    __shared__ T tile[I8L_TR][I8L_TK + 1];
    const int r0 = blockIdx.y * I8L_TR, k0 = blockIdx.x * I8L_TK;
    const i8l_i64 b = blockIdx.z;
    const T* s = src + b * s_b;
    for (int idx = threadIdx.x; idx < I8L_TR * I8L_TK; idx += blockDim.x) {
        const int r = KCONTIG ? idx / I8L_TK : idx % I8L_TR;
        const int k = KCONTIG ? idx % I8L_TK : idx / I8L_TR;
        const int gr = r0 + r, gk = k0 + k;
        T v = 0;
        if (gr < R && gk < Kc) v = s[(i8l_i64)gr * s_r + (i8l_i64)gk * s_k];
        tile[r][k] = (T)(v + I8lRing<T>::BIAS);
    }
    __syncthreads();
    unsigned char* o = out + b * ob;
    for (int item = threadIdx.x; item < I8L_TR * (I8L_TK / 4); item += blockDim.x) {
        const int r = item / (I8L_TK / 4), kq = (item % (I8L_TK / 4)) * 4;
        const int gr = r0 + r, gk = k0 + kq;
        if (gr >= Rp || gk >= Kp) continue;
        i8l_u32 w[L];
#pragma unroll
        for (int i = 0; i < L; ++i)
            w[i] = i8l_pack4<T>(tile[r][kq], tile[r][kq + 1], tile[r][kq + 2], tile[r][kq + 3], i);
        if (mode == 0) {
#pragma unroll
            for (int i = 0; i < L; ++i) *(i8l_u32*)(o + gr * ld + (i8l_i64)i * Kp + gk) = w[i];
        } else if (mode == 1) {
#pragma unroll
            for (int i = 0; i < L; ++i) *(i8l_u32*)(o + gr * ld + (i8l_i64)(L - 1 - i) * Kp + gk) = w[i];
        } else {
#pragma unroll
            for (int d = 0; d < L; ++d) {
                unsigned char* row = o + ((i8l_i64)d * Rp + gr) * ld + gk;
#pragma unroll
                for (int j = 0; j < L; ++j) *(i8l_u32*)(row + (i8l_i64)j * Kp) = (j <= d) ? w[d - j] : 0u;
            }
        }
    }
}

// Same tiling, float64 limbs (baselines): mode 0 ascending blocks, mode 1 reversed.
template <typename T, bool KCONTIG>
__device__ __forceinline__ void i8l_f64_split_tile(const T* __restrict__ src, i8l_i64 s_b, i8l_i64 s_r,
                                                   i8l_i64 s_k, int R, int Kc, int Rp, int Kp,
                                                   double* __restrict__ out, i8l_i64 ld, i8l_i64 ob, int mode,
                                                   int nlimbs, int width, int balanced) {
    __shared__ T tile[I8L_TR][I8L_TK + 1];
    const int r0 = blockIdx.y * I8L_TR, k0 = blockIdx.x * I8L_TK;
    const i8l_i64 b = blockIdx.z;
    const T* s = src + b * s_b;
    for (int idx = threadIdx.x; idx < I8L_TR * I8L_TK; idx += blockDim.x) {
        const int r = KCONTIG ? idx / I8L_TK : idx % I8L_TR;
        const int k = KCONTIG ? idx % I8L_TK : idx / I8L_TR;
        const int gr = r0 + r, gk = k0 + k;
        T v = 0;
        if (gr < R && gk < Kc) v = s[(i8l_i64)gr * s_r + (i8l_i64)gk * s_k];
        tile[r][k] = v;
    }
    __syncthreads();
    double* o = out + b * ob;
    for (int idx = threadIdx.x; idx < I8L_TR * I8L_TK; idx += blockDim.x) {
        const int r = idx / I8L_TK, k = idx % I8L_TK;
        const int gr = r0 + r, gk = k0 + k;
        if (gr >= Rp || gk >= Kp) continue;
        const T v = tile[r][k];
        for (int i = 0; i < nlimbs; ++i) {
            const int blk = (mode == 0) ? i : nlimbs - 1 - i;
            o[gr * ld + (i8l_i64)blk * Kp + gk] = i8l_f64_limb<T>(v, i, nlimbs, width, balanced);
        }
    }
}

#define I8L_SPLIT_ENTRY(NAME, T, KC)                                                                   \
    extern "C" __global__ void __launch_bounds__(256)                                                  \
        NAME(const T* src, i8l_i64 s_b, i8l_i64 s_r, i8l_i64 s_k, int R, int Kc, int Rp, int Kp,       \
             unsigned char* out, i8l_i64 ld, i8l_i64 ob, int mode) {                                   \
        i8l_split_tile<T, KC>(src, s_b, s_r, s_k, R, Kc, Rp, Kp, out, ld, ob, mode);                    \
    }
I8L_SPLIT_ENTRY(i8l_split_u64_kc, i8l_u64, true)
I8L_SPLIT_ENTRY(i8l_split_u64_rc, i8l_u64, false)
I8L_SPLIT_ENTRY(i8l_split_u32_kc, i8l_u32, true)
I8L_SPLIT_ENTRY(i8l_split_u32_rc, i8l_u32, false)

#define I8L_F64_SPLIT_ENTRY(NAME, T, KC)                                                               \
    extern "C" __global__ void __launch_bounds__(256)                                                  \
        NAME(const T* src, i8l_i64 s_b, i8l_i64 s_r, i8l_i64 s_k, int R, int Kc, int Rp, int Kp,       \
             double* out, i8l_i64 ld, i8l_i64 ob, int mode, int nlimbs, int width, int balanced) {     \
        i8l_f64_split_tile<T, KC>(src, s_b, s_r, s_k, R, Kc, Rp, Kp, out, ld, ob, mode, nlimbs, width, \
                                  balanced);                                                           \
    }
I8L_F64_SPLIT_ENTRY(i8l_f64_split_u64_kc, i8l_u64, true)
I8L_F64_SPLIT_ENTRY(i8l_f64_split_u64_rc, i8l_u64, false)
I8L_F64_SPLIT_ENTRY(i8l_f64_split_u32_kc, i8l_u32, true)
I8L_F64_SPLIT_ENTRY(i8l_f64_split_u32_rc, i8l_u32, false)

// out[b, m, n] (+)= sum_d (int64) C[d*ds + b*bs + m*rs + n] << 8d   (mod 2^bits).
// out is contiguous (B, M, N).  Grid: x over n (grid-stride), y over the B*M rows
// (grid-stride), so no 64-bit division per element; 64-bit indices throughout.
template <typename T>
__device__ __forceinline__ void i8l_recombine(const i8l_i32* __restrict__ C, i8l_i64 ds, i8l_i64 bs, i8l_i64 rs,
                                              T* __restrict__ out, i8l_i64 M, i8l_i64 N, i8l_i64 B,
                                              int accumulate) {
    for (i8l_i64 row = blockIdx.y; row < B * M; row += gridDim.y) {
        const i8l_i64 b = row / M, m = row - b * M;
        const i8l_i32* c = C + b * bs + m * rs;
        T* o = out + row * N;
        for (i8l_i64 n = (i8l_i64)blockIdx.x * blockDim.x + threadIdx.x; n < N; n += (i8l_i64)gridDim.x * blockDim.x) {
            const T v = i8l_recombine_one<T>(c + n, ds);
            o[n] = accumulate ? (T)(o[n] + v) : v;
        }
    }
}

extern "C" __global__ void i8l_recombine_u64(const i8l_i32* C, i8l_i64 ds, i8l_i64 bs, i8l_i64 rs,
                                             i8l_u64* out, i8l_i64 M, i8l_i64 N, i8l_i64 B, int accumulate) {
    i8l_recombine<i8l_u64>(C, ds, bs, rs, out, M, N, B, accumulate);
}
extern "C" __global__ void i8l_recombine_u32(const i8l_i32* C, i8l_i64 ds, i8l_i64 bs, i8l_i64 rs,
                                             i8l_u32* out, i8l_i64 M, i8l_i64 N, i8l_i64 B, int accumulate) {
    i8l_recombine<i8l_u32>(C, ds, bs, rs, out, M, N, B, accumulate);
}

// Float64 diagonals (exact integers below 2^53) -> ring:
// out (+)= sum_d (int64) C_d << (width*d)   (mod 2^bits).
template <typename T>
__device__ __forceinline__ void i8l_f64_recombine(const double* __restrict__ C, i8l_i64 ds, i8l_i64 bs,
                                                  i8l_i64 rs, T* __restrict__ out, i8l_i64 M, i8l_i64 N,
                                                  i8l_i64 B, int ndiag, int width, int accumulate) {
    for (i8l_i64 row = blockIdx.y; row < B * M; row += gridDim.y) {
        const i8l_i64 b = row / M, m = row - b * M;
        const double* c = C + b * bs + m * rs;
        T* o = out + row * N;
        for (i8l_i64 n = (i8l_i64)blockIdx.x * blockDim.x + threadIdx.x; n < N; n += (i8l_i64)gridDim.x * blockDim.x) {
            i8l_u64 acc = 0;
            for (int d = 0; d < ndiag; ++d) {
                const int sh = width * d;
                if (sh < 64) acc += ((i8l_u64)(i8l_i64)c[n + d * ds]) << sh;
            }
            o[n] = accumulate ? (T)(o[n] + (T)acc) : (T)acc;
        }
    }
}
extern "C" __global__ void i8l_f64_recombine_u64(const double* C, i8l_i64 ds, i8l_i64 bs, i8l_i64 rs,
                                                 i8l_u64* out, i8l_i64 M, i8l_i64 N, i8l_i64 B, int ndiag,
                                                 int width, int accumulate) {
    i8l_f64_recombine<i8l_u64>(C, ds, bs, rs, out, M, N, B, ndiag, width, accumulate);
}
extern "C" __global__ void i8l_f64_recombine_u32(const double* C, i8l_i64 ds, i8l_i64 bs, i8l_i64 rs,
                                                 i8l_u32* out, i8l_i64 M, i8l_i64 N, i8l_i64 B, int ndiag,
                                                 int width, int accumulate) {
    i8l_f64_recombine<i8l_u32>(C, ds, bs, rs, out, M, N, B, ndiag, width, accumulate);
}
#endif  // I8L_GPU

#ifdef I8L_HOST_TEST
// Host entry points for the CPU test suite (g++ -DI8L_HOST_TEST -shared -fPIC -x c++).
extern "C" {
void i8l_host_split_u64(const i8l_u64* a, long long n, signed char* out) {
    for (long long e = 0; e < n; e += 4)
        for (int i = 0; i < 8; ++i) {
            const i8l_u64 B = I8lRing<i8l_u64>::BIAS;
            i8l_u32 w = i8l_pack4<i8l_u64>(a[e] + B, a[e + 1] + B, a[e + 2] + B, a[e + 3] + B, i);
            for (int q = 0; q < 4; ++q) out[(e + q) * 8 + i] = (signed char)((w >> (8 * q)) & 0xFF);
        }
}
void i8l_host_split_u32(const i8l_u32* a, long long n, signed char* out) {
    for (long long e = 0; e < n; e += 4)
        for (int i = 0; i < 4; ++i) {
            const i8l_u32 B = I8lRing<i8l_u32>::BIAS;
            i8l_u32 w = i8l_pack4<i8l_u32>(a[e] + B, a[e + 1] + B, a[e + 2] + B, a[e + 3] + B, i);
            for (int q = 0; q < 4; ++q) out[(e + q) * 4 + i] = (signed char)((w >> (8 * q)) & 0xFF);
        }
}
void i8l_host_recombine_u64(const i8l_i32* s, long long n, i8l_u64* out) {
    for (long long e = 0; e < n; ++e) out[e] = i8l_recombine_one<i8l_u64>(s + e, n);
}
void i8l_host_recombine_u32(const i8l_i32* s, long long n, i8l_u32* out) {
    for (long long e = 0; e < n; ++e) out[e] = i8l_recombine_one<i8l_u32>(s + e, n);
}
void i8l_host_f64_limbs_u64(const i8l_u64* a, long long n, int nlimbs, int width, int balanced, double* out) {
    for (long long e = 0; e < n; ++e)
        for (int i = 0; i < nlimbs; ++i) out[e * nlimbs + i] = i8l_f64_limb<i8l_u64>(a[e], i, nlimbs, width, balanced);
}
}
#endif
