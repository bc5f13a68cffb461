// Element-level ring arithmetic shared by the hecrypt ring kernels (CUDA C and plain C++).
//
// Three rings, each a small struct with the same static/inline interface so that one
// template kernel serves all of them:
//   RingU64: Z_2^64 in uint64 (wrapping)      RingU32: Z_2^32 in uint32 (wrapping)
//   RingZq : Z_q in uint64, odd q < 2^62, inputs and outputs in [0, q), exact Barrett products.
// Also here: signed floor truncation, the balanced-limb split / recombination of one element
// (same layout and steps as hecrypt/backend/cpu.py: limb_plan, _split_rows, _recombine_*),
// and the 192-bit lazy accumulator used by the Z_q matmul.  The host test suite compiles
// this header with g++/nvcc and checks every helper bit for bit against Python integers.
#pragma once
#include "modarith.cuh"

// ---------------------------------------------------------------------------------------
// ring functors
// ---------------------------------------------------------------------------------------
struct RingU64 {
    typedef hc_u64 T;
    HC_HD T add(T a, T b) const { return a + b; }
    HC_HD T sub(T a, T b) const { return a - b; }
    HC_HD T neg(T a) const { return (T)0 - a; }
    HC_HD T mul(T a, T b) const { return a * b; }
};

struct RingU32 {
    typedef hc_u32 T;
    HC_HD T add(T a, T b) const { return a + b; }
    HC_HD T sub(T a, T b) const { return a - b; }
    HC_HD T neg(T a) const { return (T)0 - a; }
    HC_HD T mul(T a, T b) const { return a * b; }
};

struct RingZq {
    typedef hc_u64 T;
    hc_u64 q, mu, k;  // Barrett constants exactly as hecrypt.backend.modarith.barrett(q)
    HC_HD T add(T a, T b) const { return hc_addmod(a, b, q); }
    HC_HD T sub(T a, T b) const { return hc_submod(a, b, q); }
    HC_HD T neg(T a) const { return hc_negmod(a, q); }
    HC_HD T mul(T a, T b) const { return hc_mulmod(a, b, q, mu, k); }
};

// ---------------------------------------------------------------------------------------
// truncation: floor(signed(a) / 2^f) mapped back into the ring (arithmetic shift), 0 <= f < bits
// ---------------------------------------------------------------------------------------
HC_HD hc_u64 hc_trunc_u64(hc_u64 a, hc_u32 f) { return (hc_u64)(((hc_i64)a) >> f); }
HC_HD hc_u32 hc_trunc_u32(hc_u32 a, hc_u32 f) { return (hc_u32)(((hc_i32)a) >> f); }
// Z_q: signed representative in [-(q-1)/2, (q-1)/2], shifted, result in [0, q).
HC_HD hc_u64 hc_trunc_zq(hc_u64 a, hc_u32 f, hc_u64 q) {
    const hc_i64 s = (a > ((q - 1ULL) >> 1)) ? (hc_i64)a - (hc_i64)q : (hc_i64)a;
    const hc_i64 t = s >> f;
    return (t < 0) ? (hc_u64)(t + (hc_i64)q) : (hc_u64)t;
}

// ---------------------------------------------------------------------------------------
// balanced limbs (float64 limb matmul)
// ---------------------------------------------------------------------------------------
// Signed representative used by the limb split (as CPUBackend._split_rows):
//   Z_2^64: the int64 view;  Z_2^32: the int32 view;  Z_q: u > (q-1)/2 ? u - q : u.
HC_HD hc_i64 hc_signed_u64(hc_u64 u) { return (hc_i64)u; }
HC_HD hc_i64 hc_signed_u32(hc_u32 u) { return (hc_i64)(hc_i32)u; }
HC_HD hc_i64 hc_signed_zq(hc_u64 u, hc_u64 q) {
    return (u > ((q - 1ULL) >> 1)) ? -(hc_i64)(q - u) : (hc_i64)u;
}

// Split v into L signed limbs of W bits: v = sum_i limb_i 2^(W i), |limb_i| <= 2^(W-1) for
// i < L-1 (the top limb takes the rest).  Intermediate arithmetic wraps mod 2^64 exactly as
// the Numba reference does (only the value mod 2^64 of the recombination matters there).
template <int L, int W>
HC_HD void hc_split_limbs(hc_i64 v, double* limbs) {
    const hc_u64 half = 1ULL << (W - 1);
    const hc_u64 mask = (1ULL << W) - 1ULL;
#pragma unroll
    for (int i = 0; i < L - 1; ++i) {
        const hc_i64 li = (hc_i64)(((hc_u64)v + half) & mask) - (hc_i64)half;
        limbs[i] = (double)li;
        v = ((hc_i64)((hc_u64)v - (hc_u64)li)) >> W;
    }
    limbs[L - 1] = (double)v;
}

