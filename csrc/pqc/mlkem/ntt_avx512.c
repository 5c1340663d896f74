/* AVX-512 (F + BW) versions of the ML-KEM NTT, NTT^-1 and base-case multiplication: 32 int16
 * lanes per register, so a polynomial is eight zmm registers. Each butterfly does exactly the
 * arithmetic of ntt_avx2.c / ntt.c on the same coefficients (bit-identical results); only the
 * placement of coefficients in lanes differs.
 *
 * Layers whose butterfly distance is 32 coefficients or more pair whole registers. For the
 * distances 16, 8, 4 and 2 the 64 coefficients of a register pair are moved with one
 * vpermt2w per register into the layout where every butterfly's two inputs sit in the same
 * lane of X and Y, straight from the previous layer's layout (composed permutations, built
 * once from the layouts), and back to natural order at the end. The permutations and the
 * zetas per lane are tables computed once; nothing depends on coefficient values. */
#include <pthread.h>

#include "pqc/mlkem/mlkem_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "pqc/mlkem/simd_arith.h"

#define AVX512 __attribute__((target("avx512f,avx512bw")))

/* The four short layers, distance 16, 8, 4, 2 (index s = 0..3). */
static const unsigned short_len[4] = {16, 8, 4, 2};

static struct {
    /* Lane permutations for two registers: [0] fills the first, [1] the second. NTT: natural
     * -> D16 -> D8 -> D4 -> D2 -> natural (fwd[0..4]); NTT^-1 the reverse (inv[0..4]). */
    _Alignas(64) uint16_t fwd[5][2][32];
    _Alignas(64) uint16_t inv[5][2][32];
    /* zeta and zeta * q^-1 mod 2^16 per lane, for short layer s and register pair m. */
    _Alignas(64) int16_t z[4][4][32], zq[4][4][32];
    _Alignas(64) int16_t iz[4][4][32], izq[4][4][32];
} tab;

static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

/* Coefficient (0..63 within a register pair) held by lane p (0..31 first register, 32..63
 * second) in the layout for distance len (0 = natural order): lane t of X holds the t-th
 * butterfly's lower input, the same lane of Y its partner len further on. */
static unsigned layout(unsigned len, unsigned p)
{
    if (len == 0)
        return p;
    unsigned t = p % 32, low = (t / len) * 2 * len + t % len;
    return p < 32 ? low : low + len;
}

static void transition(uint16_t idx[2][32], unsigned from, unsigned to)
{
    for (unsigned p = 0; p < 64; p++) {
        unsigned c = layout(to, p), s = 0;
        while (layout(from, s) != c)
            s++;
        idx[p / 32][p % 32] = (uint16_t)s;
    }
}

static int16_t qinv16(int16_t z)
{
    return (int16_t)(uint16_t)((uint32_t)(uint16_t)z * MLKEM_QINV);
}

static void build_tables(void)
{
    const unsigned fwd_seq[6] = {0, 16, 8, 4, 2, 0}, inv_seq[6] = {0, 2, 4, 8, 16, 0};
    for (unsigned i = 0; i < 5; i++) {
        transition(tab.fwd[i], fwd_seq[i], fwd_seq[i + 1]);
        transition(tab.inv[i], inv_seq[i], inv_seq[i + 1]);
    }
    for (unsigned s = 0; s < 4; s++) {
        unsigned len = short_len[s];
        for (unsigned m = 0; m < 4; m++) {
            for (unsigned t = 0; t < 32; t++) {
                unsigned j = 64 * m + layout(len, t); /* the lower input's index */
                int16_t zf = mlkem_zetas[128 / len + j / (2 * len)];
                int16_t zi = mlkem_zetas[256 / len - 1 - j / (2 * len)];
                tab.z[s][m][t] = zf;
                tab.zq[s][m][t] = qinv16(zf);
                tab.iz[s][m][t] = zi;
                tab.izq[s][m][t] = qinv16(zi);
            }
        }
    }
}

MLKEM_SIMD_ARITH(512, AVX512)

AVX512 static inline void permute_pair(__m512i *x, __m512i *y, const uint16_t idx[2][32])
{
    __m512i a = *x, b = *y;
    *x = _mm512_permutex2var_epi16(a, _mm512_load_si512((const void *)idx[0]), b);
    *y = _mm512_permutex2var_epi16(a, _mm512_load_si512((const void *)idx[1]), b);
}

AVX512 static inline __m512i bcast(int16_t z)
{
    return _mm512_set1_epi16(z);
}

