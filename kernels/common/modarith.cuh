// Shared modular-arithmetic helpers for hecrypt kernels (CUDA C, also plain C++ on the host).
//
// Numeric contract (identical to hecrypt/backend/modarith.py and the Numba CPU kernels):
//   * q is an odd modulus with 3 <= q < 2^62; k = bit_length(q); mu = floor(2^(2k) / q).
//   * hc_barrett_reduce(hi, lo, q, mu, k) returns x mod q for x = hi*2^64 + lo < 2^(2k)
//     (in particular for every x < q^2): q1 = x >> (k-1); q3 = (q1*mu) >> (k+1);
//     r = (x - q3*q) mod 2^64 lies in [0, 3q), two conditional subtractions finish.
//   * hc_mulmod(a, b, ...) = a*b mod q for a, b in [0, q)  (exact 128-bit product).
//   * hc_reduce_u128(lo, hi, q, mu, k, r64) = (lo + hi*2^64) mod q for any 128-bit value,
//     r64 = 2^64 mod q; same steps as CPUBackend.reduce_u128.
// Every helper is `__host__ __device__ __forceinline__` and uses only 64-bit unsigned
// integers, so the same code runs on the GPU, on the host under nvcc, and under g++
// (the host test suite compiles it into a shared library and checks it bit for bit).
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define HC_HD __host__ __device__ __forceinline__
#else
#define HC_HD inline
#endif

typedef unsigned long long hc_u64;
typedef long long hc_i64;
typedef unsigned int hc_u32;
typedef int hc_i32;

// High 64 bits of the 128-bit product a*b.
HC_HD hc_u64 hc_umulhi(hc_u64 a, hc_u64 b) {
#if defined(__CUDA_ARCH__)
    return __umul64hi(a, b);
#else
    return (hc_u64)(((unsigned __int128)a * (unsigned __int128)b) >> 64);
#endif
}

// Full product: returns the low word, stores the high word in *hi.
HC_HD hc_u64 hc_mul128(hc_u64 a, hc_u64 b, hc_u64* hi) {
    *hi = hc_umulhi(a, b);
    return a * b;
}

// (hi*2^64 + lo) mod q for a value < 2^(2k) (see the contract above). Output in [0, q).
HC_HD hc_u64 hc_barrett_reduce(hc_u64 hi, hc_u64 lo, hc_u64 q, hc_u64 mu, hc_u64 k) {
    const hc_u64 km1 = k - 1ULL;  // 1 <= k-1 <= 61, so both shifts are in [3, 63]
    const hc_u64 q1 = (hi << (64ULL - km1)) | (lo >> km1);
    hc_u64 h2;
    const hc_u64 l2 = hc_mul128(q1, mu, &h2);
    const hc_u64 kp1 = k + 1ULL;  // 3 <= k+1 <= 63
    const hc_u64 q3 = (h2 << (64ULL - kp1)) | (l2 >> kp1);
    hc_u64 r = lo - q3 * q;
    r = (r >= q) ? r - q : r;
    r = (r >= q) ? r - q : r;
    return r;
}

// a*b mod q for a, b in [0, q). Output in [0, q).
HC_HD hc_u64 hc_mulmod(hc_u64 a, hc_u64 b, hc_u64 q, hc_u64 mu, hc_u64 k) {
    hc_u64 hi;
    const hc_u64 lo = hc_mul128(a, b, &hi);
    return hc_barrett_reduce(hi, lo, q, mu, k);
}

// a+b mod q and a-b mod q for a, b in [0, q) (q < 2^62, so a+b never wraps). Output in [0, q).
HC_HD hc_u64 hc_addmod(hc_u64 a, hc_u64 b, hc_u64 q) {
    const hc_u64 s = a + b;
    return (s >= q) ? s - q : s;
}

HC_HD hc_u64 hc_submod(hc_u64 a, hc_u64 b, hc_u64 q) {
    return (a >= b) ? a - b : a + (q - b);
}

HC_HD hc_u64 hc_negmod(hc_u64 a, hc_u64 q) {
    return (a == 0ULL) ? 0ULL : q - a;
}

// (lo + hi*2^64) mod q for any 128-bit input; r64 = 2^64 mod q. Output in [0, q).
// Bias of a uniform 128-bit input: below q / 2^128.
HC_HD hc_u64 hc_reduce_u128(hc_u64 lo, hc_u64 hi, hc_u64 q, hc_u64 mu, hc_u64 k, hc_u64 r64) {
    const hc_u64 t = hc_mulmod(hi % q, r64, q, mu, k);
    return hc_addmod(t, lo % q, q);
}

// x mod q for x = top*2^128 + hi*2^64 + lo (any 192-bit value); r64 = 2^64 mod q,
// r128 = 2^128 mod q. Used to finish lazily accumulated sums of 128-bit products.
HC_HD hc_u64 hc_reduce_u192(hc_u64 lo, hc_u64 hi, hc_u64 top, hc_u64 q, hc_u64 mu, hc_u64 k,
                            hc_u64 r64, hc_u64 r128) {
    const hc_u64 a = hc_mulmod(top % q, r128, q, mu, k);
    const hc_u64 b = hc_mulmod(hi % q, r64, q, mu, k);
    return hc_addmod(hc_addmod(a, b, q), lo % q, q);
}

// Signed (two's complement) 64-bit value v mod q, result in [0, q).
HC_HD hc_u64 hc_i64_mod(hc_i64 v, hc_u64 q) {
    if (v >= 0) return ((hc_u64)v) % q;
    const hc_u64 r = ((hc_u64)0 - (hc_u64)v) % q;  // |v| (also right for v = INT64_MIN)
    return (r == 0ULL) ? 0ULL : q - r;
}
