/* AVX2 kernels for ML-DSA: forward and inverse NTT and pointwise Montgomery products on
 * eight 32-bit lanes. They perform exactly the portable code's operations on every
 * coefficient (same butterflies, same Montgomery reductions), so results are bit-identical;
 * the last three NTT layers (distance 4, 2, 1) regroup coefficients with permutes so that
 * every butterfly stays vertical. Compiled for AVX2 with a target attribute and chosen at
 * run time (qv_mldsa_path). No data-dependent branches or indices. */
#include <stdatomic.h>

#include "pqc/mldsa_internal.h"

/* -1 until first use; then the best path of the CPU. A separate cap serves the tests. */
static atomic_int mldsa_cpu_path = -1;
static atomic_int mldsa_path_cap = QV_MLDSA_PATH_AVX512;

static int cpu_path(void);

int qv_mldsa_path(void)
{
    int v = atomic_load_explicit(&mldsa_cpu_path, memory_order_relaxed);
    if (v < 0) { /* every thread computes the same answer */
        v = cpu_path();
        atomic_store_explicit(&mldsa_cpu_path, v, memory_order_relaxed);
    }
    int cap = atomic_load_explicit(&mldsa_path_cap, memory_order_relaxed);
    return v < cap ? v : cap;
}

void qv_mldsa_set_path_limit(int max_path)
{
    if (max_path < 0 || max_path > QV_MLDSA_PATH_AVX512)
        max_path = QV_MLDSA_PATH_AVX512;
    atomic_store_explicit(&mldsa_path_cap, max_path, memory_order_relaxed);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

static int cpu_path(void)
{
    if (!__builtin_cpu_supports("avx2"))
        return QV_MLDSA_PATH_PORTABLE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        return QV_MLDSA_PATH_AVX512;
    return QV_MLDSA_PATH_AVX2;
}

/* a * b * 2^-32 mod q per lane (|a b| < 2^31 q), as mont_reduce((int64_t)a * b). */
static inline AVX2 __m256i mont_mul(__m256i a, __m256i b)
{
    const __m256i q = _mm256_set1_epi32(QV_MLDSA_Q);
    const __m256i qinv = _mm256_set1_epi32(QV_MLDSA_QINV);
    __m256i pe = _mm256_mul_epi32(a, b);
    __m256i po = _mm256_mul_epi32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32));
    __m256i te = _mm256_mul_epi32(pe, qinv); /* low 32 bits: t = p * q^-1 mod 2^32 */
    __m256i to = _mm256_mul_epi32(po, qinv);
    __m256i re = _mm256_sub_epi64(pe, _mm256_mul_epi32(te, q)); /* (p - t q): low half 0 */
    __m256i ro = _mm256_sub_epi64(po, _mm256_mul_epi32(to, q));
    return _mm256_blend_epi32(_mm256_srli_epi64(re, 32), ro, 0xAA);
}

/* Cooley-Tukey butterfly: (x, y) -> (x + z y, x - z y). */
static inline AVX2 void ct_butterfly(__m256i *x, __m256i *y, __m256i z)
{
    __m256i t = mont_mul(z, *y);
    *y = _mm256_sub_epi32(*x, t);
    *x = _mm256_add_epi32(*x, t);
}

/* Gentleman-Sande butterfly: (x, y) -> (x + y, z (x - y)). */
static inline AVX2 void gs_butterfly(__m256i *x, __m256i *y, __m256i z)
{
    __m256i t = *x;
    *x = _mm256_add_epi32(t, *y);
    *y = mont_mul(z, _mm256_sub_epi32(t, *y));
}

