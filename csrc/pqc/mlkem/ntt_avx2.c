/* AVX2 versions of the ML-KEM NTT, NTT^-1 and base-case multiplication: 16 int16 lanes per
 * register, the same Montgomery and Barrett arithmetic as ntt.c (so results are bit-identical
 * to the portable path). Compiled with the avx2 target attribute only; ntt.c calls these
 * after a CPUID check, so the rest of the core stays portable. Layers with butterfly distance
 * 8, 4 and 2 first regroup two registers so that partners sit in the same lane of X and Y. */
#include "pqc/mlkem/mlkem_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "pqc/mlkem/simd_arith.h"

#define AVX2 __attribute__((target("avx2")))

MLKEM_SIMD_ARITH(256, AVX2)

AVX2 static inline __m256i qinv_of(__m256i z)
{
    return _mm256_mullo_epi16(z, _mm256_set1_epi16((int16_t)MLKEM_QINV));
}

/* The butterflies with the zeta vector's q^-1 multiple formed on the spot. */
AVX2 static inline void ct_bfly(__m256i *x, __m256i *y, __m256i z)
{
    ct_bfly_256(x, y, z, qinv_of(z));
}

AVX2 static inline void gs_bfly(__m256i *x, __m256i *y, __m256i z)
{
    gs_bfly_256(x, y, z, qinv_of(z));
}

static inline uint64_t bcast64(int16_t z)
{
    return (uint64_t)(uint16_t)z * 0x0001000100010001ULL;
}

static inline uint32_t bcast32(int16_t z)
{
    return (uint32_t)(uint16_t)z * 0x00010001u;
}

/* Regroupings of registers A, B (and back) for distances 8, 4 and 2, and the zeta vectors
 * matching the lanes of X, given zeta(block) for that layer. A holds blocks before B's. */
#define SPLIT8(A, B, X, Y)                                                                      \
    X = _mm256_permute2x128_si256(A, B, 0x20), Y = _mm256_permute2x128_si256(A, B, 0x31)
#define SPLIT4(A, B, X, Y) X = _mm256_unpacklo_epi64(A, B), Y = _mm256_unpackhi_epi64(A, B)
#define SPLIT2(A, B, X, Y)                                                                      \
    X = _mm256_blend_epi32(A, _mm256_slli_epi64(B, 32), 0xAA),                                 \
    Y = _mm256_blend_epi32(_mm256_srli_epi64(A, 32), B, 0xAA)

AVX2 static inline __m256i zetas8(const int16_t *zb)
{
    /* Blocks of 16: A = block 0, B = block 1; X = [A.lo | B.lo]. */
    return _mm256_setr_m128i(_mm_set1_epi16(zb[0]), _mm_set1_epi16(zb[1]));
}

AVX2 static inline __m256i zetas4(const int16_t *zb)
{
    /* Blocks of 8: A = blocks 0,1; B = blocks 2,3; X = [A.q0 B.q0 | A.q2 B.q2]. */
    return _mm256_setr_epi64x((long long)bcast64(zb[0]), (long long)bcast64(zb[2]),
                              (long long)bcast64(zb[1]), (long long)bcast64(zb[3]));
}

AVX2 static inline __m256i zetas2(const int16_t *zb)
{
    /* Blocks of 4: A = blocks 0..3, B = blocks 4..7; X = [A.d0 B.d0 A.d2 B.d2 ...]. */
    return _mm256_setr_epi32((int)bcast32(zb[0]), (int)bcast32(zb[4]), (int)bcast32(zb[1]),
                             (int)bcast32(zb[5]), (int)bcast32(zb[2]), (int)bcast32(zb[6]),
                             (int)bcast32(zb[3]), (int)bcast32(zb[7]));
}

AVX2 void mlkem_ntt_avx2(mlkem_poly *p)
{
    __m256i r[16], x, y;
    for (int i = 0; i < 16; i++)
        r[i] = _mm256_loadu_si256((const __m256i *)&p->c[16 * i]);
    unsigned k = 1;
    for (unsigned len = 128; len >= 16; len >>= 1) {
        unsigned d = len / 16;
        for (unsigned start = 0; start < MLKEM_N; start += 2 * len) {
            __m256i z = _mm256_set1_epi16(mlkem_zetas[k++]);
            for (unsigned j = start / 16; j < start / 16 + d; j++)
                ct_bfly(&r[j], &r[j + d], z);
        }
    }
    /* k = 16: distance 8 (block = one register), 4 (half register), 2 (quarter). */
    for (int m = 0; m < 8; m++) {
        SPLIT8(r[2 * m], r[2 * m + 1], x, y);
        ct_bfly(&x, &y, zetas8(&mlkem_zetas[16 + 2 * m]));
        SPLIT8(x, y, r[2 * m], r[2 * m + 1]);
    }
    for (int m = 0; m < 8; m++) {
        SPLIT4(r[2 * m], r[2 * m + 1], x, y);
        ct_bfly(&x, &y, zetas4(&mlkem_zetas[32 + 4 * m]));
        SPLIT4(x, y, r[2 * m], r[2 * m + 1]);
    }
    for (int m = 0; m < 8; m++) {
        SPLIT2(r[2 * m], r[2 * m + 1], x, y);
        ct_bfly(&x, &y, zetas2(&mlkem_zetas[64 + 8 * m]));
        SPLIT2(x, y, r[2 * m], r[2 * m + 1]);
    }
    for (int i = 0; i < 16; i++)
        _mm256_storeu_si256((__m256i *)&p->c[16 * i], barrett_256(r[i]));
}

