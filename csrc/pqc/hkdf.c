/* HKDF over SHA3-256 (RFC 5869) through OpenSSL libcrypto's EVP_KDF "HKDF": the project
 * never implements HMAC or HKDF itself. The key derivation of the encrypted disk and of the
 * Python API (quantavirt.pqc.hkdf_sha3_256) both come here. */
#include "quantavirt/hkdf.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "core/wipe.h"
#include "quantavirt/errors.h"

int qv_hkdf_sha3_256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                     const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    if (out == NULL || (ikm == NULL && ikm_len != 0) || (salt == NULL && salt_len != 0) ||
        (info == NULL && info_len != 0))
        return QV_ERR_INVAL;
    if (out_len == 0 || out_len > QV_HKDF_SHA3_256_MAX_LENGTH)
        return PQC_ERR_SIZE;
    /* OSSL_PARAM octet strings want a pointer even when empty; "" gives every empty input
     * one (OpenSSL treats a zero-length salt as HashLen zeros, as RFC 5869 does). */
    static const uint8_t empty[1];
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    int ok = 0;
    if (kctx != NULL) {
        OSSL_PARAM params[5];
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA3-256", 0);
        params[1] = OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_KEY, (void *)(ikm_len ? ikm : empty), ikm_len);
        params[2] = OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_SALT, (void *)(salt_len ? salt : empty), salt_len);
        params[3] = OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_INFO, (void *)(info_len ? info : empty), info_len);
        params[4] = OSSL_PARAM_construct_end();
        ok = EVP_KDF_derive(kctx, out, out_len, params) == 1;
    }
    EVP_KDF_CTX_free(kctx); /* clears the copies of the key it holds */
    EVP_KDF_free(kdf);
    if (!ok) {
        qv_wipe(out, out_len);
        return PQC_ERR_INTERNAL;
    }
    return 0;
}
