// ChaCha20 keystream (RFC 8439), one thread per 64-byte block.
//
// chacha20_blocks: out[16*i .. 16*i+15] = keystream words of block (counter + i), i < nblocks,
// as little-endian uint32 words: exactly CPUBackend.chacha20_keystream (OpenSSL via the
// `cryptography` package).  key words k0..k7 and nonce words n0..n2 are the little-endian
// uint32 words of the 32-byte key and 12-byte nonce, passed by value (no upload).
// Counter carry past 2^32 blocks follows OpenSSL (see common/chacha20.cuh).
#include "common/chacha20.cuh"

typedef unsigned long long u64;
typedef unsigned int u32;

extern "C" __global__ void chacha20_blocks(u32* __restrict__ out, u64 counter, long long nblocks,
                                           u32 k0, u32 k1, u32 k2, u32 k3, u32 k4, u32 k5, u32 k6, u32 k7,
                                           u32 n0, u32 n1, u32 n2) {
    HcChaChaKey key;
    key.k[0] = k0; key.k[1] = k1; key.k[2] = k2; key.k[3] = k3;
    key.k[4] = k4; key.k[5] = k5; key.k[6] = k6; key.k[7] = k7;
    key.n[0] = n0; key.n[1] = n1; key.n[2] = n2;
    for (long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x; b < nblocks;
         b += (long long)blockDim.x * gridDim.x) {
        u32 w[16];
        hc_chacha20_block(key, counter + (u64)b, w);
        // 4 x 16-byte stores (out is 256-byte aligned by the allocator; each block is 64 bytes)
        uint4* dst = reinterpret_cast<uint4*>(out + 16 * b);
        dst[0] = make_uint4(w[0], w[1], w[2], w[3]);
        dst[1] = make_uint4(w[4], w[5], w[6], w[7]);
        dst[2] = make_uint4(w[8], w[9], w[10], w[11]);
        dst[3] = make_uint4(w[12], w[13], w[14], w[15]);
    }
}
