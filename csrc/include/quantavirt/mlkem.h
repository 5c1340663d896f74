/* ML-KEM (FIPS 203): ML-KEM-512, ML-KEM-768 and ML-KEM-1024, software backend.
 *
 * `level` selects the parameter set: 512, 768 or 1024 (anything else: PQC_ERR_ALGORITHM).
 * Keys, ciphertexts and shared secrets use the FIPS 203 byte encodings; every buffer comes
 * with its length, and a length other than the exact FIPS 203 size gives PQC_ERR_SIZE.
 * Functions return 0 or a negative code from quantavirt/errors.h. Secret-dependent work is
 * constant time and intermediate secrets are wiped. */
#ifndef QUANTAVIRT_MLKEM_H
#define QUANTAVIRT_MLKEM_H

#include <stddef.h>
#include <stdint.h>

#define QV_MLKEM_SHARED_SECRET_BYTES 32
#define QV_MLKEM_SEED_BYTES 64 /* d || z of ML-KEM.KeyGen_internal */
#define QV_MLKEM_MSG_BYTES 32  /* m of ML-KEM.Encaps_internal */
#define QV_MLKEM512_PUBLIC_KEY_BYTES 800
#define QV_MLKEM512_SECRET_KEY_BYTES 1632
#define QV_MLKEM512_CIPHERTEXT_BYTES 768
#define QV_MLKEM768_PUBLIC_KEY_BYTES 1184
#define QV_MLKEM768_SECRET_KEY_BYTES 2400
#define QV_MLKEM768_CIPHERTEXT_BYTES 1088
#define QV_MLKEM1024_PUBLIC_KEY_BYTES 1568
#define QV_MLKEM1024_SECRET_KEY_BYTES 3168
#define QV_MLKEM1024_CIPHERTEXT_BYTES 1568

/* Sizes of a parameter set; any output pointer may be NULL. */
int qv_mlkem_sizes(int level, size_t *public_key_bytes, size_t *secret_key_bytes,
                   size_t *ciphertext_bytes);

/* ML-KEM.KeyGen with fresh randomness (getrandom(2)). */
int qv_mlkem_keygen(int level, uint8_t *ek, size_t ek_len, uint8_t *dk, size_t dk_len);
/* ML-KEM.KeyGen_internal(d, z) with seed = d || z (64 bytes). */
int qv_mlkem_keygen_seed(int level, const uint8_t *seed, size_t seed_len, uint8_t *ek,
                         size_t ek_len, uint8_t *dk, size_t dk_len);

/* ML-KEM.Encaps: checks ek (size, modulus check: PQC_ERR_KEY), then encapsulates. */
int qv_mlkem_encaps(int level, const uint8_t *ek, size_t ek_len, uint8_t *ct, size_t ct_len,
                    uint8_t *ss, size_t ss_len);
/* ML-KEM.Encaps_internal(ek, m) after the same checks: deterministic, for test vectors. */
int qv_mlkem_encaps_derand(int level, const uint8_t *ek, size_t ek_len, const uint8_t *m,
                           size_t m_len, uint8_t *ct, size_t ct_len, uint8_t *ss, size_t ss_len);
/* ML-KEM.Decaps: checks sizes and the dk hash check H(ek) == h (PQC_ERR_KEY), then
 * decapsulates with implicit rejection (a bad ciphertext gives J(z || c), not an error). */
int qv_mlkem_decaps(int level, const uint8_t *dk, size_t dk_len, const uint8_t *ct,
                    size_t ct_len, uint8_t *ss, size_t ss_len);

/* The input checks alone: 0 or PQC_ERR_SIZE / PQC_ERR_KEY. */
int qv_mlkem_check_public_key(int level, const uint8_t *ek, size_t ek_len);
int qv_mlkem_check_secret_key(int level, const uint8_t *dk, size_t dk_len);

/* Batches of n operations on packed arrays (item i at offset i * size). On the first failing
 * item the call stops, stores its index in *bad_index (may be NULL) and returns its code. */
int qv_mlkem_keygen_batch(int level, size_t n, uint8_t *eks, uint8_t *dks);
int qv_mlkem_encaps_batch(int level, size_t n, const uint8_t *eks, uint8_t *cts, uint8_t *sss,
                          size_t *bad_index);
int qv_mlkem_decaps_batch(int level, size_t n, const uint8_t *dks, const uint8_t *cts,
                          uint8_t *sss, size_t *bad_index);

/* Which code path serves ML-KEM on this CPU: "portable", "avx2" (AVX2 NTT and 4-lane Keccak)
 * or "avx512vl" (the same with the AVX-512VL 4-lane Keccak). */
const char *qv_mlkem_code_path(void);
/* For tests and benchmarks comparing paths (process-wide, not for concurrent use): "auto"
 * (the CPUID choice, the default), or one of the names above as the highest path allowed;
 * QV_ERR_NOTSUP when this CPU cannot run that path (the choice then stays "auto"). */
int qv_mlkem_select_code_path(const char *path);

#endif
