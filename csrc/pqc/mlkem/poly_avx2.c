/* AVX2 helpers for the ML-KEM encodings: mapping coefficients to [0, q), Compress_d and
 * Decompress_d on 16 coefficients per step. Same formulas as poly.c (the division by q is the
 * multiply by ceil(2^40 / q) and shift, exact for d <= 11), so the values are identical; the
 * bit packing stays in poly.c. Called only when mlkem_use_avx2(). */
#include <string.h>

#include "pqc/mlkem/mlkem_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "pqc/mlkem/simd_arith.h"

#define AVX2 __attribute__((target("avx2")))

MLKEM_SIMD_ARITH(256, AVX2)

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
        _mm256_storeu_si256((__m256i *)&out[i], to_unsigned_256(a));
    }
}

AVX2 void mlkem_poly_compress_values_avx2(uint16_t out[MLKEM_N], const mlkem_poly *p, unsigned d)
{
    const __m128i shift = _mm_cvtsi32_si128((int)d);
    const __m256i half_q = _mm256_set1_epi32(MLKEM_Q / 2);
    const __m256i mask = _mm256_set1_epi32((1 << d) - 1);
    for (int i = 0; i < MLKEM_N; i += 16) {
        __m256i x = to_unsigned_256(_mm256_loadu_si256((const __m256i *)&p->c[i]));
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
/* ByteDecode12 with the mod-q reduction: 24 bytes -> 16 coefficients per step. Each 128-bit
 * half gets 12 bytes (the upper half loads from 8 bytes earlier so that no load passes the
 * end of the 384-byte input); byte pairs (3i, 3i+1) and (3i+1, 3i+2) go into 16-bit words,
 * even words keep their low 12 bits, odd words shift right by 4. Returns 0xffff when some
 * value was >= q (the ek modulus check), else 0; no data-dependent branch. */
AVX2 uint16_t mlkem_poly_decode12_avx2(mlkem_poly *p, const uint8_t in[MLKEM_POLY_BYTES])
{
    const __m256i shuf = _mm256_setr_epi8(0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 7, 8, 9, 10, 10, 11,
                                          4, 5, 5, 6, 7, 8, 8, 9, 10, 11, 11, 12, 13, 14, 14,
                                          15);
    const __m256i low12 = _mm256_set1_epi16(0x0fff), qm1 = _mm256_set1_epi16(MLKEM_Q - 1);
    const __m256i q = _mm256_set1_epi16(MLKEM_Q);
    __m256i bad = _mm256_setzero_si256();
    for (int i = 0; i < MLKEM_N / 16; i++) {
        __m128i lo = _mm_loadu_si128((const __m128i *)(in + 24 * i));
        __m128i hi = _mm_loadu_si128((const __m128i *)(in + 24 * i + 8));
        __m256i w = _mm256_shuffle_epi8(_mm256_set_m128i(hi, lo), shuf);
        __m256i t = _mm256_blend_epi16(_mm256_and_si256(w, low12), _mm256_srli_epi16(w, 4), 0xAA);
        __m256i m = _mm256_cmpgt_epi16(t, qm1);
        bad = _mm256_or_si256(bad, m);
        _mm256_storeu_si256((__m256i *)&p->c[16 * i],
                            _mm256_sub_epi16(t, _mm256_and_si256(m, q)));
    }
    return (uint16_t)(_mm256_testz_si256(bad, bad) - 1);
}

/* ByteEncode12 of values in [0, q): the inverse packing, 16 values -> 24 bytes per step
 * (each half's 12 bytes are gathered to the front, then stored through a small buffer so the
 * last step does not write past the output). */
AVX2 void mlkem_poly_encode12_avx2(uint8_t out[MLKEM_POLY_BYTES], const mlkem_poly *p)
{
    const __m256i shuf = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
                                          0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    for (int i = 0; i < MLKEM_N / 16; i++) {
        __m256i x = to_unsigned_256(_mm256_loadu_si256((const __m256i *)&p->c[16 * i]));
        /* 32-bit lanes: even value | odd value << 12 (24 bits used). */
        __m256i pair = _mm256_or_si256(_mm256_and_si256(x, _mm256_set1_epi32(0xffff)),
                                       _mm256_slli_epi32(_mm256_srli_epi32(x, 16), 12));
        __m256i b = _mm256_shuffle_epi8(pair, shuf);
        uint8_t tmp[32];
        _mm256_storeu_si256((__m256i *)tmp, b);
        memcpy(out + 24 * i, tmp, 12);
        memcpy(out + 24 * i + 12, tmp + 16, 12);
    }
}
/* SamplePolyCBD_2 (Algorithm 8, eta = 2) on 32 coefficients per step: byte j holds
 * coefficient 2j in its low nibble and 2j + 1 in its high nibble, each (b0 + b1) - (b2 + b3).
 * The bit pairs are summed in parallel, then (a + 3 - b) per nibble is unpacked and 3
 * subtracted; the same values as the portable loop, with no data-dependent branch or index. */
AVX2 void mlkem_poly_cbd2_avx2(mlkem_poly *p, const uint8_t buf[128])
{
    const __m128i m55 = _mm_set1_epi8(0x55), m33 = _mm_set1_epi8(0x33);
    const __m128i m0f = _mm_set1_epi8(0x0f), three = _mm_set1_epi8(3);
    for (int i = 0; i < 8; i++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(buf + 16 * i));
        __m128i t = _mm_add_epi8(_mm_and_si128(x, m55), _mm_and_si128(_mm_srli_epi16(x, 1), m55));
        __m128i d = _mm_sub_epi8(_mm_add_epi8(_mm_and_si128(t, m33), m33),
                                 _mm_and_si128(_mm_srli_epi16(t, 2), m33));
        __m128i lo = _mm_sub_epi8(_mm_and_si128(d, m0f), three);
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(d, 4), m0f), three);
        __m256i c0 = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(lo, hi));
        __m256i c1 = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(lo, hi));
        _mm256_storeu_si256((__m256i *)&p->c[32 * i], c0);
        _mm256_storeu_si256((__m256i *)&p->c[32 * i + 16], c1);
    }
}
/* ByteEncode_10 of 256 values < 2^10: pairs become 20-bit words (madd), pairs of those 40-bit
 * quadwords, and the low 5 bytes of each quadword are gathered: 16 values -> 20 bytes. */
