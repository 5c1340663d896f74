/* AVX2 helpers for the ML-KEM encodings: mapping coefficients to [0, q), Compress_d and
 * Decompress_d on 16 coefficients per step. Same formulas as poly.c (the division by q is the
 * multiply by ceil(2^40 / q) and shift, exact for d <= 11), so the values are identical; the
 * bit packing stays in poly.c. Called only when mlkem_use_avx2(). */
#include "pqc/mlkem/mlkem_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

/* Reduced (any int16) -> [0, q): Barrett as in ntt.c, then add q to negative values. */
AVX2 static inline __m256i to_unsigned_v(__m256i a)
{
    __m256i t = _mm256_mulhi_epi16(a, _mm256_set1_epi16(MLKEM_BARRETT_V));
    t = _mm256_srai_epi16(_mm256_add_epi16(t, _mm256_set1_epi16(1 << 9)), 10);
    a = _mm256_sub_epi16(a, _mm256_mullo_epi16(t, _mm256_set1_epi16(MLKEM_Q)));
    return _mm256_add_epi16(a, _mm256_and_si256(_mm256_srai_epi16(a, 15),
                                                 _mm256_set1_epi16(MLKEM_Q)));
}

/* floor(a / q) for 32-bit lanes a < 2^23: 32x32 -> 64-bit products of even and odd lanes. */
AVX2 static inline __m256i div_q_v(__m256i a)
{
    const __m256i m = _mm256_set1_epi32(330282857);
    __m256i even = _mm256_srli_epi64(_mm256_mul_epu32(a, m), 40);
    __m256i odd = _mm256_srli_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), m), 40);
    return _mm256_or_si256(even, _mm256_slli_epi64(odd, 32));
}

AVX2 void mlkem_poly_to_unsigned_avx2(uint16_t out[MLKEM_N], const mlkem_poly *p)
{
    for (int i = 0; i < MLKEM_N; i += 16) {
        __m256i a = _mm256_loadu_si256((const __m256i *)&p->c[i]);
        _mm256_storeu_si256((__m256i *)&out[i], to_unsigned_v(a));
    }
}

AVX2 void mlkem_poly_compress_values_avx2(uint16_t out[MLKEM_N], const mlkem_poly *p, unsigned d)
{
    const __m128i shift = _mm_cvtsi32_si128((int)d);
    const __m256i half_q = _mm256_set1_epi32(MLKEM_Q / 2);
    const __m256i mask = _mm256_set1_epi32((1 << d) - 1);
    for (int i = 0; i < MLKEM_N; i += 16) {
        __m256i x = to_unsigned_v(_mm256_loadu_si256((const __m256i *)&p->c[i]));
        __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(x));
        __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(x, 1));
        lo = _mm256_and_si256(div_q_v(_mm256_add_epi32(_mm256_sll_epi32(lo, shift), half_q)), mask);
        hi = _mm256_and_si256(div_q_v(_mm256_add_epi32(_mm256_sll_epi32(hi, shift), half_q)), mask);
        /* packus interleaves 128-bit halves; the permute restores coefficient order. */
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
        _mm256_storeu_si256((__m256i *)&out[i], packed);
    }
}

AVX2 void mlkem_poly_decompress_values_avx2(mlkem_poly *p, const uint16_t in[MLKEM_N], unsigned d)
{
    const __m128i shift = _mm_cvtsi32_si128((int)d);
    const __m256i q = _mm256_set1_epi32(MLKEM_Q), round = _mm256_set1_epi32(1 << (d - 1));
    for (int i = 0; i < MLKEM_N; i += 16) {
        __m256i y = _mm256_loadu_si256((const __m256i *)&in[i]);
        __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(y));
        __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(y, 1));
        lo = _mm256_srl_epi32(_mm256_add_epi32(_mm256_mullo_epi32(lo, q), round), shift);
        hi = _mm256_srl_epi32(_mm256_add_epi32(_mm256_mullo_epi32(hi, q), round), shift);
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
        _mm256_storeu_si256((__m256i *)&p->c[i], packed);
    }
}
#endif
