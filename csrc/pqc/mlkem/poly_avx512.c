/* AVX-512 (F + BW) Compress_d values for ML-KEM: 32 coefficients per step, the same formulas
 * as poly.c and poly_avx2.c (Barrett to [0, q), then the division by q as a multiply by
 * ceil(2^40 / q) and a shift, exact for d <= 11), so the values are identical. Called only
 * when mlkem_use_avx512(). */
#include "pqc/mlkem/mlkem_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "pqc/mlkem/simd_arith.h"

#define AVX512 __attribute__((target("avx512f,avx512bw")))

MLKEM_SIMD_ARITH(512, AVX512)

/* Compress_d of 16 values in [0, q) held in 32-bit lanes: floor(((x << d) + q/2) / q) mod 2^d,
 * the division through 32x32 -> 64-bit products of the even and odd lanes. */
AVX512 static inline __m256i compress16(__m512i x, __m128i shift, __m512i mask)
{
    const __m512i m = _mm512_set1_epi32(330282857), half_q = _mm512_set1_epi32(MLKEM_Q / 2);
    __m512i a = _mm512_add_epi32(_mm512_sll_epi32(x, shift), half_q);
    __m512i even = _mm512_srli_epi64(_mm512_mul_epu32(a, m), 40);
    __m512i odd = _mm512_srli_epi64(_mm512_mul_epu32(_mm512_srli_epi64(a, 32), m), 40);
    __m512i y = _mm512_and_si512(_mm512_or_si512(even, _mm512_slli_epi64(odd, 32)), mask);
    return _mm512_cvtepi32_epi16(y);
}

AVX512 void mlkem_poly_compress_values_avx512(uint16_t out[MLKEM_N], const mlkem_poly *p,
                                              unsigned d)
{
    const __m128i shift = _mm_cvtsi32_si128((int)d);
    const __m512i mask = _mm512_set1_epi32((1 << d) - 1);
    for (int i = 0; i < MLKEM_N; i += 32) {
        __m512i x = to_unsigned_512(_mm512_loadu_si512((const void *)&p->c[i]));
        __m512i lo = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(x));
        __m512i hi = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(x, 1));
        _mm256_storeu_si256((__m256i *)&out[i], compress16(lo, shift, mask));
        _mm256_storeu_si256((__m256i *)&out[i + 16], compress16(hi, shift, mask));
    }
}
#endif
