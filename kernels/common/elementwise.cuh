// Grid-stride elementwise driver with 16-byte accesses (device code only).
//
// hc_map<T, NIN>(f, out, a0, a1, n): out[i] = f(a0[i], a1[i]) for i < n (NIN == 1: f(a0[i], a0[i])).
// When every pointer is 16-byte aligned, each thread moves one 16-byte vector per operand
// per iteration (2 x uint64 or 4 x uint32; coalesced across the warp) and the n % (16/sizeof T)
// tail is done element by element; otherwise the whole range is done element by element.
// 64-bit indices; any grid size is correct.
#pragma once

template <class T>
struct HcVec16;
template <>
struct HcVec16<unsigned long long> {
    typedef ulonglong2 V;
    enum { N = 2 };
    static __device__ __forceinline__ void load(const V* p, unsigned long long* e) {
        const V v = *p;
        e[0] = v.x; e[1] = v.y;
    }
    static __device__ __forceinline__ void store(V* p, const unsigned long long* e) {
        V v; v.x = e[0]; v.y = e[1];
        *p = v;
    }
};
template <>
struct HcVec16<unsigned int> {
    typedef uint4 V;
    enum { N = 4 };
    static __device__ __forceinline__ void load(const V* p, unsigned int* e) {
        const V v = *p;
        e[0] = v.x; e[1] = v.y; e[2] = v.z; e[3] = v.w;
    }
    static __device__ __forceinline__ void store(V* p, const unsigned int* e) {
        V v; v.x = e[0]; v.y = e[1]; v.z = e[2]; v.w = e[3];
        *p = v;
    }
};

template <class T, int NIN, class F>
__device__ __forceinline__ void hc_map(const F& f, T* __restrict__ out, const T* __restrict__ a0,
                                       const T* __restrict__ a1, long long n) {
    typedef HcVec16<T> VT;
    typedef typename VT::V V;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)blockDim.x * gridDim.x;
    unsigned long long align = (unsigned long long)out | (unsigned long long)a0;
    if (NIN > 1) align |= (unsigned long long)a1;
    long long done = 0;
    if ((align & 15ULL) == 0ULL) {
        const long long nv = n / VT::N;
        for (long long v = tid; v < nv; v += stride) {
            T x[VT::N], y[VT::N], o[VT::N];
            VT::load(reinterpret_cast<const V*>(a0) + v, x);
            if (NIN > 1) VT::load(reinterpret_cast<const V*>(a1) + v, y);
#pragma unroll
            for (int j = 0; j < VT::N; ++j) o[j] = f(x[j], NIN > 1 ? y[j] : x[j]);
            VT::store(reinterpret_cast<V*>(out) + v, o);
        }
        done = nv * VT::N;
    }
    for (long long i = done + tid; i < n; i += stride) out[i] = f(a0[i], NIN > 1 ? a1[i] : a0[i]);
}