AVX2 void mlkem_invntt_avx2(mlkem_poly *p)
{
    __m256i r[16], x, y;
    int16_t zb[8];
    for (int i = 0; i < 16; i++)
        r[i] = _mm256_loadu_si256((const __m256i *)&p->c[16 * i]);
    /* Block b of the layer with distance len uses zetas[256 / len - 1 - b]. */
    for (int m = 0; m < 8; m++) {
        for (int b = 0; b < 8; b++)
            zb[b] = mlkem_zetas[127 - (8 * m + b)];
        SPLIT2(r[2 * m], r[2 * m + 1], x, y);
        gs_bfly(&x, &y, zetas2(zb));
        SPLIT2(x, y, r[2 * m], r[2 * m + 1]);
    }
    for (int m = 0; m < 8; m++) {
        for (int b = 0; b < 4; b++)
            zb[b] = mlkem_zetas[63 - (4 * m + b)];
        SPLIT4(r[2 * m], r[2 * m + 1], x, y);
        gs_bfly(&x, &y, zetas4(zb));
        SPLIT4(x, y, r[2 * m], r[2 * m + 1]);
    }
    for (int m = 0; m < 8; m++) {
        for (int b = 0; b < 2; b++)
            zb[b] = mlkem_zetas[31 - (2 * m + b)];
        SPLIT8(r[2 * m], r[2 * m + 1], x, y);
        gs_bfly(&x, &y, zetas8(zb));
        SPLIT8(x, y, r[2 * m], r[2 * m + 1]);
    }
    for (unsigned len = 16; len <= 128; len <<= 1) {
        unsigned d = len / 16;
        for (unsigned b = 0; b < MLKEM_N / (2 * len); b++) {
            __m256i z = _mm256_set1_epi16(mlkem_zetas[MLKEM_N / len - 1 - b]);
            for (unsigned j = 2 * d * b; j < 2 * d * b + d; j++)
                gs_bfly(&r[j], &r[j + d], z);
        }
    }
    const __m256i f = _mm256_set1_epi16(1441), f_qinv = qinv_of(f);
    for (int i = 0; i < 16; i++)
        _mm256_storeu_si256((__m256i *)&p->c[16 * i], fqmul_256(r[i], f, f_qinv));
}

AVX2 static inline __m256i montgomery32_v(__m256i a)
{
    __m256i t = _mm256_mullo_epi32(a, _mm256_set1_epi32((int)MLKEM_QINV));
    t = _mm256_srai_epi32(_mm256_slli_epi32(t, 16), 16); /* low 16 bits, signed */
    t = _mm256_sub_epi32(a, _mm256_mullo_epi32(t, _mm256_set1_epi32(MLKEM_Q)));
    return _mm256_srai_epi32(t, 16);
}

AVX2 void mlkem_polyvec_basemul_acc_avx2(mlkem_poly *r, const mlkem_poly *a, const mlkem_poly *b,
                                         unsigned k)
{
    for (int v = 0; v < 16; v++) {
        /* gamma_i for the 8 pairs of this register, in the odd (a1) lanes. */
        __m256i g = _mm256_slli_epi32(
            _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)&mlkem_gammas[8 * v])), 16);
        __m256i g_qinv = qinv_of(g);
        __m256i r0 = _mm256_setzero_si256(), r1 = _mm256_setzero_si256();
        for (unsigned l = 0; l < k; l++) {
            __m256i av = _mm256_loadu_si256((const __m256i *)&a[l].c[16 * v]);
            __m256i bv = _mm256_loadu_si256((const __m256i *)&b[l].c[16 * v]);
            /* (a0, a1 * gamma) . (b0, b1) and (a0, a1) . (b1, b0), summed in 32 bits. */
            __m256i ag = _mm256_blend_epi16(av, fqmul_256(av, g, g_qinv), 0xAA);
            __m256i bs = _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(bv, 0xB1), 0xB1);
            r0 = _mm256_add_epi32(r0, _mm256_madd_epi16(ag, bv));
            r1 = _mm256_add_epi32(r1, _mm256_madd_epi16(av, bs));
        }
        r0 = montgomery32_v(r0);
        r1 = montgomery32_v(r1);
        __m256i packed = _mm256_blend_epi16(r0, _mm256_slli_epi32(r1, 16), 0xAA);
        _mm256_storeu_si256((__m256i *)&r->c[16 * v], barrett_256(packed));
    }
}
#endif
