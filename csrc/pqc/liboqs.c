/* The liboqs backend: liboqs' shared library loaded with dlopen at run time (never a link-time
 * dependency), ML-KEM / ML-DSA through OQS_KEM_new / OQS_SIG_new by name. Only liboqs' stable
 * exported functions are called; of its structs only the common prefix is read (two name
 * pointers, the level and flag bytes, then the size_t lengths at offset 24 in every release),
 * and the lengths must equal FIPS 203 / 204 sizes or the algorithm is refused. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pqc/pqc_backend_internal.h"
#include "quantavirt/errors.h"

typedef int (*oqs_init_fn)(void);
typedef void *(*oqs_new_fn)(const char *);
typedef void (*oqs_free_fn)(void *);
typedef int (*kem_keypair_fn)(const void *, uint8_t *, uint8_t *);
typedef int (*kem_keypair_derand_fn)(const void *, uint8_t *, uint8_t *, const uint8_t *);
typedef int (*kem_encaps_fn)(const void *, uint8_t *, uint8_t *, const uint8_t *);
typedef int (*kem_decaps_fn)(const void *, uint8_t *, const uint8_t *, const uint8_t *);
typedef int (*sig_keypair_fn)(const void *, uint8_t *, uint8_t *);
typedef int (*sig_sign_fn)(const void *, uint8_t *, size_t *, const uint8_t *, size_t,
                           const uint8_t *);
typedef int (*sig_sign_ctx_fn)(const void *, uint8_t *, size_t *, const uint8_t *, size_t,
                               const uint8_t *, size_t, const uint8_t *);
typedef int (*sig_verify_fn)(const void *, const uint8_t *, size_t, const uint8_t *, size_t,
                             const uint8_t *);
typedef int (*sig_verify_ctx_fn)(const void *, const uint8_t *, size_t, const uint8_t *, size_t,
                                 const uint8_t *, size_t, const uint8_t *);

static struct {
    void *handle;
    char where[512];
    oqs_new_fn kem_new, sig_new;
    oqs_free_fn kem_free, sig_free;
    kem_keypair_fn kem_keypair;
    kem_keypair_derand_fn kem_keypair_derand; /* newer releases only */
    kem_encaps_fn kem_encaps;
    kem_decaps_fn kem_decaps;
    sig_keypair_fn sig_keypair;
    sig_sign_fn sig_sign;
    sig_sign_ctx_fn sig_sign_ctx; /* 0.12 and later */
    sig_verify_fn sig_verify;
    sig_verify_ctx_fn sig_verify_ctx;
} oqs;
static pthread_once_t oqs_once = PTHREAD_ONCE_INIT;

/* The common prefix of OQS_KEM and OQS_SIG. */
struct oqs_prefix {
    const char *method_name;
    const char *alg_version;
    uint8_t claimed_nist_level;
    uint8_t flags[7]; /* ind_cca / euf_cma, suf_cma, sig_with_ctx_support, padding */
    size_t length_public_key;
    size_t length_secret_key;
    size_t length_third;  /* ciphertext or signature */
};

static void *try_open(const char *name)
{
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h != NULL)
        snprintf(oqs.where, sizeof(oqs.where), "%s", name);
    return h;
}