static inline AVX2 __m256i load(const int32_t *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline AVX2 void store(int32_t *p, __m256i v)
{
    _mm256_storeu_si256((__m256i *)p, v);
}

/* Zeta of block b at the layer of distance len (forward order), and the inverse's. */
static inline int32_t fwd_zeta(unsigned len, unsigned b)
{
    return qv_mldsa_zetas[QV_MLDSA_N / (2 * len) + b];
}

static inline int32_t inv_zeta(unsigned len, unsigned b)
{
    return -qv_mldsa_zetas[2 * (QV_MLDSA_N / (2 * len)) - 1 - b];
}

/* The forward NTT from the layer of distance `top` down (the AVX-512 code runs the layers
 * above it). */
static AVX2 void ntt_from_avx2(int32_t a[QV_MLDSA_N], unsigned top)
{
    /* Layers with distance >= 8: whole vectors pair up. */
    for (unsigned len = top; len >= 8; len >>= 1) {
        for (unsigned start = 0, b = 0; start < QV_MLDSA_N; start += 2 * len, b++) {
            __m256i z = _mm256_set1_epi32(fwd_zeta(len, b));
            for (unsigned j = start; j < start + len; j += 8) {
                __m256i x = load(a + j), y = load(a + j + len);
                ct_butterfly(&x, &y, z);
                store(a + j, x);
                store(a + j + len, y);
            }
        }
    }
    /* Distances 4, 2, 1 on 16 coefficients c0..c15 (two 8-blocks e = 16 i / 8). */
    for (unsigned i = 0; i < QV_MLDSA_N; i += 16) {
        __m256i x = load(a + i), y = load(a + i + 8);
        unsigned e = i / 8;
        /* len 4: A = c0-3 | c8-11, B = c4-7 | c12-15 */
        __m256i A = _mm256_permute2x128_si256(x, y, 0x20);
        __m256i B = _mm256_permute2x128_si256(x, y, 0x31);
        __m256i z4 = _mm256_setr_epi32(fwd_zeta(4, e), fwd_zeta(4, e), fwd_zeta(4, e),
                                       fwd_zeta(4, e), fwd_zeta(4, e + 1), fwd_zeta(4, e + 1),
                                       fwd_zeta(4, e + 1), fwd_zeta(4, e + 1));
        ct_butterfly(&A, &B, z4);
        /* len 2: A2 = c0 c1 c4 c5 | c8 c9 c12 c13, B2 = c2 c3 c6 c7 | c10 c11 c14 c15 */
        __m256i A2 = _mm256_unpacklo_epi64(A, B);
        __m256i B2 = _mm256_unpackhi_epi64(A, B);
        unsigned f = 2 * e;
        __m256i z2 = _mm256_setr_epi32(fwd_zeta(2, f), fwd_zeta(2, f), fwd_zeta(2, f + 1),
                                       fwd_zeta(2, f + 1), fwd_zeta(2, f + 2),
                                       fwd_zeta(2, f + 2), fwd_zeta(2, f + 3),
                                       fwd_zeta(2, f + 3));
        ct_butterfly(&A2, &B2, z2);
        /* len 1: E = c0 c2 c4 c6 | c8 .. c14, O = c1 c3 c5 c7 | c9 .. c15: lane i holds pair
         * (c2i, c2i+1) */
        __m256i E = _mm256_blend_epi32(A2, _mm256_slli_epi64(B2, 32), 0xAA);
        __m256i O = _mm256_blend_epi32(_mm256_srli_epi64(A2, 32), B2, 0xAA);
        unsigned g = 4 * e;
        __m256i z1 = _mm256_setr_epi32(fwd_zeta(1, g), fwd_zeta(1, g + 1), fwd_zeta(1, g + 2),
                                       fwd_zeta(1, g + 3), fwd_zeta(1, g + 4),
                                       fwd_zeta(1, g + 5), fwd_zeta(1, g + 6),
                                       fwd_zeta(1, g + 7));
        ct_butterfly(&E, &O, z1);
        /* back to natural order */
        A2 = _mm256_blend_epi32(E, _mm256_slli_epi64(O, 32), 0xAA);
        B2 = _mm256_blend_epi32(_mm256_srli_epi64(E, 32), O, 0xAA);
        A = _mm256_unpacklo_epi64(A2, B2);
        B = _mm256_unpackhi_epi64(A2, B2);
        store(a + i, _mm256_permute2x128_si256(A, B, 0x20));
        store(a + i + 8, _mm256_permute2x128_si256(A, B, 0x31));
    }
}

AVX2 void qv_mldsa_ntt_avx2(int32_t a[QV_MLDSA_N])
{
    ntt_from_avx2(a, 128);
}

/* The inverse NTT up to and including the layer of distance `top`; with top = 64 the
 * caller still has to run the last layer (distance 128, with the scaling folded in). */
static AVX2 void invntt_upto_avx2(int32_t a[QV_MLDSA_N], unsigned top)
{
    for (unsigned i = 0; i < QV_MLDSA_N; i += 16) {
        __m256i x = load(a + i), y = load(a + i + 8);
        unsigned e = i / 8, f = 2 * e, g = 4 * e;
        __m256i A = _mm256_permute2x128_si256(x, y, 0x20);
        __m256i B = _mm256_permute2x128_si256(x, y, 0x31);
        __m256i A2 = _mm256_unpacklo_epi64(A, B);
        __m256i B2 = _mm256_unpackhi_epi64(A, B);
        __m256i E = _mm256_blend_epi32(A2, _mm256_slli_epi64(B2, 32), 0xAA);
        __m256i O = _mm256_blend_epi32(_mm256_srli_epi64(A2, 32), B2, 0xAA);
        __m256i z1 = _mm256_setr_epi32(inv_zeta(1, g), inv_zeta(1, g + 1), inv_zeta(1, g + 2),
                                       inv_zeta(1, g + 3), inv_zeta(1, g + 4),
                                       inv_zeta(1, g + 5), inv_zeta(1, g + 6),
                                       inv_zeta(1, g + 7));
        gs_butterfly(&E, &O, z1);
        A2 = _mm256_blend_epi32(E, _mm256_slli_epi64(O, 32), 0xAA);
        B2 = _mm256_blend_epi32(_mm256_srli_epi64(E, 32), O, 0xAA);
        __m256i z2 = _mm256_setr_epi32(inv_zeta(2, f), inv_zeta(2, f), inv_zeta(2, f + 1),
                                       inv_zeta(2, f + 1), inv_zeta(2, f + 2),
                                       inv_zeta(2, f + 2), inv_zeta(2, f + 3),
                                       inv_zeta(2, f + 3));
        gs_butterfly(&A2, &B2, z2);
        A = _mm256_unpacklo_epi64(A2, B2);
        B = _mm256_unpackhi_epi64(A2, B2);
        __m256i z4 = _mm256_setr_epi32(inv_zeta(4, e), inv_zeta(4, e), inv_zeta(4, e),
                                       inv_zeta(4, e), inv_zeta(4, e + 1), inv_zeta(4, e + 1),
                                       inv_zeta(4, e + 1), inv_zeta(4, e + 1));
        gs_butterfly(&A, &B, z4);
        store(a + i, _mm256_permute2x128_si256(A, B, 0x20));
        store(a + i + 8, _mm256_permute2x128_si256(A, B, 0x31));
    }
    for (unsigned len = 8; len <= top; len <<= 1) {
        for (unsigned start = 0, b = 0; start < QV_MLDSA_N; start += 2 * len, b++) {
            __m256i z = _mm256_set1_epi32(inv_zeta(len, b));
            for (unsigned j = start; j < start + len; j += 8) {
                __m256i x = load(a + j), y = load(a + j + len);
                gs_butterfly(&x, &y, z);
                store(a + j, x);
                store(a + j + len, y);
            }
        }
    }
}

AVX2 void qv_mldsa_invntt_tomont_avx2(int32_t a[QV_MLDSA_N])
{
    invntt_upto_avx2(a, QV_MLDSA_N / 4);
    /* last layer with the scaling folded in, as in the portable code */
    const __m256i f = _mm256_set1_epi32(QV_MLDSA_INVNTT_F);
    const __m256i fz = _mm256_set1_epi32(QV_MLDSA_INVNTT_FZ);
    for (unsigned j = 0; j < QV_MLDSA_N / 2; j += 8) {
        __m256i x = load(a + j), y = load(a + j + QV_MLDSA_N / 2);
        store(a + j, mont_mul(f, _mm256_add_epi32(x, y)));
        store(a + j + QV_MLDSA_N / 2, mont_mul(fz, _mm256_sub_epi32(x, y)));
    }
}

AVX2 void qv_mldsa_pointwise_avx2(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                                  const int32_t b[QV_MLDSA_N])
{
    for (unsigned j = 0; j < QV_MLDSA_N; j += 8)
        store(r + j, mont_mul(load(a + j), load(b + j)));
}

AVX2 void qv_mldsa_pointwise_acc_avx2(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                                      const int32_t b[QV_MLDSA_N])
{
    for (unsigned j = 0; j < QV_MLDSA_N; j += 8)
        store(r + j, _mm256_add_epi32(load(r + j), mont_mul(load(a + j), load(b + j))));
}

AVX2 void qv_mldsa_ball_swap_avx2(int8_t c[QV_MLDSA_N], uint32_t i, uint32_t j, int8_t sign)
{
    const __m256i jv = _mm256_set1_epi8((char)j);
    const __m256i step = _mm256_set1_epi8(32);
    const __m256i first = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                           16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                                           29, 30, 31);
    __m256i idx = first, acc = _mm256_setzero_si256();
    for (unsigned p = 0; p < QV_MLDSA_N; p += 32, idx = _mm256_add_epi8(idx, step)) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(c + p));
        acc = _mm256_or_si256(acc, _mm256_and_si256(v, _mm256_cmpeq_epi8(idx, jv)));
    }
    /* At most one byte is non-zero: the sums of absolute byte values find it. */
    __m256i sums = _mm256_sad_epu8(acc, _mm256_setzero_si256());
    __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
    s2 = _mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2));
    c[i] = (int8_t)(uint8_t)_mm_cvtsi128_si32(s2);
    const __m256i sv = _mm256_set1_epi8((char)sign);
    idx = first;
    for (unsigned p = 0; p < QV_MLDSA_N; p += 32, idx = _mm256_add_epi8(idx, step)) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(c + p));
        _mm256_storeu_si256((__m256i *)(c + p),
                            _mm256_blendv_epi8(v, sv, _mm256_cmpeq_epi8(idx, jv)));
    }
}

