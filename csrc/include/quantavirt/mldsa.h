/* ML-DSA-44/65/87 (FIPS 204, August 2024): key generation from a 32-byte seed xi, pure signing
 * with a context string (deterministic or hedged) and verification. Byte strings are in the
 * FIPS 204 encodings (pkEncode, skEncode, sigEncode). Every function returns 0 or a negative
 * PQC_ERR_* code from quantavirt/errors.h. */
#ifndef QUANTAVIRT_MLDSA_H
#define QUANTAVIRT_MLDSA_H

#include <stddef.h>
#include <stdint.h>

/* Parameter-set identifiers (the number in the name). */
#define QV_MLDSA_44 44
#define QV_MLDSA_65 65
#define QV_MLDSA_87 87

#define QV_MLDSA_SEED_BYTES 32
#define QV_MLDSA_RND_BYTES 32
#define QV_MLDSA_MAX_CONTEXT 255

/* Sizes in bytes of one parameter set; PQC_ERR_ALGORITHM for an unknown one. Any pointer
 * may be NULL. */
int qv_mldsa_sizes(int alg, size_t *pk_bytes, size_t *sk_bytes, size_t *sig_bytes);

/* ML-DSA.KeyGen_internal(xi): pk and sk from a 32-byte seed. */
int qv_mldsa_keygen_seed(int alg, uint8_t *pk, uint8_t *sk, const uint8_t *xi);
/* ML-DSA.KeyGen: xi from the system RNG (PQC_ERR_RANDOM if it fails). */
int qv_mldsa_keygen(int alg, uint8_t *pk, uint8_t *sk);

/* ML-DSA.Sign (pure): M' = 0 || len(ctx) || ctx || msg. deterministic != 0 uses rnd = 32 zero
 * bytes, otherwise rnd comes from the system RNG. PQC_ERR_CONTEXT if ctx_len > 255. */
int qv_mldsa_sign(int alg, uint8_t *sig, const uint8_t *sk, const uint8_t *msg, size_t msg_len,
                  const uint8_t *ctx, size_t ctx_len, int deterministic);
/* The same with the caller's 32-byte rnd (hedged signing with known randomness, for tests). */
int qv_mldsa_sign_rnd(int alg, uint8_t *sig, const uint8_t *sk, const uint8_t *msg,
                      size_t msg_len, const uint8_t *ctx, size_t ctx_len, const uint8_t *rnd);

/* ML-DSA.Verify (pure): 0 when valid, PQC_ERR_VERIFY when not (wrong signature length,
 * malformed hint, z too large or challenge mismatch), PQC_ERR_SIZE for a public key of the
 * wrong length, PQC_ERR_CONTEXT if ctx_len > 255. */
int qv_mldsa_verify(int alg, const uint8_t *pk, size_t pk_len, const uint8_t *msg,
                    size_t msg_len, const uint8_t *sig, size_t sig_len, const uint8_t *ctx,
                    size_t ctx_len);

/* Batches: n items laid out back to back (pk/sk/sig at their fixed sizes, messages all
 * msg_len bytes), one context for all. sign_batch stops at the first failure and returns its
 * code; verify_batch writes 1 (valid) or 0 to ok[i] and returns 0 unless the arguments are
 * wrong. */
/* keygen_batch: seeds is NULL (random xi) or n 32-byte seeds back to back. */
int qv_mldsa_keygen_batch(int alg, size_t n, uint8_t *pks, uint8_t *sks, const uint8_t *seeds);
int qv_mldsa_sign_batch(int alg, size_t n, uint8_t *sigs, const uint8_t *sks,
                        const uint8_t *msgs, size_t msg_len, const uint8_t *ctx, size_t ctx_len,
                        int deterministic);
int qv_mldsa_verify_batch(int alg, size_t n, uint8_t *ok, const uint8_t *pks,
                          const uint8_t *msgs, size_t msg_len, const uint8_t *sigs,
                          const uint8_t *ctx, size_t ctx_len);

/* Code paths, chosen from CPUID: portable C; AVX2 (NTT, pointwise products, SampleInBall,
 * four-way Keccak); AVX2 with the four-way Keccak on AVX-512VL. */
#define QV_MLDSA_PATH_PORTABLE 0
#define QV_MLDSA_PATH_AVX2 1
#define QV_MLDSA_PATH_AVX512 2

/* The path serving ML-DSA now: "portable", "avx2" or "avx2+avx512". */
const char *qv_mldsa_code_path(void);
/* Tests and benchmarks: use no path above max_path (a QV_MLDSA_PATH_* value), or the best
 * the CPU has with -1. Every path gives identical results. */
void qv_mldsa_set_path_limit(int max_path);

#endif