static void load_liboqs(void)
{
    char path[512];
    void *h = NULL;
    const char *env = getenv(QV_LIBOQS_ENV);
    if (env != NULL && env[0] != '\0') {
        h = try_open(env);
    } else {
        /* Where liboqs-python installs it, then the dynamic linker's search path. */
        const char *root = getenv("OQS_INSTALL_PATH");
        const char *home = getenv("HOME");
        if (root != NULL && root[0] != '\0') {
            snprintf(path, sizeof(path), "%s/lib/liboqs.so", root);
            h = try_open(path);
        } else if (home != NULL && home[0] != '\0') {
            snprintf(path, sizeof(path), "%s/_oqs/lib/liboqs.so", home);
            h = try_open(path);
        }
        static const char *const names[] = {"liboqs.so",   "liboqs.so.9", "liboqs.so.8",
                                            "liboqs.so.7", "liboqs.so.6", "liboqs.so.5"};
        for (size_t i = 0; h == NULL && i < sizeof(names) / sizeof(names[0]); i++)
            h = try_open(names[i]);
    }
    if (h == NULL)
        return;
    /* dlsym returns void *; POSIX guarantees the conversion to a function pointer works. */
#define SYM(field, type, name) oqs.field = (type)dlsym(h, name)
    SYM(kem_new, oqs_new_fn, "OQS_KEM_new");
    SYM(kem_free, oqs_free_fn, "OQS_KEM_free");
    SYM(kem_keypair, kem_keypair_fn, "OQS_KEM_keypair");
    SYM(kem_keypair_derand, kem_keypair_derand_fn, "OQS_KEM_keypair_derand");
    SYM(kem_encaps, kem_encaps_fn, "OQS_KEM_encaps");
    SYM(kem_decaps, kem_decaps_fn, "OQS_KEM_decaps");
    SYM(sig_new, oqs_new_fn, "OQS_SIG_new");
    SYM(sig_free, oqs_free_fn, "OQS_SIG_free");
    SYM(sig_keypair, sig_keypair_fn, "OQS_SIG_keypair");
    SYM(sig_sign, sig_sign_fn, "OQS_SIG_sign");
    SYM(sig_sign_ctx, sig_sign_ctx_fn, "OQS_SIG_sign_with_ctx_str");
    SYM(sig_verify, sig_verify_fn, "OQS_SIG_verify");
    SYM(sig_verify_ctx, sig_verify_ctx_fn, "OQS_SIG_verify_with_ctx_str");
    oqs_init_fn init = (oqs_init_fn)dlsym(h, "OQS_init");
#undef SYM
    if (oqs.kem_new == NULL || oqs.kem_free == NULL || oqs.kem_keypair == NULL ||
        oqs.kem_encaps == NULL || oqs.kem_decaps == NULL || oqs.sig_new == NULL ||
        oqs.sig_free == NULL || oqs.sig_keypair == NULL || oqs.sig_sign == NULL ||
        oqs.sig_verify == NULL) {
        dlclose(h);
        memset(&oqs, 0, sizeof(oqs));
        return;
    }
    if (init != NULL)
        init();
    oqs.handle = h;
}

int qv_liboqs_available(const char **where)
{
    pthread_once(&oqs_once, load_liboqs);
    if (where != NULL)
        *where = oqs.handle != NULL ? oqs.where : "";
    return oqs.handle != NULL ? 0 : PQC_ERR_BACKEND;
}

int qv_liboqs_attach(qv_pqc_backend *b)
{
    (void)b;
    return qv_liboqs_available(NULL);
}

void qv_liboqs_detach(qv_pqc_backend *b)
{
    for (int i = 0; i < 3; i++) {
        if (b->oqs_kem[i] != NULL)
            oqs.kem_free(b->oqs_kem[i]);
        if (b->oqs_sig[i] != NULL)
            oqs.sig_free(b->oqs_sig[i]);
        b->oqs_kem[i] = b->oqs_sig[i] = NULL;
    }
}