/* RejNTTPoly parsing eight candidates at a time (public data: the matrix A). For each 8-bit
 * mask of accepted candidates, the positions of its set bits, as nibbles, lowest first. */
static const uint32_t compress_idx[256] = {
    0x00000000, 0x00000000, 0x00000001, 0x00000010, 0x00000002, 0x00000020, 0x00000021, 0x00000210,
    0x00000003, 0x00000030, 0x00000031, 0x00000310, 0x00000032, 0x00000320, 0x00000321, 0x00003210,
    0x00000004, 0x00000040, 0x00000041, 0x00000410, 0x00000042, 0x00000420, 0x00000421, 0x00004210,
    0x00000043, 0x00000430, 0x00000431, 0x00004310, 0x00000432, 0x00004320, 0x00004321, 0x00043210,
    0x00000005, 0x00000050, 0x00000051, 0x00000510, 0x00000052, 0x00000520, 0x00000521, 0x00005210,
    0x00000053, 0x00000530, 0x00000531, 0x00005310, 0x00000532, 0x00005320, 0x00005321, 0x00053210,
    0x00000054, 0x00000540, 0x00000541, 0x00005410, 0x00000542, 0x00005420, 0x00005421, 0x00054210,
    0x00000543, 0x00005430, 0x00005431, 0x00054310, 0x00005432, 0x00054320, 0x00054321, 0x00543210,
    0x00000006, 0x00000060, 0x00000061, 0x00000610, 0x00000062, 0x00000620, 0x00000621, 0x00006210,
    0x00000063, 0x00000630, 0x00000631, 0x00006310, 0x00000632, 0x00006320, 0x00006321, 0x00063210,
    0x00000064, 0x00000640, 0x00000641, 0x00006410, 0x00000642, 0x00006420, 0x00006421, 0x00064210,
    0x00000643, 0x00006430, 0x00006431, 0x00064310, 0x00006432, 0x00064320, 0x00064321, 0x00643210,
    0x00000065, 0x00000650, 0x00000651, 0x00006510, 0x00000652, 0x00006520, 0x00006521, 0x00065210,
    0x00000653, 0x00006530, 0x00006531, 0x00065310, 0x00006532, 0x00065320, 0x00065321, 0x00653210,
    0x00000654, 0x00006540, 0x00006541, 0x00065410, 0x00006542, 0x00065420, 0x00065421, 0x00654210,
    0x00006543, 0x00065430, 0x00065431, 0x00654310, 0x00065432, 0x00654320, 0x00654321, 0x06543210,
    0x00000007, 0x00000070, 0x00000071, 0x00000710, 0x00000072, 0x00000720, 0x00000721, 0x00007210,
    0x00000073, 0x00000730, 0x00000731, 0x00007310, 0x00000732, 0x00007320, 0x00007321, 0x00073210,
    0x00000074, 0x00000740, 0x00000741, 0x00007410, 0x00000742, 0x00007420, 0x00007421, 0x00074210,
    0x00000743, 0x00007430, 0x00007431, 0x00074310, 0x00007432, 0x00074320, 0x00074321, 0x00743210,
    0x00000075, 0x00000750, 0x00000751, 0x00007510, 0x00000752, 0x00007520, 0x00007521, 0x00075210,
    0x00000753, 0x00007530, 0x00007531, 0x00075310, 0x00007532, 0x00075320, 0x00075321, 0x00753210,
    0x00000754, 0x00007540, 0x00007541, 0x00075410, 0x00007542, 0x00075420, 0x00075421, 0x00754210,
    0x00007543, 0x00075430, 0x00075431, 0x00754310, 0x00075432, 0x00754320, 0x00754321, 0x07543210,
    0x00000076, 0x00000760, 0x00000761, 0x00007610, 0x00000762, 0x00007620, 0x00007621, 0x00076210,
    0x00000763, 0x00007630, 0x00007631, 0x00076310, 0x00007632, 0x00076320, 0x00076321, 0x00763210,
    0x00000764, 0x00007640, 0x00007641, 0x00076410, 0x00007642, 0x00076420, 0x00076421, 0x00764210,
    0x00007643, 0x00076430, 0x00076431, 0x00764310, 0x00076432, 0x00764320, 0x00764321, 0x07643210,
    0x00000765, 0x00007650, 0x00007651, 0x00076510, 0x00007652, 0x00076520, 0x00076521, 0x00765210,
    0x00007653, 0x00076530, 0x00076531, 0x00765310, 0x00076532, 0x00765320, 0x00765321, 0x07653210,
    0x00007654, 0x00076540, 0x00076541, 0x00765410, 0x00076542, 0x00765420, 0x00765421, 0x07654210,
    0x00076543, 0x00765430, 0x00765431, 0x07654310, 0x00765432, 0x07654320, 0x07654321, 0x76543210,
};

