// ChaCha20 block function (RFC 8439 section 2.3), CUDA C and plain C++.
//
// State: constants "expand 32-byte k", key words k[0..7] (little-endian bytes of the 32-byte
// key), block counter, nonce words n0..n2 (little-endian bytes of the 12-byte nonce).
// Output: the 16 little-endian uint32 keystream words of the block.
// Counter: the 64-bit block index ctr is split as (low 32 bits -> word 12, carry into word 13
// = n0 + (ctr >> 32)), which is what OpenSSL (and hence the `cryptography` package used by
// CPUBackend.chacha20_keystream) does when the 32-bit RFC counter wraps; hecrypt's Stream
// never goes past 2^32 blocks, where this is plain RFC 8439.
#pragma once
#include "modarith.cuh"

#define HC_ROTL32(v, c) (((v) << (c)) | ((v) >> (32 - (c))))
#define HC_QR(a, b, c, d)                  \
    a += b; d ^= a; d = HC_ROTL32(d, 16);  \
    c += d; b ^= c; b = HC_ROTL32(b, 12);  \
    a += b; d ^= a; d = HC_ROTL32(d, 8);   \
    c += d; b ^= c; b = HC_ROTL32(b, 7);

struct HcChaChaKey {
    hc_u32 k[8];
    hc_u32 n[3];
};

// Writes the 16 output words of block `ctr` into out[0..15] (out may be a register array:
// every index below is a compile-time constant).
HC_HD void hc_chacha20_block(const HcChaChaKey& key, hc_u64 ctr, hc_u32* out) {
    const hc_u32 i0 = 0x61707865u, i1 = 0x3320646eu, i2 = 0x79622d32u, i3 = 0x6b206574u;
    const hc_u32 i12 = (hc_u32)ctr;
    const hc_u32 i13 = key.n[0] + (hc_u32)(ctr >> 32);
    hc_u32 x0 = i0, x1 = i1, x2 = i2, x3 = i3;
    hc_u32 x4 = key.k[0], x5 = key.k[1], x6 = key.k[2], x7 = key.k[3];
    hc_u32 x8 = key.k[4], x9 = key.k[5], x10 = key.k[6], x11 = key.k[7];
    hc_u32 x12 = i12, x13 = i13, x14 = key.n[1], x15 = key.n[2];
#pragma unroll
    for (int r = 0; r < 10; ++r) {
        HC_QR(x0, x4, x8, x12)
        HC_QR(x1, x5, x9, x13)
        HC_QR(x2, x6, x10, x14)
        HC_QR(x3, x7, x11, x15)
        HC_QR(x0, x5, x10, x15)
        HC_QR(x1, x6, x11, x12)
        HC_QR(x2, x7, x8, x13)
        HC_QR(x3, x4, x9, x14)
    }
    out[0] = x0 + i0;   out[1] = x1 + i1;   out[2] = x2 + i2;   out[3] = x3 + i3;
    out[4] = x4 + key.k[0];  out[5] = x5 + key.k[1];  out[6] = x6 + key.k[2];  out[7] = x7 + key.k[3];
    out[8] = x8 + key.k[4];  out[9] = x9 + key.k[5];  out[10] = x10 + key.k[6]; out[11] = x11 + key.k[7];
    out[12] = x12 + i12;     out[13] = x13 + i13;     out[14] = x14 + key.n[1]; out[15] = x15 + key.n[2];
}
