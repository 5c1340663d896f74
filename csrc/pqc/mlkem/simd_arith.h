/* The int16 arithmetic mod q of ML-KEM's vector code, written once for AVX2 (W = 256, 16 lanes)
 * and AVX-512BW (W = 512, 32 lanes): the intrinsics of both widths share their names but for
 * the width (_mm256_mulhi_epi16 / _mm512_mulhi_epi16), so MLKEM_SIMD_ARITH(W, ATTR) defines,
 * with the target attribute ATTR:
 *   fqmul_W(a, b, b_qinv)  a * b * 2^-16 mod q (Montgomery), b_qinv = b * q^-1 mod 2^16
 *   barrett_W(a)           a mod q, centred (the same formula as mlkem_barrett_reduce)
 *   to_unsigned_W(a)       any int16 -> its representative in [0, q)
 *   ct_bfly_W / gs_bfly_W  the NTT (Cooley-Tukey) and NTT^-1 (Gentleman-Sande) butterflies
 * Lane for lane these are the portable formulas of ntt.c / poly.c, so results are identical. */
#ifndef QV_PQC_MLKEM_SIMD_ARITH_H
#define QV_PQC_MLKEM_SIMD_ARITH_H

#include <immintrin.h>

#include "pqc/mlkem/mlkem_internal.h"

#define MLKEM_SIMD_ARITH(W, ATTR)                                                               \
    ATTR static inline __m##W##i fqmul_##W(__m##W##i a, __m##W##i b, __m##W##i b_qinv)           \
    {                                                                                           \
        /* (a*b - t*q) / 2^16 with t = a*b*q^-1 mod 2^16: the high halves subtract exactly. */ \
        __m##W##i t = _mm##W##_mullo_epi16(a, b_qinv);                                          \
        return _mm##W##_sub_epi16(_mm##W##_mulhi_epi16(a, b),                                   \
                                  _mm##W##_mulhi_epi16(t, _mm##W##_set1_epi16(MLKEM_Q)));       \
    }                                                                                           \
    ATTR static inline __m##W##i barrett_##W(__m##W##i a)                                       \
    {                                                                                           \
        /* t = (a * v + 2^25) >> 26, computed as ((a * v) >> 16 + 2^9) >> 10: same value. */   \
        __m##W##i t = _mm##W##_mulhi_epi16(a, _mm##W##_set1_epi16(MLKEM_BARRETT_V));            \
        t = _mm##W##_srai_epi16(_mm##W##_add_epi16(t, _mm##W##_set1_epi16(1 << 9)), 10);        \
        return _mm##W##_sub_epi16(a, _mm##W##_mullo_epi16(t, _mm##W##_set1_epi16(MLKEM_Q)));    \
    }                                                                                           \
    ATTR static inline __m##W##i to_unsigned_##W(__m##W##i a)                                   \
    {                                                                                           \
        a = barrett_##W(a);                                                                     \
        return _mm##W##_add_epi16(a, _mm##W##_and_si##W(_mm##W##_srai_epi16(a, 15),             \
                                                        _mm##W##_set1_epi16(MLKEM_Q)));         \
    }                                                                                           \
    ATTR static inline void ct_bfly_##W(__m##W##i *x, __m##W##i *y, __m##W##i z, __m##W##i zq)  \
    {                                                                                           \
        __m##W##i t = fqmul_##W(*y, z, zq);                                                     \
        *y = _mm##W##_sub_epi16(*x, t);                                                         \
        *x = _mm##W##_add_epi16(*x, t);                                                         \
    }                                                                                           \
    ATTR static inline void gs_bfly_##W(__m##W##i *x, __m##W##i *y, __m##W##i z, __m##W##i zq)  \
    {                                                                                           \
        __m##W##i t = *x;                                                                       \
        *x = barrett_##W(_mm##W##_add_epi16(t, *y));                                            \
        *y = fqmul_##W(_mm##W##_sub_epi16(*y, t), z, zq);                                       \
    }

#endif
