/* ML-KEM (FIPS 203) arithmetic modulo q = 3329: Montgomery and Barrett reductions (no
 * division, no data-dependent branches), the NTT and its inverse (Algorithms 9 and 10) and the
 * base-case multiplication of NTT representations (Algorithms 11 and 12). */
#include "pqc/keccak_x4.h"
#include "pqc/mlkem/mlkem_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define MLKEM_AVX2_BUILT 1
#endif

#define MLKEM_MONT_R2 1353    /* 2^32 mod q: fqmul by it multiplies by R = 2^16 */
#define MLKEM_INV128_R2 1441  /* 128^-1 * 2^32 mod q: the NTT^-1 scaling, times R */

/* zeta^BitRev7(i) * R mod q, centred (zeta = 17). */
const int16_t mlkem_zetas[128] = {
    -1044, -758,  -359,  -1517, 1493,  1422,  287,   202,   -171,  622,   1577,  182,
    962,   -1202, -1474, 1468,  573,   -1325, 264,   383,   -829,  1458,  -1602, -130,
    -681,  1017,  732,   608,   -1542, 411,   -205,  -1571, 1223,  652,   -552,  1015,
    -1293, 1491,  -282,  -1544, 516,   -8,    -320,  -666,  -1618, -1162, 126,   1469,
    -853,  -90,   -271,  830,   107,   -1421, -247,  -951,  -398,  961,   -1508, -725,
    448,   -1065, 677,   -1275, -1103, 430,   555,   843,   -1251, 871,   1550,  105,
    422,   587,   177,   -235,  -291,  -460,  1574,  1653,  -246,  778,   1159,  -147,
    -777,  1483,  -602,  1119,  -1590, 644,   -872,  349,   418,   329,   -156,  -75,
    817,   1097,  603,   610,   1322,  -1285, -1465, 384,   -1215, -136,  1218,  -1335,
    -874,  220,   -1187, -1659, -1185, -1530, -1278, 794,   -1510, -854,  -870,  478,
    -108,  -308,  996,   991,   958,   -1460, 1522,  1628};

/* gamma_i = zeta^(2 BitRev7(i) + 1) * R mod q, centred: the moduli X^2 - gamma_i. */
const int16_t mlkem_gammas[128] = {
    -1103, 1103,  430,   -430,  555,   -555,  843,   -843,  -1251, 1251,  871,   -871,
    1550,  -1550, 105,   -105,  422,   -422,  587,   -587,  177,   -177,  -235,  235,
    -291,  291,   -460,  460,   1574,  -1574, 1653,  -1653, -246,  246,   778,   -778,
    1159,  -1159, -147,  147,   -777,  777,   1483,  -1483, -602,  602,   1119,  -1119,
    -1590, 1590,  644,   -644,  -872,  872,   349,   -349,  418,   -418,  329,   -329,
    -156,  156,   -75,   75,    817,   -817,  1097,  -1097, 603,   -603,  610,   -610,
    1322,  -1322, -1285, 1285,  -1465, 1465,  384,   -384,  -1215, 1215,  -136,  136,
    1218,  -1218, -1335, 1335,  -874,  874,   220,   -220,  -1187, 1187,  -1659, 1659,
    -1185, 1185,  -1530, 1530,  -1278, 1278,  794,   -794,  -1510, 1510,  -854,  854,
    -870,  870,   478,   -478,  -108,  108,   -308,  308,   996,   -996,  991,   -991,
    958,   -958,  -1460, 1460,  1522,  -1522, 1628,  -1628};

int mlkem_use_avx2(void)
{
    /* One switch for all PQC AVX2 code: the 4-lane Keccak's (CPUID check plus test override). */
#ifdef MLKEM_AVX2_BUILT
    return qv_keccakx4_uses_avx2();
#else
    return 0;
#endif
}