AVX2 unsigned qv_mldsa_rej_uniform_avx2(int32_t *a, unsigned j, const uint8_t *buf, size_t len)
{
    const __m256i mask23 = _mm256_set1_epi32(0x7FFFFF);
    const __m256i q = _mm256_set1_epi32(QV_MLDSA_Q);
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    /* bytes 0..15 in the low half, 8..23 in the high half, then each 3-byte candidate into a
     * 32-bit lane */
    const __m256i spread = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,
                                            4, 5, 6, -1, 7, 8, 9, -1, 10, 11, 12, -1, 13, 14,
                                            15, -1);
    size_t pos = 0;
    while (j + 8 <= QV_MLDSA_N && pos + 32 <= len) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(buf + pos));
        v = _mm256_permute4x64_epi64(v, 0x94); /* 64-bit lanes 0, 1, 1, 2 */
        v = _mm256_and_si256(_mm256_shuffle_epi8(v, spread), mask23);
        unsigned good = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(q, v)));
        __m256i perm = _mm256_and_si256(
            _mm256_srlv_epi32(_mm256_set1_epi32((int32_t)compress_idx[good]), shifts),
            _mm256_set1_epi32(7));
        _mm256_storeu_si256((__m256i *)(a + j), _mm256_permutevar8x32_epi32(v, perm));
        j += (unsigned)__builtin_popcount(good);
        pos += 24;
    }
    for (; pos + 3 <= len && j < QV_MLDSA_N; pos += 3) {
        uint32_t z = buf[pos] | ((uint32_t)buf[pos + 1] << 8) |
                     ((uint32_t)(buf[pos + 2] & 0x7f) << 16);
        if (z < QV_MLDSA_Q)
            a[j++] = (int32_t)z;
    }
    return j;
}

AVX2 void qv_mldsa_unpack_mask_avx2(int32_t y[QV_MLDSA_N], const uint8_t *in, unsigned bits,
                                    int32_t gamma1)
{
    /* Eight fields per step, 8 * bits bytes. Field i starts at bit bits * i: its byte offset
     * and bit shift, with the low four fields read from the low 128-bit half (bytes 0..15 of
     * the step) and the high four from the high half (bytes 8..23). */
    __m256i spread, shift;
    if (bits == 20) {
        spread = _mm256_setr_epi8(0, 1, 2, 3, 2, 3, 4, 5, 5, 6, 7, 8, 7, 8, 9, 10,
                                  2, 3, 4, 5, 4, 5, 6, 7, 7, 8, 9, 10, 9, 10, 11, 12);
        shift = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
    } else { /* 18 */
        spread = _mm256_setr_epi8(0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9,
                                  1, 2, 3, 4, 3, 4, 5, 6, 5, 6, 7, 8, 7, 8, 9, 10);
        shift = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    }
    const __m256i mask = _mm256_set1_epi32((int32_t)((1u << bits) - 1));
    const __m256i g = _mm256_set1_epi32(gamma1);
    for (unsigned i = 0; i < QV_MLDSA_N; i += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(in + (size_t)i * bits / 8));
        v = _mm256_permute4x64_epi64(v, 0x94); /* 64-bit lanes 0, 1, 1, 2 */
        v = _mm256_shuffle_epi8(v, spread);
        v = _mm256_and_si256(_mm256_srlv_epi32(v, shift), mask);
        store(y + i, _mm256_sub_epi32(g, v));
    }
}

/* ---- AVX-512: sixteen lanes for the NTT layers of distance >= 16 and the pointwise
 * products; the shorter distances reuse the AVX2 code above. Same operations, same results. */
#define AVX512 __attribute__((target("avx2,avx512f")))

static inline AVX512 __m512i mont_mul512(__m512i a, __m512i b)
{
    const __m512i q = _mm512_set1_epi32(QV_MLDSA_Q);
    const __m512i qinv = _mm512_set1_epi32(QV_MLDSA_QINV);
    __m512i pe = _mm512_mul_epi32(a, b);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(b, 32));
    __m512i te = _mm512_mul_epi32(pe, qinv);
    __m512i to = _mm512_mul_epi32(po, qinv);
    __m512i re = _mm512_sub_epi64(pe, _mm512_mul_epi32(te, q));
    __m512i ro = _mm512_sub_epi64(po, _mm512_mul_epi32(to, q));
    return _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(re, 32), ro);
}

static inline AVX512 __m512i load16(const int32_t *p)
{
    return _mm512_loadu_si512((const void *)p);
}

static inline AVX512 void store16(int32_t *p, __m512i v)
{
    _mm512_storeu_si512((void *)p, v);
}

