/* HKDF (RFC 5869) over SHA3-256, computed by OpenSSL libcrypto's EVP_KDF "HKDF" (extract then
 * expand). The one HKDF of the core: the encrypted disk derives its keys through it too. */
#ifndef QUANTAVIRT_HKDF_H
#define QUANTAVIRT_HKDF_H

#include <stddef.h>
#include <stdint.h>

#define QV_HKDF_SHA3_256_HASH_BYTES 32
/* RFC 5869: L <= 255 * HashLen. */
#define QV_HKDF_SHA3_256_MAX_LENGTH (255 * QV_HKDF_SHA3_256_HASH_BYTES)

/* out[0..out_len) = HKDF-Expand(HKDF-Extract(salt, ikm), info, out_len). salt and info may be
 * empty (NULL with length 0); an empty salt means HashLen zero bytes (RFC 5869 2.2).
 * Returns 0, QV_ERR_INVAL (NULL with a nonzero length, or out NULL), PQC_ERR_SIZE (out_len 0
 * or above QV_HKDF_SHA3_256_MAX_LENGTH) or PQC_ERR_INTERNAL (libcrypto failed). out is
 * wiped on failure. */
int qv_hkdf_sha3_256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                     const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

#endif
