/* AVX2 bulk of SampleNTT's rejection step (FIPS 203 Algorithm 7): 24 XOF bytes give 16
 * candidate 12-bit values per iteration; the accepted ones (< q) are moved to the front of
 * each 8-value half with a byte shuffle looked up by the acceptance mask. The XOF stream is
 * that of the public seed rho, so indexing by the mask leaks nothing secret. The portable
 * loop in poly.c finishes the last values; results are identical. */
#include "pqc/mlkem/mlkem_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* For each 8-bit acceptance mask: the byte indices moving accepted int16 lanes to the front. */
static uint8_t compact_idx[256][16];

__attribute__((constructor)) static void build_compact_idx(void)
{
    for (unsigned m = 0; m < 256; m++) {
        unsigned n = 0;
        for (unsigned j = 0; j < 8; j++) {
            if (m & (1u << j)) {
                compact_idx[m][2 * n] = (uint8_t)(2 * j);
                compact_idx[m][2 * n + 1] = (uint8_t)(2 * j + 1);
                n++;
            }
        }
        for (; n < 8; n++)
            compact_idx[m][2 * n] = compact_idx[m][2 * n + 1] = 0x80; /* zero fill */
    }
}

__attribute__((target("avx2,popcnt"))) unsigned mlkem_rej_uniform_avx2(int16_t *c, unsigned ctr,
                                                                        const uint8_t *buf,
                                                                        size_t len)
{
    /* Low 128-bit half takes bytes 0..11 (loaded from 0..15), high half bytes 12..23 (loaded
     * from 8..23, so at offsets 4..15): no read past the 24 bytes used. Each value pair
     * (b0 b1 b2) becomes lanes (b0 b1), (b1 b2). */
    const __m256i shuf = _mm256_setr_epi8(0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 7, 8, 9, 10, 10, 11,  //
                                          4, 5, 5, 6, 7, 8, 8, 9, 10, 11, 11, 12, 13, 14, 14, 15);
    const __m256i mask12 = _mm256_set1_epi16(0x0fff), q = _mm256_set1_epi16(MLKEM_Q);
    size_t pos = 0;
    while (ctr + 16 <= MLKEM_N && pos + 24 <= len) {
        /* Three 8-byte loads: the XOF block was just written one 8-byte word at a time, and a
         * 16-byte load across two such stores would wait for them instead of forwarding. */
        __m128i w0 = _mm_loadl_epi64((const __m128i *)(buf + pos));
        __m128i w1 = _mm_loadl_epi64((const __m128i *)(buf + pos + 8));
        __m128i w2 = _mm_loadl_epi64((const __m128i *)(buf + pos + 16));
        __m256i f = _mm256_setr_m128i(_mm_unpacklo_epi64(w0, w1), _mm_unpacklo_epi64(w1, w2));
        f = _mm256_shuffle_epi8(f, shuf);
        /* even lanes: low 12 bits; odd lanes: the 16-bit word shifted right by 4 */
        f = _mm256_blend_epi16(_mm256_and_si256(f, mask12), _mm256_srli_epi16(f, 4), 0xAA);
        __m256i ok = _mm256_cmpgt_epi16(q, f);
        unsigned bits = (unsigned)_mm256_movemask_epi8(_mm256_packs_epi16(ok, _mm256_setzero_si256()));
        unsigned lo = bits & 0xff, hi = (bits >> 16) & 0xff;
        __m128i vlo = _mm_shuffle_epi8(_mm256_castsi256_si128(f),
                                       _mm_loadu_si128((const __m128i *)compact_idx[lo]));
        __m128i vhi = _mm_shuffle_epi8(_mm256_extracti128_si256(f, 1),
                                       _mm_loadu_si128((const __m128i *)compact_idx[hi]));
        /* Stores of 8 lanes stay inside c[0..255]: ctr + 16 <= 256 on entry. */
        _mm_storeu_si128((__m128i *)(c + ctr), vlo);
        ctr += (unsigned)__builtin_popcount(lo);
        _mm_storeu_si128((__m128i *)(c + ctr), vhi);
        ctr += (unsigned)__builtin_popcount(hi);
        pos += 24;
    }
    /* The portable step continues from here on the remaining bytes. */
    return ctr | (unsigned)(pos << 16);
}
#endif