/* The layers of distance 8, 4, 2, 1 on 32 coefficients c0..c31 held in x (c0..c15) and
 * y (c16..c31). Regrouped with 64-bit permutes so every butterfly is vertical:
 *   len 8: A = c0-7 | c16-23,            B = c8-15 | c24-31
 *   len 4: A2 = c0-3 | c16-19 | c8-11 | c24-27, B2 = the +4 partners
 *   len 2: A3 = c0 c1 c4 c5 | ..., B3 = c2 c3 c6 c7 | ... (64-bit unpack per 128-bit lane)
 *   len 1: E = even, O = odd coefficients (32-bit blend).
 * zeta vectors list, lane by lane, the block number of each butterfly. */
static inline AVX512 __m512i perm2(__m512i a, __m512i b, long long i0, long long i1,
                                   long long i2, long long i3, long long i4, long long i5,
                                   long long i6, long long i7)
{
    return _mm512_permutex2var_epi64(a, _mm512_setr_epi64(i0, i1, i2, i3, i4, i5, i6, i7), b);
}

/* The zetas of those four layers for each 32-coefficient chunk, in the lane order above:
 * [chunk][layer: distance 8, 4, 2, 1][lane] (the inverse's already negated). Generated from
 * qv_mldsa_zetas by fwd_zeta / inv_zeta; the kernel test checks the results bit for bit. */
static const int32_t tail_zetas_fwd[8][4][16] = {
    {
        {2725464, 2725464, 2725464, 2725464, 2725464, 2725464, 2725464, 2725464, 1024112, 1024112, 1024112, 1024112, 1024112, 1024112, 1024112, 1024112},
        {2706023, 2706023, 2706023, 2706023, 3077325, 3077325, 3077325, 3077325, 95776, 95776, 95776, 95776, 3530437, 3530437, 3530437, 3530437},
        {-3930395, -3930395, -1528703, -1528703, -1452451, -1452451, 3475950, 3475950, -3677745, -3677745, -3041255, -3041255, 2176455, 2176455, -1585221, -1585221},
        {2091667, 3407706, 2316500, 3817976, 266997, 2434439, -1235728, 3513181, -3342478, 2244091, -2446433, -3562462, -3520352, -3759364, -1197226, -3193378},
    },
    {
        {-1079900, -1079900, -1079900, -1079900, -1079900, -1079900, -1079900, -1079900, 3585928, 3585928, 3585928, 3585928, 3585928, 3585928, 3585928, 3585928},
        {-1661693, -1661693, -1661693, -1661693, -2537516, -2537516, -2537516, -2537516, -3592148, -3592148, -3592148, -3592148, 3915439, 3915439, 3915439, 3915439},
        {-1257611, -1257611, 1939314, 1939314, -3190144, -3190144, -3157330, -3157330, -4083598, -4083598, -1000202, -1000202, -3632928, -3632928, 126922, 126922},
        {900702, 1859098, 909542, 819034, -655327, -3122442, 2031748, 3207046, 495491, -1613174, -43260, -522500, -3556995, -525098, -768622, -3595838},
    },
    {
        {-549488, -549488, -549488, -549488, -549488, -549488, -549488, -549488, -1119584, -1119584, -1119584, -1119584, -1119584, -1119584, -1119584, -1119584},
        {-3861115, -3861115, -3861115, -3861115, 3574422, 3574422, 3574422, 3574422, -3043716, -3043716, -3043716, -3043716, -2867647, -2867647, -2867647, -2867647},
        {3412210, 3412210, -983419, -983419, -2967645, -2967645, -3693493, -3693493, 2147896, 2147896, 2715295, 2715295, -411027, -411027, -2477047, -2477047},
        {342297, 286988, -2437823, 4108315, 2842341, 2691481, -2590150, 1265009, 3437287, -3342277, 1735879, 203044, 4055324, 1247620, 2486353, 1595974},
    },
    {
        {2619752, 2619752, 2619752, 2619752, 2619752, 2619752, 2619752, 2619752, -2108549, -2108549, -2108549, -2108549, -2108549, -2108549, -2108549, -2108549},
        {3539968, 3539968, 3539968, 3539968, 2348700, 2348700, 2348700, 2348700, -300467, -300467, -300467, -300467, -539299, -539299, -539299, -539299},
        {-671102, -671102, -1228525, -1228525, -381987, -381987, 1349076, 1349076, -22981, -22981, -1308169, -1308169, 1852771, 1852771, -1430430, -1430430},
        {-3767016, 1250494, 2635921, -3548272, -1333058, 1237275, -3318210, -1430225, -2994039, 1869119, 1903435, -1050970, -451100, 1312455, 3306115, -1962642},
    },
    {
        {-2118186, -2118186, -2118186, -2118186, -2118186, -2118186, -2118186, -2118186, -3859737, -3859737, -3859737, -3859737, -3859737, -3859737, -3859737, -3859737},
        {-1699267, -1699267, -1699267, -1699267, 3505694, 3505694, 3505694, 3505694, -1643818, -1643818, -1643818, -1643818, -3821735, -3821735, -3821735, -3821735},
        {-3343383, -3343383, 264944, 264944, 44288, 44288, -1100098, -1100098, 508951, 508951, 3097992, 3097992, 904516, 904516, 3958618, 3958618},
        {-1279661, 1917081, -2546312, -1374803, -542412, -2831860, -1671176, -1846953, 1500165, 777191, 2235880, 3406031, -2584293, -3724270, 594136, -3776993},
    },
    {
        {-1399561, -1399561, -1399561, -1399561, -1399561, -1399561, -1399561, -1399561, -3277672, -3277672, -3277672, -3277672, -3277672, -3277672, -3277672, -3277672},
        {3507263, 3507263, 3507263, 3507263, -1600420, -1600420, -1600420, -1600420, -2140649, -2140649, -2140649, -2140649, 3699596, 3699596, 3699596, 3699596},
        {-3724342, -3724342, -8578, -8578, 2389356, 2389356, -210977, -210977, 1653064, 1653064, -3249728, -3249728, 759969, 759969, -1316856, -1316856},
        {-2013608, 2432395, 2454455, -164721, -3183426, 162844, 1616392, 3014001, 1957272, 3369112, 185531, -1207385, 810149, 1652634, -3694233, -1799107},
    },
    {
        {1757237, 1757237, 1757237, 1757237, 1757237, 1757237, 1757237, 1757237, -19422, -19422, -19422, -19422, -19422, -19422, -19422, -19422},
        {811944, 811944, 811944, 811944, 954230, 954230, 954230, 954230, 531354, 531354, 531354, 531354, 3881043, 3881043, 3881043, 3881043},
        {189548, 189548, -3553272, -3553272, -2409325, -2409325, -177440, -177440, 3159746, 3159746, -1851402, -1851402, 1315589, 1315589, 1341330, 1341330},
        {-3038916, 3523897, 3866901, 269760, -426683, 1723600, -1803090, 1910376, 2213111, -975884, 1717735, 472078, -1667432, -1104333, -260646, -3833893},
    },
    {
        {4010497, 4010497, 4010497, 4010497, 4010497, 4010497, 4010497, 4010497, 280005, 280005, 280005, 280005, 280005, 280005, 280005, 280005},
        {3900724, 3900724, 3900724, 3900724, 2071892, 2071892, 2071892, 2071892, -2556880, -2556880, -2556880, -2556880, -2797779, -2797779, -2797779, -2797779},
        {1285669, 1285669, -1584928, -1584928, -3019102, -3019102, -3881060, -3881060, -812732, -812732, -1439742, -1439742, -3628969, -3628969, 3839961, 3839961},
        {-2939036, -2235985, -420899, -2286327, -554416, 3919660, -48306, -1362209, 183443, -976891, 1612842, -3545687, 3937738, 1400424, -846154, 1976782},
    },
};