AVX512 void mlkem_ntt_avx512(mlkem_poly *p)
{
    pthread_once(&tab_once, build_tables);
    __m512i r[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm512_loadu_si512((const void *)&p->c[32 * i]);
    unsigned k = 1;
    for (unsigned len = 128; len >= 32; len >>= 1) {
        unsigned d = len / 32;
        for (unsigned start = 0; start < MLKEM_N; start += 2 * len) {
            int16_t z = mlkem_zetas[k++];
            __m512i zv = bcast(z), zq = bcast(qinv16(z));
            for (unsigned j = start / 32; j < start / 32 + d; j++)
                ct_bfly_512(&r[j], &r[j + d], zv, zq);
        }
    }
    for (unsigned m = 0; m < 4; m++) {
        __m512i x = r[2 * m], y = r[2 * m + 1];
        for (unsigned s = 0; s < 4; s++) {
            permute_pair(&x, &y, tab.fwd[s]);
            ct_bfly_512(&x, &y, _mm512_load_si512((const void *)tab.z[s][m]),
                    _mm512_load_si512((const void *)tab.zq[s][m]));
        }
        permute_pair(&x, &y, tab.fwd[4]);
        r[2 * m] = x;
        r[2 * m + 1] = y;
    }
    for (int i = 0; i < 8; i++)
        _mm512_storeu_si512((void *)&p->c[32 * i], barrett_512(r[i]));
}

AVX512 void mlkem_invntt_avx512(mlkem_poly *p)
{
    pthread_once(&tab_once, build_tables);
    __m512i r[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm512_loadu_si512((const void *)&p->c[32 * i]);
    for (unsigned m = 0; m < 4; m++) {
        __m512i x = r[2 * m], y = r[2 * m + 1];
        for (unsigned s = 0; s < 4; s++) { /* distances 2, 4, 8, 16 */
            permute_pair(&x, &y, tab.inv[s]);
            gs_bfly_512(&x, &y, _mm512_load_si512((const void *)tab.iz[3 - s][m]),
                    _mm512_load_si512((const void *)tab.izq[3 - s][m]));
        }
        permute_pair(&x, &y, tab.inv[4]);
        r[2 * m] = x;
        r[2 * m + 1] = y;
    }
    for (unsigned len = 32; len <= 128; len <<= 1) {
        unsigned d = len / 32;
        for (unsigned b = 0; b < MLKEM_N / (2 * len); b++) {
            int16_t z = mlkem_zetas[MLKEM_N / len - 1 - b];
            __m512i zv = bcast(z), zq = bcast(qinv16(z));
            for (unsigned j = 2 * d * b; j < 2 * d * b + d; j++)
                gs_bfly_512(&r[j], &r[j + d], zv, zq);
        }
    }
    const __m512i f = bcast(1441), f_qinv = bcast(qinv16(1441));
    for (int i = 0; i < 8; i++)
        _mm512_storeu_si512((void *)&p->c[32 * i], fqmul_512(r[i], f, f_qinv));
}

AVX512 static inline __m512i montgomery32_z(__m512i a)
{
    __m512i t = _mm512_mullo_epi32(a, _mm512_set1_epi32((int)MLKEM_QINV));
    t = _mm512_srai_epi32(_mm512_slli_epi32(t, 16), 16); /* low 16 bits, signed */
    t = _mm512_sub_epi32(a, _mm512_mullo_epi32(t, _mm512_set1_epi32(MLKEM_Q)));
    return _mm512_srai_epi32(t, 16);
}

/* The odd int16 lanes (a1, b1 of every pair). */
#define ODD_LANES ((__mmask32)0xAAAAAAAAu)

AVX512 void mlkem_polyvec_basemul_acc_avx512(mlkem_poly *r, const mlkem_poly *a,
                                             const mlkem_poly *b, unsigned k)
{
    for (int v = 0; v < 8; v++) {
        /* gamma_i of the 16 pairs of this register, in the odd (a1) lanes. */
        __m512i g = _mm512_slli_epi32(
            _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)&mlkem_gammas[16 * v])),
            16);
        __m512i g_qinv = _mm512_mullo_epi16(g, bcast((int16_t)MLKEM_QINV));
        __m512i r0 = _mm512_setzero_si512(), r1 = _mm512_setzero_si512();
        for (unsigned l = 0; l < k; l++) {
            __m512i av = _mm512_loadu_si512((const void *)&a[l].c[32 * v]);
            __m512i bv = _mm512_loadu_si512((const void *)&b[l].c[32 * v]);
            /* (a0, a1 * gamma) . (b0, b1) and (a0, a1) . (b1, b0), summed in 32 bits. */
            __m512i ag = _mm512_mask_blend_epi16(ODD_LANES, av, fqmul_512(av, g, g_qinv));
            __m512i bs = _mm512_shufflehi_epi16(_mm512_shufflelo_epi16(bv, 0xB1), 0xB1);
            r0 = _mm512_add_epi32(r0, _mm512_madd_epi16(ag, bv));
            r1 = _mm512_add_epi32(r1, _mm512_madd_epi16(av, bs));
        }
        r0 = montgomery32_z(r0);
        r1 = montgomery32_z(r1);
        __m512i packed = _mm512_mask_blend_epi16(ODD_LANES, r0, _mm512_slli_epi32(r1, 16));
        _mm512_storeu_si512((void *)&r->c[32 * v], barrett_512(packed));
    }
}
#endif