int mlkem_use_avx512(void)
{
#ifdef MLKEM_AVX2_BUILT
    return mlkem_use_avx2() && qv_keccakx8_available() && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

static inline int16_t fqmul(int16_t a, int16_t b)
{
    return mlkem_montgomery_reduce((int32_t)a * b);
}

void mlkem_poly_reduce(mlkem_poly *p)
{
    for (unsigned i = 0; i < MLKEM_N; i++)
        p->c[i] = mlkem_barrett_reduce(p->c[i]);
}

void mlkem_poly_tomont(mlkem_poly *p)
{
    for (unsigned i = 0; i < MLKEM_N; i++)
        p->c[i] = fqmul(p->c[i], MLKEM_MONT_R2);
}

void mlkem_poly_add(mlkem_poly *r, const mlkem_poly *a, const mlkem_poly *b)
{
    for (unsigned i = 0; i < MLKEM_N; i++)
        r->c[i] = (int16_t)(a->c[i] + b->c[i]);
}

void mlkem_poly_sub(mlkem_poly *r, const mlkem_poly *a, const mlkem_poly *b)
{
    for (unsigned i = 0; i < MLKEM_N; i++)
        r->c[i] = (int16_t)(a->c[i] - b->c[i]);
}

void mlkem_ntt(mlkem_poly *p)
{
#ifdef MLKEM_AVX2_BUILT
    if (mlkem_use_avx512()) {
        mlkem_ntt_avx512(p);
        return;
    }
    if (mlkem_use_avx2()) {
        mlkem_ntt_avx2(p);
        return;
    }
#endif
    /* With |input| < q each of the 7 layers grows the bound by at most q: < 8q fits int16. */
    unsigned k = 1;
    for (unsigned len = 128; len >= 2; len >>= 1) {
        for (unsigned start = 0; start < MLKEM_N; start += 2 * len) {
            int16_t zeta = mlkem_zetas[k++];
            for (unsigned j = start; j < start + len; j++) {
                int16_t t = fqmul(zeta, p->c[j + len]);
                p->c[j + len] = (int16_t)(p->c[j] - t);
                p->c[j] = (int16_t)(p->c[j] + t);
            }
        }
    }
    mlkem_poly_reduce(p);
}

void mlkem_invntt(mlkem_poly *p)
{
#ifdef MLKEM_AVX2_BUILT
    if (mlkem_use_avx512()) {
        mlkem_invntt_avx512(p);
        return;
    }
    if (mlkem_use_avx2()) {
        mlkem_invntt_avx2(p);
        return;
    }
#endif
    unsigned k = 127;
    for (unsigned len = 2; len <= 128; len <<= 1) {
        for (unsigned start = 0; start < MLKEM_N; start += 2 * len) {
            int16_t zeta = mlkem_zetas[k--];
            for (unsigned j = start; j < start + len; j++) {
                int16_t t = p->c[j];
                p->c[j] = mlkem_barrett_reduce((int16_t)(t + p->c[j + len]));
                p->c[j + len] = fqmul(zeta, (int16_t)(p->c[j + len] - t));
            }
        }
    }
    for (unsigned j = 0; j < MLKEM_N; j++)
        p->c[j] = fqmul(p->c[j], MLKEM_INV128_R2);
}

void mlkem_polyvec_basemul_acc(mlkem_poly *r, const mlkem_poly *a, const mlkem_poly *b,
                               unsigned k)
{
    /* Products are summed in 32 bits and reduced once: with |a| < q and |b| <= (q-1)/2 the
     * sum of 2k <= 8 terms stays below q * 2^15, the Montgomery input bound. */
#ifdef MLKEM_AVX2_BUILT
    if (mlkem_use_avx512()) {
        mlkem_polyvec_basemul_acc_avx512(r, a, b, k);
        return;
    }
    if (mlkem_use_avx2()) {
        mlkem_polyvec_basemul_acc_avx2(r, a, b, k);
        return;
    }
#endif
    for (unsigned i = 0; i < MLKEM_N / 2; i++) {
        int32_t r0 = 0, r1 = 0;
        for (unsigned l = 0; l < k; l++) {
            int16_t a0 = a[l].c[2 * i], a1 = a[l].c[2 * i + 1];
            int16_t b0 = b[l].c[2 * i], b1 = b[l].c[2 * i + 1];
            r0 += (int32_t)a0 * b0 + (int32_t)fqmul(a1, b1) * mlkem_gammas[i];
            r1 += (int32_t)a0 * b1 + (int32_t)a1 * b0;
        }
        r->c[2 * i] = mlkem_barrett_reduce(mlkem_montgomery_reduce(r0));
        r->c[2 * i + 1] = mlkem_barrett_reduce(mlkem_montgomery_reduce(r1));
    }
}