static const int32_t tail_zetas_inv[8][4][16] = {
    {
        {-280005, -280005, -280005, -280005, -280005, -280005, -280005, -280005, -4010497, -4010497, -4010497, -4010497, -4010497, -4010497, -4010497, -4010497},
        {2797779, 2797779, 2797779, 2797779, 2556880, 2556880, 2556880, 2556880, -2071892, -2071892, -2071892, -2071892, -3900724, -3900724, -3900724, -3900724},
        {-3839961, -3839961, 3628969, 3628969, 1439742, 1439742, 812732, 812732, 3881060, 3881060, 3019102, 3019102, 1584928, 1584928, -1285669, -1285669},
        {-1976782, 846154, -1400424, -3937738, 3545687, -1612842, 976891, -183443, 1362209, 48306, -3919660, 554416, 2286327, 420899, 2235985, 2939036},
    },
    {
        {19422, 19422, 19422, 19422, 19422, 19422, 19422, 19422, -1757237, -1757237, -1757237, -1757237, -1757237, -1757237, -1757237, -1757237},
        {-3881043, -3881043, -3881043, -3881043, -531354, -531354, -531354, -531354, -954230, -954230, -954230, -954230, -811944, -811944, -811944, -811944},
        {-1341330, -1341330, -1315589, -1315589, 1851402, 1851402, -3159746, -3159746, 177440, 177440, 2409325, 2409325, 3553272, 3553272, -189548, -189548},
        {3833893, 260646, 1104333, 1667432, -472078, -1717735, 975884, -2213111, -1910376, 1803090, -1723600, 426683, -269760, -3866901, -3523897, 3038916},
    },
    {
        {3277672, 3277672, 3277672, 3277672, 3277672, 3277672, 3277672, 3277672, 1399561, 1399561, 1399561, 1399561, 1399561, 1399561, 1399561, 1399561},
        {-3699596, -3699596, -3699596, -3699596, 2140649, 2140649, 2140649, 2140649, 1600420, 1600420, 1600420, 1600420, -3507263, -3507263, -3507263, -3507263},
        {1316856, 1316856, -759969, -759969, 3249728, 3249728, -1653064, -1653064, 210977, 210977, -2389356, -2389356, 8578, 8578, 3724342, 3724342},
        {1799107, 3694233, -1652634, -810149, 1207385, -185531, -3369112, -1957272, -3014001, -1616392, -162844, 3183426, 164721, -2454455, -2432395, 2013608},
    },
    {
        {3859737, 3859737, 3859737, 3859737, 3859737, 3859737, 3859737, 3859737, 2118186, 2118186, 2118186, 2118186, 2118186, 2118186, 2118186, 2118186},
        {3821735, 3821735, 3821735, 3821735, 1643818, 1643818, 1643818, 1643818, -3505694, -3505694, -3505694, -3505694, 1699267, 1699267, 1699267, 1699267},
        {-3958618, -3958618, -904516, -904516, -3097992, -3097992, -508951, -508951, 1100098, 1100098, -44288, -44288, -264944, -264944, 3343383, 3343383},
        {3776993, -594136, 3724270, 2584293, -3406031, -2235880, -777191, -1500165, 1846953, 1671176, 2831860, 542412, 1374803, 2546312, -1917081, 1279661},
    },
    {
        {2108549, 2108549, 2108549, 2108549, 2108549, 2108549, 2108549, 2108549, -2619752, -2619752, -2619752, -2619752, -2619752, -2619752, -2619752, -2619752},
        {539299, 539299, 539299, 539299, 300467, 300467, 300467, 300467, -2348700, -2348700, -2348700, -2348700, -3539968, -3539968, -3539968, -3539968},
        {1430430, 1430430, -1852771, -1852771, 1308169, 1308169, 22981, 22981, -1349076, -1349076, 381987, 381987, 1228525, 1228525, 671102, 671102},
        {1962642, -3306115, -1312455, 451100, 1050970, -1903435, -1869119, 2994039, 1430225, 3318210, -1237275, 1333058, 3548272, -2635921, -1250494, 3767016},
    },
    {
        {1119584, 1119584, 1119584, 1119584, 1119584, 1119584, 1119584, 1119584, 549488, 549488, 549488, 549488, 549488, 549488, 549488, 549488},
        {2867647, 2867647, 2867647, 2867647, 3043716, 3043716, 3043716, 3043716, -3574422, -3574422, -3574422, -3574422, 3861115, 3861115, 3861115, 3861115},
        {2477047, 2477047, 411027, 411027, -2715295, -2715295, -2147896, -2147896, 3693493, 3693493, 2967645, 2967645, 983419, 983419, -3412210, -3412210},
        {-1595974, -2486353, -1247620, -4055324, -203044, -1735879, 3342277, -3437287, -1265009, 2590150, -2691481, -2842341, -4108315, 2437823, -286988, -342297},
    },
    {
        {-3585928, -3585928, -3585928, -3585928, -3585928, -3585928, -3585928, -3585928, 1079900, 1079900, 1079900, 1079900, 1079900, 1079900, 1079900, 1079900},
        {-3915439, -3915439, -3915439, -3915439, 3592148, 3592148, 3592148, 3592148, 2537516, 2537516, 2537516, 2537516, 1661693, 1661693, 1661693, 1661693},
        {-126922, -126922, 3632928, 3632928, 1000202, 1000202, 4083598, 4083598, 3157330, 3157330, 3190144, 3190144, -1939314, -1939314, 1257611, 1257611},
        {3595838, 768622, 525098, 3556995, 522500, 43260, 1613174, -495491, -3207046, -2031748, 3122442, 655327, -819034, -909542, -1859098, -900702},
    },
    {
        {-1024112, -1024112, -1024112, -1024112, -1024112, -1024112, -1024112, -1024112, -2725464, -2725464, -2725464, -2725464, -2725464, -2725464, -2725464, -2725464},
        {-3530437, -3530437, -3530437, -3530437, -95776, -95776, -95776, -95776, -3077325, -3077325, -3077325, -3077325, -2706023, -2706023, -2706023, -2706023},
        {1585221, 1585221, -2176455, -2176455, 3041255, 3041255, 3677745, 3677745, -3475950, -3475950, 1452451, 1452451, 1528703, 1528703, 3930395, 3930395},
        {3193378, 1197226, 3759364, 3520352, 3562462, 2446433, -2244091, 3342478, -3513181, 1235728, -2434439, -266997, -3817976, -2316500, -3407706, -2091667},
    },
};

