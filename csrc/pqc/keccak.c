/* FIPS 202 Keccak-f[1600] and the sponge built on it. Portable C; lanes are little-endian
 * 64-bit words, so the byte-level absorb/squeeze go through explicit load/store helpers. */
#include "quantavirt/keccak.h"

#include <string.h>

#include "core/wipe.h"
#include "pqc/keccak_x4.h"

/* iota's round constants, shared with the fast permutations of keccak_x4.c. */
const uint64_t qv_keccak_round_constants[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL,
    0x8000000080008000ULL, 0x000000000000808bULL, 0x0000000080000001ULL,
    0x8000000080008081ULL, 0x8000000000008009ULL, 0x000000000000008aULL,
    0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL,
    0x8000000000008003ULL, 0x8000000000008002ULL, 0x8000000000000080ULL,
    0x000000000000800aULL, 0x800000008000000aULL, 0x8000000080008081ULL,
    0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

/* rho offsets and pi destinations, walking the lanes in the order pi visits them. */
static const unsigned keccak_rho[24] = {1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
                                        27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44};
static const unsigned keccak_pi[24] = {10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
                                       15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1};

static inline uint64_t rol64(uint64_t x, unsigned n)
{
    return (x << n) | (x >> ((64 - n) & 63));
}

void qv_keccak_f1600(uint64_t a[25])
{
    uint64_t c[5], t;
    for (int round = 0; round < 24; round++) {
        /* theta */
        for (int x = 0; x < 5; x++)
            c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; x++) {
            t = c[(x + 4) % 5] ^ rol64(c[(x + 1) % 5], 1);
            for (int y = 0; y < 25; y += 5)
                a[y + x] ^= t;
        }
        /* rho and pi */
        t = a[1];
        for (int i = 0; i < 24; i++) {
            unsigned j = keccak_pi[i];
            uint64_t next = a[j];
            a[j] = rol64(t, keccak_rho[i]);
            t = next;
        }
        /* chi */
        for (int y = 0; y < 25; y += 5) {
            for (int x = 0; x < 5; x++)
                c[x] = a[y + x];
            for (int x = 0; x < 5; x++)
                a[y + x] = c[x] ^ (~c[(x + 1) % 5] & c[(x + 2) % 5]);
        }
        /* iota */
        a[0] ^= qv_keccak_round_constants[round];
    }
}

static inline void state_xor_byte(uint64_t s[25], unsigned pos, uint8_t b)
{
    s[pos / 8] ^= (uint64_t)b << (8 * (pos % 8));
}

static inline uint8_t state_get_byte(const uint64_t s[25], unsigned pos)
{
    return (uint8_t)(s[pos / 8] >> (8 * (pos % 8)));
}

void qv_keccak_init(qv_keccak *k, unsigned int rate, uint8_t suffix)
{
    memset(k->state, 0, sizeof(k->state));
    k->rate = rate;
    k->offset = 0;
    k->suffix = suffix;
    k->squeezing = 0;
}

void qv_shake128_init(qv_keccak *k)
{
    qv_keccak_init(k, QV_SHAKE128_RATE, 0x1F);
}

void qv_shake256_init(qv_keccak *k)
{
    qv_keccak_init(k, QV_SHAKE256_RATE, 0x1F);
}

void qv_keccak_absorb(qv_keccak *k, const uint8_t *in, size_t len)
{
    /* Whole aligned lanes go in eight bytes at a time; the rest byte by byte. */
    while (len > 0) {
        if (k->offset % 8 == 0 && len >= 8 && k->offset + 8 <= k->rate) {
            uint64_t lane = 0;
            for (int i = 7; i >= 0; i--)
                lane = (lane << 8) | in[i];
            k->state[k->offset / 8] ^= lane;
            k->offset += 8;
            in += 8;
            len -= 8;
        } else {
            state_xor_byte(k->state, k->offset++, *in++);
            len--;
        }
        if (k->offset == k->rate) {
            qv_keccak_f1600(k->state);
            k->offset = 0;
        }
    }
}

static void keccak_finalize(qv_keccak *k)
{
    state_xor_byte(k->state, k->offset, k->suffix);
    state_xor_byte(k->state, k->rate - 1, 0x80);
    qv_keccak_f1600(k->state);
    k->offset = 0;
    k->squeezing = 1;
}

void qv_keccak_squeeze(qv_keccak *k, uint8_t *out, size_t len)
{
    if (!k->squeezing)
        keccak_finalize(k);
    while (len > 0) {
        if (k->offset == k->rate) {
            qv_keccak_f1600(k->state);
            k->offset = 0;
        }
        if (k->offset % 8 == 0 && len >= 8 && k->offset + 8 <= k->rate) {
            uint64_t lane = k->state[k->offset / 8];
            for (int i = 0; i < 8; i++)
                out[i] = (uint8_t)(lane >> (8 * i));
            k->offset += 8;
            out += 8;
            len -= 8;
        } else {
            *out++ = state_get_byte(k->state, k->offset++);
            len--;
        }
    }
}

void qv_keccak_wipe(qv_keccak *k)
{
    qv_wipe(k, sizeof(*k));
}

static void keccak_oneshot(unsigned rate, uint8_t suffix, uint8_t *out, size_t outlen,
                           const uint8_t *in, size_t len)
{
    qv_keccak k;
    qv_keccak_init(&k, rate, suffix);
    qv_keccak_absorb(&k, in, len);
    qv_keccak_squeeze(&k, out, outlen);
    qv_keccak_wipe(&k);
}

void qv_sha3_256(uint8_t out[32], const uint8_t *in, size_t len)
{
    keccak_oneshot(QV_SHA3_256_RATE, 0x06, out, 32, in, len);
}

void qv_sha3_512(uint8_t out[64], const uint8_t *in, size_t len)
{
    keccak_oneshot(QV_SHA3_512_RATE, 0x06, out, 64, in, len);
}

void qv_shake128(uint8_t *out, size_t outlen, const uint8_t *in, size_t len)
{
    keccak_oneshot(QV_SHAKE128_RATE, 0x1F, out, outlen, in, len);
}

void qv_shake256(uint8_t *out, size_t outlen, const uint8_t *in, size_t len)
{
    keccak_oneshot(QV_SHAKE256_RATE, 0x1F, out, outlen, in, len);
}
