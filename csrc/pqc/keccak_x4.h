/* Faster Keccak-f[1600] for the PQC code (ML-KEM and ML-DSA both use it): an unrolled scalar
 * permutation, a 4-lane one (four independent states in AVX2 or AVX-512VL registers) and an
 * 8-lane one (AVX-512F), chosen at run time from CPUID with portable fallbacks, plus the
 * sponge steps the two algorithms need on four or eight inputs at once. Results are
 * identical to qv_keccak_f1600 in quantavirt/keccak.h (tests/c/test_keccak_x4.c). */
#ifndef QV_PQC_KECCAK_X4_H
#define QV_PQC_KECCAK_X4_H

#include <stddef.h>
#include <stdint.h>

#include <string.h>

/* iota's round constants (keccak.c). */
extern const uint64_t qv_keccak_round_constants[24];

/* Lanes are little-endian 64-bit words (FIPS 202): the byte <-> word helpers of the sponges. */
static inline uint64_t qv_load64_le(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
#endif
}

static inline void qv_store64_le(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
#endif
}

void qv_keccak_f1600_fast(uint64_t s[25]);

/* Four states, lane-interleaved: s[i][l] is word i of state l (the AVX2 layout). */
typedef struct qv_keccakx4 {
    _Alignas(32) uint64_t s[25][4];
} qv_keccakx4;

/* Eight states, lane-interleaved the same way (the AVX-512 zmm layout). */
typedef struct qv_keccakx8 {
    _Alignas(64) uint64_t s[25][8];
} qv_keccakx8;

/* 1 when the 8-lane AVX-512F permutation runs (CPU support and level 3 allowed); callers use
 * the 4-lane one otherwise. */
int qv_keccakx8_available(void);
void qv_keccak_f1600_x8(qv_keccakx8 *st);

/* SIMD levels: 0 portable, 1 AVX2, 2 AVX-512VL (4 lanes), 3 AVX-512F (8 lanes); whatever the
 * level asks, CPUID still decides what can run. QV_KECCAK_LEVEL_DEFAULT means the
 * process-wide cap below (ML-KEM's code path); ML-DSA passes its own code path's level. */
#define QV_KECCAK_LEVEL_DEFAULT (-1)
void qv_keccak_f1600_x4_level(qv_keccakx4 *st, int level);
void qv_keccak_f1600_x8_level(qv_keccakx8 *st, int level);

/* 1 when AVX2 code may run (CPU support and not switched off); AVX-512VL is used on top when
 * the CPU has it too. */
int qv_keccakx4_uses_avx2(void);
/* "avx512" (8-lane available), "avx512vl", "avx2" or "portable": which multi-lane
 * permutation runs. */
const char *qv_keccakx4_code_path(void);
/* Cap the SIMD level: 0 portable, 1 AVX2, 2 AVX-512VL, 3 AVX-512F 8-lane (default; CPUID
 * still decides what runs). For tests and benchmarks comparing paths; process-wide. */
void qv_keccakx4_set_max_level(int level);

void qv_keccak_f1600_x4(qv_keccakx4 *st);
/* Start four (eight) sponges from zero and absorb in[l], len bytes each (any length), then the
 * domain suffix (0x1F SHAKE, 0x06 SHA-3) and pad10*1. */
void qv_keccakx4_absorb(qv_keccakx4 *st, int level, unsigned rate, uint8_t suffix,
                        const uint8_t *const in[4], size_t len);
void qv_keccakx8_absorb(qv_keccakx8 *st, int level, unsigned rate, uint8_t suffix,
                        const uint8_t *const in[8], size_t len);
/* Permute and output rate bytes per lane, nblocks times: out[l] receives nblocks * rate. */
void qv_keccakx4_squeeze_blocks(qv_keccakx4 *st, int level, unsigned rate,
                                uint8_t *const out[4], size_t nblocks);
void qv_keccakx8_squeeze_blocks(qv_keccakx8 *st, int level, unsigned rate,
                                uint8_t *const out[8], size_t nblocks);

/* Four complete FIPS 202 hashes of four equal-length inputs: SHA3 (suffix 0x06) or SHAKE
 * (0x1F) with the given rate; out[l] receives outlen bytes. */
void qv_keccakx4_hash(unsigned rate, uint8_t suffix, const uint8_t *const in[4], size_t len,
                      uint8_t *const out[4], size_t outlen);

/* The same with a length and a suffix per lane, all with the same rate and output length.
 * The lanes must need the same number of permutations to absorb (len / rate equal): -1
 * otherwise, and nothing is computed. */
int qv_keccakx4_hash_lanes(unsigned rate, const uint8_t suffix[4], const uint8_t *const in[4],
                           const size_t len[4], uint8_t *const out[4], size_t outlen);

#endif