static inline AVX512 __m512i tail_zetas(const int32_t (*t)[4][16], unsigned i, unsigned layer)
{
    return load16(t[i / 32][layer]);
}

static inline AVX512 void ct512(__m512i *x, __m512i *y, __m512i z)
{
    __m512i t = mont_mul512(z, *y);
    *y = _mm512_sub_epi32(*x, t);
    *x = _mm512_add_epi32(*x, t);
}

static inline AVX512 void gs512(__m512i *x, __m512i *y, __m512i z)
{
    __m512i t = *x;
    *x = _mm512_add_epi32(t, *y);
    *y = mont_mul512(z, _mm512_sub_epi32(t, *y));
}

static AVX512 void ntt_tail_avx512(int32_t a[QV_MLDSA_N])
{
    for (unsigned i = 0; i < QV_MLDSA_N; i += 32) {
        __m512i x = load16(a + i), y = load16(a + i + 16);
        __m512i A = perm2(x, y, 0, 1, 2, 3, 8, 9, 10, 11);
        __m512i B = perm2(x, y, 4, 5, 6, 7, 12, 13, 14, 15);
        ct512(&A, &B, tail_zetas(tail_zetas_fwd, i, 0));
        __m512i A2 = perm2(A, B, 0, 1, 4, 5, 8, 9, 12, 13);
        __m512i B2 = perm2(A, B, 2, 3, 6, 7, 10, 11, 14, 15);
        ct512(&A2, &B2, tail_zetas(tail_zetas_fwd, i, 1));
        __m512i A3 = _mm512_unpacklo_epi64(A2, B2);
        __m512i B3 = _mm512_unpackhi_epi64(A2, B2);
        ct512(&A3, &B3, tail_zetas(tail_zetas_fwd, i, 2));
        __m512i E = _mm512_mask_blend_epi32(0xAAAA, A3, _mm512_slli_epi64(B3, 32));
        __m512i O = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(A3, 32), B3);
        ct512(&E, &O, tail_zetas(tail_zetas_fwd, i, 3));
        A3 = _mm512_mask_blend_epi32(0xAAAA, E, _mm512_slli_epi64(O, 32));
        B3 = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(E, 32), O);
        A2 = _mm512_unpacklo_epi64(A3, B3);
        B2 = _mm512_unpackhi_epi64(A3, B3);
        A = perm2(A2, B2, 0, 1, 8, 9, 2, 3, 10, 11);
        B = perm2(A2, B2, 4, 5, 12, 13, 6, 7, 14, 15);
        store16(a + i, perm2(A, B, 0, 1, 2, 3, 8, 9, 10, 11));
        store16(a + i + 16, perm2(A, B, 4, 5, 6, 7, 12, 13, 14, 15));
    }
}

