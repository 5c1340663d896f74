/* Internal to the ML-DSA implementation: constants, code-path selection and the vector
 * kernels shared by mldsa.c (the algorithm, portable C) and mldsa_avx2.c (AVX2 / AVX-512
 * kernels). Four- and eight-lane SHAKE runs on the shared Keccak of pqc/keccak_x4.h. */
#ifndef QV_PQC_MLDSA_INTERNAL_H
#define QV_PQC_MLDSA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pqc/keccak_x4.h"
#include "quantavirt/mldsa.h"

#define QV_MLDSA_N 256
#define QV_MLDSA_Q 8380417
#define QV_MLDSA_QINV 58728449 /* q^-1 mod 2^32 */
#define QV_MLDSA_INVNTT_F 41978 /* 2^64 / 256 mod q */
/* f * (-zeta_1) / 2^32 mod q: the last inverse-NTT layer's twiddle with the scaling folded in */
#define QV_MLDSA_INVNTT_FZ 3975713

/* zeta^brv8(i) * 2^32 mod q, centred, zeta = 1753; entry 0 unused. */
extern const int32_t qv_mldsa_zetas[QV_MLDSA_N];

/* The code path in force (QV_MLDSA_PATH_*): what CPUID offers, capped by
 * qv_mldsa_set_path_limit. */
int qv_mldsa_path(void);

/* AVX2 kernels, bit-identical to the portable ones (same operations per coefficient); only
 * call them when qv_mldsa_path() >= QV_MLDSA_PATH_AVX2. */
void qv_mldsa_ntt_avx2(int32_t a[QV_MLDSA_N]);
void qv_mldsa_invntt_tomont_avx2(int32_t a[QV_MLDSA_N]);
void qv_mldsa_pointwise_avx2(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                             const int32_t b[QV_MLDSA_N]);
void qv_mldsa_pointwise_acc_avx2(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                                 const int32_t b[QV_MLDSA_N]);
/* AVX-512 versions (16 lanes for every NTT layer and the products); only when
 * qv_mldsa_path() >= QV_MLDSA_PATH_AVX512. Bit-identical to the others. */
void qv_mldsa_ntt_avx512(int32_t a[QV_MLDSA_N]);
void qv_mldsa_invntt_tomont_avx512(int32_t a[QV_MLDSA_N]);
void qv_mldsa_pointwise_avx512(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                               const int32_t b[QV_MLDSA_N]);
void qv_mldsa_pointwise_acc_avx512(int32_t r[QV_MLDSA_N], const int32_t a[QV_MLDSA_N],
                                   const int32_t b[QV_MLDSA_N]);

/* SampleInBall's step c_i <- c_j, c_j <- sign without indexing by the secret j (j <= i), on
 * one byte per coefficient. */
void qv_mldsa_ball_swap_avx2(int8_t c[QV_MLDSA_N], uint32_t i, uint32_t j, int8_t sign);

/* RejNTTPoly's parsing of len bytes of SHAKE128 output into a from count j; the new count. */
unsigned qv_mldsa_rej_uniform_avx2(int32_t *a, unsigned j, const uint8_t *buf, size_t len);

/* ExpandMask's BitUnpack: y_i = gamma1 - (bits-bit field i of in), bits 18 or 20. Reads up to
 * 12 bytes past the 32 * bits it decodes: the caller's buffer must have them. */
void qv_mldsa_unpack_mask_avx2(int32_t y[QV_MLDSA_N], const uint8_t *in, unsigned bits,
                               int32_t gamma1);

/* The shared multi-lane Keccak's level (QV_KECCAK_LEVEL_*) for ML-DSA's code path: portable,
 * AVX2, or AVX-512 (eight lanes in zmm registers, four with AVX-512VL). */
static inline int qv_mldsa_keccak_level(void)
{
    int path = qv_mldsa_path();
    return path >= QV_MLDSA_PATH_AVX512 ? 3 : path >= QV_MLDSA_PATH_AVX2 ? 1 : 0;
}

#endif