/* The liboqs object for an algorithm, made on first use and checked against FIPS sizes. */
static void *object_for(qv_pqc_backend *b, int alg)
{
    int i = qv_pqc_alg_index(alg);
    int kem = qv_pqc_is_kem(alg);
    void **slot = kem ? &b->oqs_kem[i] : &b->oqs_sig[i];
    if (*slot != NULL)
        return *slot;
    void *obj = (kem ? oqs.kem_new : oqs.sig_new)(qv_pqc_algorithm_name(alg));
    if (obj == NULL)
        return NULL;
    struct oqs_prefix p;
    memcpy(&p, obj, sizeof(p));
    size_t pk, sk, third;
    qv_pqc_sizes(alg, &pk, &sk, &third);
    if (p.length_public_key != pk || p.length_secret_key != sk || p.length_third != third) {
        (kem ? oqs.kem_free : oqs.sig_free)(obj);
        return NULL;
    }
    /* Two threads may race here; the loser frees its own object. */
    void *expected = NULL;
    if (!__atomic_compare_exchange_n(slot, &expected, obj, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        (kem ? oqs.kem_free : oqs.sig_free)(obj);
        return expected;
    }
    return obj;
}

int qv_liboqs_keygen(qv_pqc_backend *b, int alg, const uint8_t *seed, size_t seed_len,
                     uint8_t *pk, size_t pk_len, uint8_t *sk, size_t sk_len)
{
    (void)seed_len;
    (void)pk_len;
    (void)sk_len;
    void *obj = object_for(b, alg);
    if (obj == NULL)
        return PQC_ERR_BACKEND;
    int st;
    if (qv_pqc_is_kem(alg)) {
        if (seed != NULL && oqs.kem_keypair_derand == NULL)
            return QV_ERR_NOTSUP;
        st = seed != NULL ? oqs.kem_keypair_derand(obj, pk, sk, seed)
                          : oqs.kem_keypair(obj, pk, sk);
    } else {
        if (seed != NULL)
            return QV_ERR_NOTSUP; /* liboqs has no ML-DSA keygen from xi */
        st = oqs.sig_keypair(obj, pk, sk);
    }
    return st == 0 ? 0 : PQC_ERR_INTERNAL;
}

int qv_liboqs_encaps(qv_pqc_backend *b, int alg, const uint8_t *pk, uint8_t *ct, uint8_t *ss)
{
    void *obj = object_for(b, alg);
    if (obj == NULL)
        return PQC_ERR_BACKEND;
    return oqs.kem_encaps(obj, ct, ss, pk) == 0 ? 0 : PQC_ERR_INTERNAL;
}

int qv_liboqs_decaps(qv_pqc_backend *b, int alg, const uint8_t *sk, const uint8_t *ct,
                     uint8_t *ss)
{
    void *obj = object_for(b, alg);
    if (obj == NULL)
        return PQC_ERR_BACKEND;
    return oqs.kem_decaps(obj, ss, ct, sk) == 0 ? 0 : PQC_ERR_INTERNAL;
}

int qv_liboqs_sign(qv_pqc_backend *b, int alg, const uint8_t *sk, const uint8_t *msg,
                   size_t msg_len, const uint8_t *ctx, size_t ctx_len, int deterministic,
                   uint8_t *sig, size_t sig_len)
{
    if (deterministic)
        return QV_ERR_NOTSUP; /* liboqs always signs hedged */
    void *obj = object_for(b, alg);
    if (obj == NULL)
        return PQC_ERR_BACKEND;
    size_t written = sig_len;
    int st;
    if (ctx_len > 0) {
        if (oqs.sig_sign_ctx == NULL)
            return QV_ERR_NOTSUP;
        st = oqs.sig_sign_ctx(obj, sig, &written, msg, msg_len, ctx, ctx_len, sk);
    } else {
        st = oqs.sig_sign(obj, sig, &written, msg, msg_len, sk);
    }
    if (st != 0)
        return PQC_ERR_INTERNAL;
    return written == sig_len ? 0 : PQC_ERR_INTERNAL;
}

int qv_liboqs_verify(qv_pqc_backend *b, int alg, const uint8_t *pk, const uint8_t *msg,
                     size_t msg_len, const uint8_t *sig, size_t sig_len, const uint8_t *ctx,
                     size_t ctx_len)
{
    void *obj = object_for(b, alg);
    if (obj == NULL)
        return PQC_ERR_BACKEND;
    int st;
    if (ctx_len > 0) {
        if (oqs.sig_verify_ctx == NULL)
            return QV_ERR_NOTSUP;
        st = oqs.sig_verify_ctx(obj, msg, msg_len, sig, sig_len, ctx, ctx_len, pk);
    } else {
        st = oqs.sig_verify(obj, msg, msg_len, sig, sig_len, pk);
    }
    return st == 0 ? 0 : PQC_ERR_VERIFY;
}