AVX2 void mlkem_pack10_avx2(uint8_t out[320], const uint16_t v[MLKEM_N])
{
    const __m256i pairmul = _mm256_set1_epi32(1 | (1 << 26)); /* int16 pairs (1, 2^10) */
    const __m256i low20 = _mm256_set1_epi64x(0xfffff);
    const __m256i shuf = _mm256_setr_epi8(0, 1, 2, 3, 4, 8, 9, 10, 11, 12, -1, -1, -1, -1, -1, -1,
                                          0, 1, 2, 3, 4, 8, 9, 10, 11, 12, -1, -1, -1, -1, -1, -1);
    for (int i = 0; i < MLKEM_N / 16; i++) {
        __m256i x = _mm256_loadu_si256((const __m256i *)&v[16 * i]);
        __m256i w = _mm256_madd_epi16(x, pairmul); /* v0 + v1 * 2^10 per 32-bit lane */
        __m256i q = _mm256_or_si256(_mm256_and_si256(w, low20),
                                    _mm256_andnot_si256(low20, _mm256_srli_epi64(w, 12)));
        __m256i b = _mm256_shuffle_epi8(q, shuf);
        uint8_t tmp[32];
        _mm256_storeu_si256((__m256i *)tmp, b);
        memcpy(out + 20 * i, tmp, 10);
        memcpy(out + 20 * i + 10, tmp + 16, 10);
    }
}

/* ByteDecode_10: each 16-bit word gets the two bytes holding its value, which is shifted to
 * the top (a multiply by 2^(6 - offset)) and back down by 6. The upper half loads from 4 bytes
 * further so that no load passes the end of the 320 bytes. */
AVX2 void mlkem_unpack10_avx2(uint16_t v[MLKEM_N], const uint8_t in[320])
{
    const __m256i shuf = _mm256_setr_epi8(0, 1, 1, 2, 2, 3, 3, 4, 5, 6, 6, 7, 7, 8, 8, 9,
                                          6, 7, 7, 8, 8, 9, 9, 10, 11, 12, 12, 13, 13, 14, 14, 15);
    const __m256i mul = _mm256_setr_epi16(64, 16, 4, 1, 64, 16, 4, 1, 64, 16, 4, 1, 64, 16, 4, 1);
    for (int i = 0; i < MLKEM_N / 16; i++) {
        __m128i lo = _mm_loadu_si128((const __m128i *)(in + 20 * i));
        __m128i hi = _mm_loadu_si128((const __m128i *)(in + 20 * i + 4));
        __m256i w = _mm256_shuffle_epi8(_mm256_set_m128i(hi, lo), shuf);
        w = _mm256_srli_epi16(_mm256_mullo_epi16(w, mul), 6);
        _mm256_storeu_si256((__m256i *)&v[16 * i], w);
    }
}
#endif