static AVX512 void invntt_tail_avx512(int32_t a[QV_MLDSA_N])
{
    for (unsigned i = 0; i < QV_MLDSA_N; i += 32) {
        __m512i x = load16(a + i), y = load16(a + i + 16);
        __m512i A = perm2(x, y, 0, 1, 2, 3, 8, 9, 10, 11);
        __m512i B = perm2(x, y, 4, 5, 6, 7, 12, 13, 14, 15);
        __m512i A2 = perm2(A, B, 0, 1, 4, 5, 8, 9, 12, 13);
        __m512i B2 = perm2(A, B, 2, 3, 6, 7, 10, 11, 14, 15);
        __m512i A3 = _mm512_unpacklo_epi64(A2, B2);
        __m512i B3 = _mm512_unpackhi_epi64(A2, B2);
        __m512i E = _mm512_mask_blend_epi32(0xAAAA, A3, _mm512_slli_epi64(B3, 32));
        __m512i O = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(A3, 32), B3);
        gs512(&E, &O, tail_zetas(tail_zetas_inv, i, 3));
        A3 = _mm512_mask_blend_epi32(0xAAAA, E, _mm512_slli_epi64(O, 32));
        B3 = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(E, 32), O);
        gs512(&A3, &B3, tail_zetas(tail_zetas_inv, i, 2));
        A2 = _mm512_unpacklo_epi64(A3, B3);
        B2 = _mm512_unpackhi_epi64(A3, B3);
        gs512(&A2, &B2, tail_zetas(tail_zetas_inv, i, 1));
        A = perm2(A2, B2, 0, 1, 8, 9, 2, 3, 10, 11);
        B = perm2(A2, B2, 4, 5, 12, 13, 6, 7, 14, 15);
        gs512(&A, &B, tail_zetas(tail_zetas_inv, i, 0));
        store16(a + i, perm2(A, B, 0, 1, 2, 3, 8, 9, 10, 11));
        store16(a + i + 16, perm2(A, B, 4, 5, 6, 7, 12, 13, 14, 15));
    }
}

AVX512 void qv_mldsa_ntt_avx512(int32_t a[QV_MLDSA_N])
{
    for (unsigned len = 128; len >= 16; len >>= 1) {
        for (unsigned start = 0, b = 0; start < QV_MLDSA_N; start += 2 * len, b++) {
            __m512i z = _mm512_set1_epi32(fwd_zeta(len, b));
            for (unsigned j = start; j < start + len; j += 16) {
                __m512i x = load16(a + j), y = load16(a + j + len);
                __m512i t = mont_mul512(z, y);
                store16(a + j + len, _mm512_sub_epi32(x, t));
                store16(a + j, _mm512_add_epi32(x, t));
            }
        }
    }
    ntt_tail_avx512(a);
}

AVX512 void qv_mldsa_invntt_tomont_avx512(int32_t a[QV_MLDSA_N])
{
    invntt_tail_avx512(a);
    for (unsigned len = 16; len < QV_MLDSA_N / 2; len <<= 1) {
        for (unsigned start = 0, b = 0; start < QV_MLDSA_N; start += 2 * len, b++) {
            __m512i z = _mm512_set1_epi32(inv_zeta(len, b));
            for (unsigned j = start; j < start + len; j += 16) {
                __m512i x = load16(a + j), y = load16(a + j + len);
                store16(a + j, _mm512_add_epi32(x, y));
                store16(a + j + len, mont_mul512(z, _mm512_sub_epi32(x, y)));
            }
        }
    }
    const __m512i f = _mm512_set1_epi32(QV_MLDSA_INVNTT_F);
    const __m512i fz = _mm512_set1_epi32(QV_MLDSA_INVNTT_FZ);
    for (unsigned j = 0; j < QV_MLDSA_N / 2; j += 16) {
        __m512i x = load16(a + j), y = load16(a + j + QV_MLDSA_N / 2);
        store16(a + j, mont_mul512(f, _mm512_add_epi32(x, y)));
        store16(a + j + QV_MLDSA_N / 2, mont_mul512(fz, _mm512_sub_epi32(x, y)));
    }
}

AVX512 void qv_mldsa_pointwise_avx512(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                                      const int32_t b[QV_MLDSA_N])
{
    for (unsigned j = 0; j < QV_MLDSA_N; j += 16)
        store16(r + j, mont_mul512(load16(a + j), load16(b + j)));
}

AVX512 void qv_mldsa_pointwise_acc_avx512(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                                          const int32_t b[QV_MLDSA_N])
{
    for (unsigned j = 0; j < QV_MLDSA_N; j += 16)
        store16(r + j, _mm512_add_epi32(load16(r + j),
                                        mont_mul512(load16(a + j), load16(b + j))));
}

#else /* not x86-64 with GCC or Clang: the portable code is used */

static int cpu_path(void)
{
    return QV_MLDSA_PATH_PORTABLE;
}
void qv_mldsa_ntt_avx2(int32_t a[QV_MLDSA_N]) { (void)a; }
void qv_mldsa_ntt_avx512(int32_t a[QV_MLDSA_N]) { (void)a; }
void qv_mldsa_invntt_tomont_avx512(int32_t a[QV_MLDSA_N]) { (void)a; }
void qv_mldsa_pointwise_avx512(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                               const int32_t b[QV_MLDSA_N])
{
    (void)r, (void)a, (void)b;
}
void qv_mldsa_pointwise_acc_avx512(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                                   const int32_t b[QV_MLDSA_N])
{
    (void)r, (void)a, (void)b;
}
void qv_mldsa_invntt_tomont_avx2(int32_t a[QV_MLDSA_N]) { (void)a; }
void qv_mldsa_pointwise_avx2(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                             const int32_t b[QV_MLDSA_N])
{
    (void)r, (void)a, (void)b;
}
void qv_mldsa_ball_swap_avx2(int8_t c[QV_MLDSA_N], uint32_t i, uint32_t j, int8_t sign)
{
    (void)c, (void)i, (void)j, (void)sign;
}
unsigned qv_mldsa_rej_uniform_avx2(int32_t *a, unsigned j, const uint8_t *buf, size_t len)
{
    (void)a, (void)buf, (void)len;
    return j;
}
void qv_mldsa_unpack_mask_avx2(int32_t y[QV_MLDSA_N], const uint8_t *in, unsigned bits,
                               int32_t gamma1)
{
    (void)y, (void)in, (void)bits, (void)gamma1;
}
void qv_mldsa_pointwise_acc_avx2(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                                 const int32_t b[QV_MLDSA_N])
{
    (void)r, (void)a, (void)b;
}

#endif
