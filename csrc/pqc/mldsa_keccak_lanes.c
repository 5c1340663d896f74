/* Four independent FIPS 202 sponges (SHAKE128 / SHAKE256) advanced together, for the many
 * same-length XOF calls of ML-DSA (ExpandA, ExpandS, ExpandMask). With AVX2 one permutation
 * call runs Keccak-f[1600] on all four states in the lanes of 256-bit registers; without it the
 * scalar qv_keccak_f1600 runs four times. Either way each lane's output is exactly that
 * lane's SHAKE output (tests/c/test_mldsa_kernels.c compares with qv_shake128/256). With
 * AVX-512VL the same four-lane permutation uses rotate and ternary-logic instructions. */
#include <string.h>

#include "pqc/mldsa_internal.h"
#include "quantavirt/keccak.h"

static void permute_lanes_portable(uint64_t *s, unsigned lanes)
{
    uint64_t lane[25];
    for (unsigned l = 0; l < lanes; l++) {
        for (unsigned i = 0; i < 25; i++)
            lane[i] = s[lanes * i + l];
        qv_keccak_f1600(lane);
        for (unsigned i = 0; i < 25; i++)
            s[lanes * i + l] = lane[i];
    }
}

static void permute_x4_portable(uint64_t s[25 * 4])
{
    permute_lanes_portable(s, 4);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

static const uint64_t rc_x4[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL,
    0x8000000080008000ULL, 0x000000000000808bULL, 0x0000000080000001ULL,
    0x8000000080008081ULL, 0x8000000000008009ULL, 0x000000000000008aULL,
    0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL,
    0x8000000000008003ULL, 0x8000000000008002ULL, 0x8000000000000080ULL,
    0x000000000000800aULL, 0x800000008000000aULL, 0x8000000080008081ULL,
    0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

#define ROL(x, n) _mm256_or_si256(_mm256_slli_epi64((x), (n)), _mm256_srli_epi64((x), 64 - (n)))

/* One round on state a (index x + 5 y): theta, rho and pi into b, chi back into a, iota. The
 * rho offsets and pi positions are written out so every shift count is an immediate. */
__attribute__((target("avx2"))) static void permute_x4_avx2(uint64_t s[25 * 4])
{
    __m256i a[25], b[25], c[5], d[5];
    for (unsigned i = 0; i < 25; i++)
        a[i] = _mm256_loadu_si256((const __m256i *)(s + 4 * i));
    for (unsigned round = 0; round < 24; round++) {
#pragma GCC unroll 5
        for (unsigned x = 0; x < 5; x++)
            c[x] = _mm256_xor_si256(_mm256_xor_si256(a[x], a[x + 5]),
                                    _mm256_xor_si256(_mm256_xor_si256(a[x + 10], a[x + 15]),
                                                     a[x + 20]));
#pragma GCC unroll 5
        for (unsigned x = 0; x < 5; x++)
            d[x] = _mm256_xor_si256(c[(x + 4) % 5], ROL(c[(x + 1) % 5], 1));
#pragma GCC unroll 25
        for (unsigned i = 0; i < 25; i++)
            a[i] = _mm256_xor_si256(a[i], d[i % 5]);
        /* b[y + 5 ((2x + 3y) mod 5)] = rol(a[x + 5y], r[x][y]) */
        b[0] = a[0];
        b[16] = ROL(a[5], 36);
        b[7] = ROL(a[10], 3);
        b[23] = ROL(a[15], 41);
        b[14] = ROL(a[20], 18);
        b[10] = ROL(a[1], 1);
        b[1] = ROL(a[6], 44);
        b[17] = ROL(a[11], 10);
        b[8] = ROL(a[16], 45);
        b[24] = ROL(a[21], 2);
        b[20] = ROL(a[2], 62);
        b[11] = ROL(a[7], 6);
        b[2] = ROL(a[12], 43);
        b[18] = ROL(a[17], 15);
        b[9] = ROL(a[22], 61);
        b[5] = ROL(a[3], 28);
        b[21] = ROL(a[8], 55);
        b[12] = ROL(a[13], 25);
        b[3] = ROL(a[18], 21);
        b[19] = ROL(a[23], 56);
        b[15] = ROL(a[4], 27);
        b[6] = ROL(a[9], 20);
        b[22] = ROL(a[14], 39);
        b[13] = ROL(a[19], 8);
        b[4] = ROL(a[24], 14);
#pragma GCC unroll 5
        for (unsigned y = 0; y < 25; y += 5)
#pragma GCC unroll 5
            for (unsigned x = 0; x < 5; x++)
                a[y + x] = _mm256_xor_si256(b[y + x], _mm256_andnot_si256(b[y + (x + 1) % 5],
                                                                        b[y + (x + 2) % 5]));
        a[0] = _mm256_xor_si256(a[0], _mm256_set1_epi64x((long long)rc_x4[round]));
    }
    for (unsigned i = 0; i < 25; i++)
        _mm256_storeu_si256((__m256i *)(s + 4 * i), a[i]);
}

/* The same round with AVX-512VL on 256-bit registers: one-instruction rotations and
 * three-input logic (vpternlogq: 0x96 = a ^ b ^ c, 0xD2 = a ^ (~b & c)). */
#define ROL512(x, n) _mm256_rol_epi64((x), (n))
#define XOR3(a, b, c) _mm256_ternarylogic_epi64((a), (b), (c), 0x96)

__attribute__((target("avx2,avx512f,avx512vl"))) static void permute_x4_avx512(uint64_t s[25 * 4])
{
    __m256i a[25], b[25], c[5], d[5];
    for (unsigned i = 0; i < 25; i++)
        a[i] = _mm256_loadu_si256((const __m256i *)(s + 4 * i));
    for (unsigned round = 0; round < 24; round++) {
#pragma GCC unroll 5
        for (unsigned x = 0; x < 5; x++)
            c[x] = XOR3(XOR3(a[x], a[x + 5], a[x + 10]), a[x + 15], a[x + 20]);
#pragma GCC unroll 5
        for (unsigned x = 0; x < 5; x++)
            d[x] = _mm256_xor_si256(c[(x + 4) % 5], ROL512(c[(x + 1) % 5], 1));
        b[0] = _mm256_xor_si256(a[0], d[0]);
        b[16] = ROL512(_mm256_xor_si256(a[5], d[0]), 36);
        b[7] = ROL512(_mm256_xor_si256(a[10], d[0]), 3);
        b[23] = ROL512(_mm256_xor_si256(a[15], d[0]), 41);
        b[14] = ROL512(_mm256_xor_si256(a[20], d[0]), 18);
        b[10] = ROL512(_mm256_xor_si256(a[1], d[1]), 1);
        b[1] = ROL512(_mm256_xor_si256(a[6], d[1]), 44);
        b[17] = ROL512(_mm256_xor_si256(a[11], d[1]), 10);
        b[8] = ROL512(_mm256_xor_si256(a[16], d[1]), 45);
        b[24] = ROL512(_mm256_xor_si256(a[21], d[1]), 2);
        b[20] = ROL512(_mm256_xor_si256(a[2], d[2]), 62);
        b[11] = ROL512(_mm256_xor_si256(a[7], d[2]), 6);
        b[2] = ROL512(_mm256_xor_si256(a[12], d[2]), 43);
        b[18] = ROL512(_mm256_xor_si256(a[17], d[2]), 15);
        b[9] = ROL512(_mm256_xor_si256(a[22], d[2]), 61);
        b[5] = ROL512(_mm256_xor_si256(a[3], d[3]), 28);
        b[21] = ROL512(_mm256_xor_si256(a[8], d[3]), 55);
        b[12] = ROL512(_mm256_xor_si256(a[13], d[3]), 25);
        b[3] = ROL512(_mm256_xor_si256(a[18], d[3]), 21);
        b[19] = ROL512(_mm256_xor_si256(a[23], d[3]), 56);
        b[15] = ROL512(_mm256_xor_si256(a[4], d[4]), 27);
        b[6] = ROL512(_mm256_xor_si256(a[9], d[4]), 20);
        b[22] = ROL512(_mm256_xor_si256(a[14], d[4]), 39);
        b[13] = ROL512(_mm256_xor_si256(a[19], d[4]), 8);
        b[4] = ROL512(_mm256_xor_si256(a[24], d[4]), 14);
#pragma GCC unroll 5
        for (unsigned y = 0; y < 25; y += 5)
#pragma GCC unroll 5
            for (unsigned x = 0; x < 5; x++)
                a[y + x] = _mm256_ternarylogic_epi64(b[y + x], b[y + (x + 1) % 5],
                                                     b[y + (x + 2) % 5], 0xD2);
        a[0] = _mm256_xor_si256(a[0], _mm256_set1_epi64x((long long)rc_x4[round]));
    }
    for (unsigned i = 0; i < 25; i++)
        _mm256_storeu_si256((__m256i *)(s + 4 * i), a[i]);
}

/* Eight states on 512-bit registers: the same round once more. */
#define ROLZ(x, n) _mm512_rol_epi64((x), (n))
#define XOR3Z(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0x96)

__attribute__((target("avx512f"))) static void permute_x8_avx512(uint64_t s[25 * 8])
{
    __m512i a[25], b[25], c[5], d[5];
    for (unsigned i = 0; i < 25; i++)
        a[i] = _mm512_loadu_si512((const void *)(s + 8 * i));
    for (unsigned round = 0; round < 24; round++) {
#pragma GCC unroll 5
        for (unsigned x = 0; x < 5; x++)
            c[x] = XOR3Z(XOR3Z(a[x], a[x + 5], a[x + 10]), a[x + 15], a[x + 20]);
#pragma GCC unroll 5
        for (unsigned x = 0; x < 5; x++)
            d[x] = _mm512_xor_si512(c[(x + 4) % 5], ROLZ(c[(x + 1) % 5], 1));
        b[0] = _mm512_xor_si512(a[0], d[0]);
        b[16] = ROLZ(_mm512_xor_si512(a[5], d[0]), 36);
        b[7] = ROLZ(_mm512_xor_si512(a[10], d[0]), 3);
        b[23] = ROLZ(_mm512_xor_si512(a[15], d[0]), 41);
        b[14] = ROLZ(_mm512_xor_si512(a[20], d[0]), 18);
        b[10] = ROLZ(_mm512_xor_si512(a[1], d[1]), 1);
        b[1] = ROLZ(_mm512_xor_si512(a[6], d[1]), 44);
        b[17] = ROLZ(_mm512_xor_si512(a[11], d[1]), 10);
        b[8] = ROLZ(_mm512_xor_si512(a[16], d[1]), 45);
        b[24] = ROLZ(_mm512_xor_si512(a[21], d[1]), 2);
        b[20] = ROLZ(_mm512_xor_si512(a[2], d[2]), 62);
        b[11] = ROLZ(_mm512_xor_si512(a[7], d[2]), 6);
        b[2] = ROLZ(_mm512_xor_si512(a[12], d[2]), 43);
        b[18] = ROLZ(_mm512_xor_si512(a[17], d[2]), 15);
        b[9] = ROLZ(_mm512_xor_si512(a[22], d[2]), 61);
        b[5] = ROLZ(_mm512_xor_si512(a[3], d[3]), 28);
        b[21] = ROLZ(_mm512_xor_si512(a[8], d[3]), 55);
        b[12] = ROLZ(_mm512_xor_si512(a[13], d[3]), 25);
        b[3] = ROLZ(_mm512_xor_si512(a[18], d[3]), 21);
        b[19] = ROLZ(_mm512_xor_si512(a[23], d[3]), 56);
        b[15] = ROLZ(_mm512_xor_si512(a[4], d[4]), 27);
        b[6] = ROLZ(_mm512_xor_si512(a[9], d[4]), 20);
        b[22] = ROLZ(_mm512_xor_si512(a[14], d[4]), 39);
        b[13] = ROLZ(_mm512_xor_si512(a[19], d[4]), 8);
        b[4] = ROLZ(_mm512_xor_si512(a[24], d[4]), 14);
#pragma GCC unroll 5
        for (unsigned y = 0; y < 25; y += 5)
#pragma GCC unroll 5
            for (unsigned x = 0; x < 5; x++)
                a[y + x] = _mm512_ternarylogic_epi64(b[y + x], b[y + (x + 1) % 5],
                                                     b[y + (x + 2) % 5], 0xD2);
        a[0] = _mm512_xor_si512(a[0], _mm512_set1_epi64((long long)rc_x4[round]));
    }
    for (unsigned i = 0; i < 25; i++)
        _mm512_storeu_si512((void *)(s + 8 * i), a[i]);
}

static void permute_x8(uint64_t s[25 * 8])
{
    if (qv_mldsa_path() >= QV_MLDSA_PATH_AVX512)
        permute_x8_avx512(s);
    else
        permute_lanes_portable(s, 8);
}

static void permute_x4(uint64_t s[25 * 4])
{
    int path = qv_mldsa_path();
    if (path >= QV_MLDSA_PATH_AVX512)
        permute_x4_avx512(s);
    else if (path >= QV_MLDSA_PATH_AVX2)
        permute_x4_avx2(s);
    else
        permute_x4_portable(s);
}

#else

static void permute_x4(uint64_t s[25 * 4])
{
    permute_x4_portable(s);
}

static void permute_x8(uint64_t s[25 * 8])
{
    permute_lanes_portable(s, 8);
}

#endif

void qv_mldsa_keccak_x4_permute(qv_mldsa_keccak_x4 *st)
{
    permute_x4(st->s);
}

/* Absorb and squeeze for `lanes` interleaved sponges (lane i of sponge l at s[lanes i + l]). */
static void absorb_lanes(uint64_t *s, unsigned lanes, unsigned rate, const uint8_t *const *in,
                         size_t len, void (*permute)(uint64_t *))
{
    memset(s, 0, sizeof(uint64_t) * 25 * lanes);
    size_t off = 0;
    for (;;) {
        size_t take = len - off < rate ? len - off : rate;
        for (unsigned l = 0; l < lanes; l++)
            for (size_t i = 0; i < take; i++)
                s[lanes * (i / 8) + l] ^= (uint64_t)in[l][off + i] << (8 * (i % 8));
        off += take;
        if (take < rate)
            break;
        permute(s);
    }
    /* SHAKE padding: suffix 1111 then pad10*1 */
    size_t pos = len % rate;
    for (unsigned l = 0; l < lanes; l++) {
        s[lanes * (pos / 8) + l] ^= (uint64_t)0x1F << (8 * (pos % 8));
        s[lanes * ((rate - 1) / 8) + l] ^= (uint64_t)0x80 << (8 * ((rate - 1) % 8));
    }
}

static void squeeze_lanes(uint64_t *s, unsigned lanes, unsigned rate, uint8_t *const *out,
                          size_t nblocks, void (*permute)(uint64_t *))
{
    for (size_t b = 0; b < nblocks; b++) {
        permute(s);
        for (unsigned l = 0; l < lanes; l++) {
            uint8_t *o = out[l] + b * rate;
            for (unsigned i = 0; i < rate / 8; i++) {
                uint64_t v = s[lanes * i + l];
                for (unsigned k = 0; k < 8; k++)
                    o[8 * i + k] = (uint8_t)(v >> (8 * k));
            }
        }
    }
}

void qv_mldsa_keccak_x4_absorb(qv_mldsa_keccak_x4 *st, unsigned rate,
                               const uint8_t *const in[4], size_t len)
{
    st->rate = rate;
    absorb_lanes(st->s, 4, rate, in, len, permute_x4);
}

void qv_mldsa_keccak_x4_squeezeblocks(qv_mldsa_keccak_x4 *st, uint8_t *const out[4],
                                      size_t nblocks)
{
    squeeze_lanes(st->s, 4, st->rate, out, nblocks, permute_x4);
}

void qv_mldsa_keccak_x8_absorb(qv_mldsa_keccak_x8 *st, unsigned rate,
                               const uint8_t *const in[8], size_t len)
{
    st->rate = rate;
    absorb_lanes(st->s, 8, rate, in, len, permute_x8);
}

void qv_mldsa_keccak_x8_squeezeblocks(qv_mldsa_keccak_x8 *st, uint8_t *const out[8],
                                      size_t nblocks)
{
    squeeze_lanes(st->s, 8, st->rate, out, nblocks, permute_x8);
}
