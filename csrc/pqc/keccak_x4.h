/* Faster Keccak-f[1600] for the PQC code: an unrolled scalar permutation and a 4-lane one
 * (four independent states in AVX2 registers, chosen at run time from CPUID, with a portable
 * fallback), plus the few sponge steps ML-KEM needs on four inputs at once. Results are
 * identical to qv_keccak_f1600 in quantavirt/keccak.h (tests/c/test_keccak_x4.c). */
#ifndef QV_PQC_KECCAK_X4_H
#define QV_PQC_KECCAK_X4_H

#include <stddef.h>
#include <stdint.h>

void qv_keccak_f1600_fast(uint64_t s[25]);

/* Four states, lane-interleaved: s[i][l] is word i of state l (the AVX2 layout). */
typedef struct qv_keccakx4 {
    _Alignas(32) uint64_t s[25][4];
} qv_keccakx4;

/* 1 when the AVX2 permutation is in use (CPU support and not disabled). */
int qv_keccakx4_uses_avx2(void);
/* Force the portable 4-lane path (enable = 0) or allow AVX2 again (enable = 1); for tests
 * and benchmarks comparing both paths. */
void qv_keccakx4_allow_avx2(int enable);

void qv_keccak_f1600_x4(qv_keccakx4 *st);
/* Start four sponges from zero and absorb in[l] (len < rate bytes each, same len), with the
 * domain suffix (0x1F SHAKE, 0x06 SHA-3) and the final padding bit. */
void qv_keccakx4_absorb_once(qv_keccakx4 *st, unsigned rate, uint8_t suffix,
                             const uint8_t *const in[4], size_t len);
/* Permute and output rate bytes per lane, nblocks times: out[l] receives nblocks * rate. */
void qv_keccakx4_squeeze_blocks(qv_keccakx4 *st, unsigned rate, uint8_t *const out[4],
                                size_t nblocks);

#endif
