/* A stand-in for liboqs' shared library, for testing the liboqs backend's dlopen path where no
 * real liboqs exists (no registry here ships it). It exports the liboqs entry points the
 * backend looks up, with liboqs' struct prefixes, and computes with the core's own ML-KEM /
 * ML-DSA. FAKE_OQS_BAD_SIZES=1 makes it report wrong key lengths. Test-only; never shipped. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quantavirt/mldsa.h"
#include "quantavirt/mlkem.h"

typedef struct {
    const char *method_name;
    const char *alg_version;
    uint8_t claimed_nist_level;
    bool ind_cca;
    size_t length_public_key;
    size_t length_secret_key;
    size_t length_ciphertext;
    size_t length_shared_secret;
    int level;
} OQS_KEM;

typedef struct {
    const char *method_name;
    const char *alg_version;
    uint8_t claimed_nist_level;
    bool euf_cma;
    bool suf_cma;
    bool sig_with_ctx_support;
    size_t length_public_key;
    size_t length_secret_key;
    size_t length_signature;
    int param;
} OQS_SIG;

static int initialised;

void OQS_init(void)
{
    initialised = 1;
}

OQS_KEM *OQS_KEM_new(const char *name)
{
    int level = strcmp(name, "ML-KEM-512") == 0    ? 512
                : strcmp(name, "ML-KEM-768") == 0  ? 768
                : strcmp(name, "ML-KEM-1024") == 0 ? 1024
                                                   : 0;
    if (level == 0 || !initialised)
        return NULL;
    OQS_KEM *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    k->method_name = name;
    k->alg_version = "fake";
    k->ind_cca = true;
    qv_mlkem_sizes(level, &k->length_public_key, &k->length_secret_key, &k->length_ciphertext);
    if (getenv("FAKE_OQS_BAD_SIZES") != NULL)
        k->length_secret_key -= 32;
    k->length_shared_secret = 32;
    k->level = level;
    return k;
}

void OQS_KEM_free(OQS_KEM *k)
{
    free(k);
}

int OQS_KEM_keypair(const OQS_KEM *k, uint8_t *pk, uint8_t *sk)
{
    return qv_mlkem_keygen(k->level, pk, k->length_public_key, sk, k->length_secret_key) ? -1 : 0;
}

int OQS_KEM_keypair_derand(const OQS_KEM *k, uint8_t *pk, uint8_t *sk, const uint8_t *seed)
{
    return qv_mlkem_keygen_seed(k->level, seed, 64, pk, k->length_public_key, sk,
                                k->length_secret_key) ? -1 : 0;
}

int OQS_KEM_encaps(const OQS_KEM *k, uint8_t *ct, uint8_t *ss, const uint8_t *pk)
{
    return qv_mlkem_encaps(k->level, pk, k->length_public_key, ct, k->length_ciphertext, ss,
                           32) ? -1 : 0;
}

int OQS_KEM_decaps(const OQS_KEM *k, uint8_t *ss, const uint8_t *ct, const uint8_t *sk)
{
    return qv_mlkem_decaps(k->level, sk, k->length_secret_key, ct, k->length_ciphertext, ss,
                           32) ? -1 : 0;
}

OQS_SIG *OQS_SIG_new(const char *name)
{
    int param = strcmp(name, "ML-DSA-44") == 0   ? 44
                : strcmp(name, "ML-DSA-65") == 0 ? 65
                : strcmp(name, "ML-DSA-87") == 0 ? 87
                                                 : 0;
    if (param == 0 || !initialised)
        return NULL;
    OQS_SIG *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->method_name = name;
    s->alg_version = "fake";
    s->euf_cma = s->sig_with_ctx_support = true;
    qv_mldsa_sizes(param, &s->length_public_key, &s->length_secret_key, &s->length_signature);
    s->param = param;
    return s;
}

void OQS_SIG_free(OQS_SIG *s)
{
    free(s);
}

int OQS_SIG_keypair(const OQS_SIG *s, uint8_t *pk, uint8_t *sk)
{
    return qv_mldsa_keygen(s->param, pk, sk) ? -1 : 0;
}

int OQS_SIG_sign_with_ctx_str(const OQS_SIG *s, uint8_t *sig, size_t *sig_len,
                              const uint8_t *msg, size_t msg_len, const uint8_t *ctx,
                              size_t ctx_len, const uint8_t *sk)
{
    if (qv_mldsa_sign(s->param, sig, sk, msg, msg_len, ctx, ctx_len, 0) != 0)
        return -1;
    *sig_len = s->length_signature;
    return 0;
}

int OQS_SIG_sign(const OQS_SIG *s, uint8_t *sig, size_t *sig_len, const uint8_t *msg,
                 size_t msg_len, const uint8_t *sk)
{
    return OQS_SIG_sign_with_ctx_str(s, sig, sig_len, msg, msg_len, (const uint8_t *)"", 0, sk);
}

int OQS_SIG_verify_with_ctx_str(const OQS_SIG *s, const uint8_t *msg, size_t msg_len,
                                const uint8_t *sig, size_t sig_len, const uint8_t *ctx,
                                size_t ctx_len, const uint8_t *pk)
{
    return qv_mldsa_verify(s->param, pk, s->length_public_key, msg, msg_len, sig, sig_len, ctx,
                           ctx_len) ? -1 : 0;
}

int OQS_SIG_verify(const OQS_SIG *s, const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                   size_t sig_len, const uint8_t *pk)
{
    return OQS_SIG_verify_with_ctx_str(s, msg, msg_len, sig, sig_len, (const uint8_t *)"", 0,
                                       pk);
}