// Z_2^64 Karatsuba split (CPUBackend._split64): a = a0 + a1 2^22 + a2 2^42 with balanced
// |a0| <= 2^21, |a1| <= 2^19 and the rest in a2 (|a2| <= 2^21 + 1), wrapping as the reference.
HC_HD void hc_split64_k(hc_i64 v, hc_i64* a0, hc_i64* a1, hc_i64* a2) {
    const hc_u64 h22 = 1ULL << 21, m22 = (1ULL << 22) - 1ULL;
    const hc_u64 h20 = 1ULL << 19, m20 = (1ULL << 20) - 1ULL;
    const hc_i64 l0 = (hc_i64)(((hc_u64)v + h22) & m22) - (hc_i64)h22;
    v = ((hc_i64)((hc_u64)v - (hc_u64)l0)) >> 22;
    const hc_i64 l1 = (hc_i64)(((hc_u64)v + h20) & m20) - (hc_i64)h20;
    *a0 = l0;
    *a1 = l1;
    *a2 = ((hc_i64)((hc_u64)v - (hc_u64)l1)) >> 20;
}

// Karatsuba recombination (CPUBackend._recombine64), exact integers |x| <= 2^53 in float64:
//   P00 + (Pk - P00 - P11) 2^22 + D2 2^42 + P11 2^44   (mod 2^64)
HC_HD hc_u64 hc_recombine64_k(double d2, double p00, double p11, double pk) {
    const hc_i64 D2 = (hc_i64)d2, P00 = (hc_i64)p00, P11 = (hc_i64)p11, PK = (hc_i64)pk;
    return (hc_u64)P00 + (((hc_u64)(PK - P00 - P11)) << 22) + (((hc_u64)D2) << 42) + (((hc_u64)P11) << 44);
}

// Recombination of diagonal sums (exact integers in float64, |x| < 2^53):
//   power of two:  acc + sum_d int64(diag_d) << (W d)   (mod 2^64; narrowed by the caller)
//   Z_q:           (acc + sum_d (diag_d mod q) * pow_d) mod q,  pow_d = 2^(W d) mod q
HC_HD hc_u64 hc_recombine_pow2_term(double x, int shift) {
    return ((hc_u64)(hc_i64)x) << shift;
}
HC_HD hc_u64 hc_recombine_zq_term(double x, hc_u64 pw, hc_u64 q, hc_u64 mu, hc_u64 k) {
    return hc_mulmod(hc_i64_mod((hc_i64)x, q), pw, q, mu, k);
}

// ---------------------------------------------------------------------------------------
// 192-bit lazy accumulator for sums of exact 128-bit products (Z_q matmul): never overflows
// for fewer than 2^64 terms; hc_acc192_finish reduces once to [0, q).
// ---------------------------------------------------------------------------------------
struct HcAcc192 {
    hc_u64 lo, hi, top;
};

HC_HD void hc_acc192_zero(HcAcc192& s) { s.lo = 0ULL; s.hi = 0ULL; s.top = 0ULL; }

HC_HD void hc_acc192_fma(HcAcc192& s, hc_u64 a, hc_u64 b) {
    hc_u64 ph;
    const hc_u64 pl = hc_mul128(a, b, &ph);
    const hc_u64 lo = s.lo + pl;
    const hc_u64 c0 = (lo < pl) ? 1ULL : 0ULL;
    const hc_u64 h1 = s.hi + ph;
    const hc_u64 c1 = (h1 < ph) ? 1ULL : 0ULL;
    const hc_u64 hi = h1 + c0;
    const hc_u64 c2 = (hi < c0) ? 1ULL : 0ULL;
    s.lo = lo;
    s.hi = hi;
    s.top += c1 + c2;
}

HC_HD hc_u64 hc_acc192_finish(const HcAcc192& s, hc_u64 q, hc_u64 mu, hc_u64 k, hc_u64 r64, hc_u64 r128) {
    return hc_reduce_u192(s.lo, s.hi, s.top, q, mu, k, r64, r128);
}
