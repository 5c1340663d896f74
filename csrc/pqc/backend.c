/* The PQC backend dispatcher: one interface (quantavirt/pqc_backend.h) over the software,
 * quac100 and liboqs backends. Every argument is checked here once, the same way for every
 * backend, so they give the same error codes; what a card or a foreign library hands back is
 * checked here too, as far as the public data allows (see docs/pqc-backends.md). */
#include <stdlib.h>
#include <string.h>

#include "core/wipe.h"
#include "pqc/pqc_backend_internal.h"
#include "quac100/quac100_ioctl.h"
#include "quantavirt/errors.h"
#include "quantavirt/keccak.h"
#include "quantavirt/mldsa.h"
#include "quantavirt/mlkem.h"

static const struct {
    int id;
    const char *name;
    int param; /* 512/768/1024 or 44/65/87 */
} algorithms[] = {
    {QV_PQC_ML_KEM_512, "ML-KEM-512", 512},  {QV_PQC_ML_KEM_768, "ML-KEM-768", 768},
    {QV_PQC_ML_KEM_1024, "ML-KEM-1024", 1024}, {QV_PQC_ML_DSA_44, "ML-DSA-44", QV_MLDSA_44},
    {QV_PQC_ML_DSA_65, "ML-DSA-65", QV_MLDSA_65}, {QV_PQC_ML_DSA_87, "ML-DSA-87", QV_MLDSA_87},
};
#define N_ALGORITHMS (sizeof(algorithms) / sizeof(algorithms[0]))

int qv_pqc_algorithm_id(const char *name)
{
    if (name == NULL)
        return PQC_ERR_ALGORITHM;
    for (size_t i = 0; i < N_ALGORITHMS; i++)
        if (strcmp(name, algorithms[i].name) == 0)
            return algorithms[i].id;
    return PQC_ERR_ALGORITHM;
}

static int param_of(int alg)
{
    for (size_t i = 0; i < N_ALGORITHMS; i++)
        if (algorithms[i].id == alg)
            return algorithms[i].param;
    return 0;
}

const char *qv_pqc_algorithm_name(int alg)
{
    for (size_t i = 0; i < N_ALGORITHMS; i++)
        if (algorithms[i].id == alg)
            return algorithms[i].name;
    return NULL;
}

int qv_pqc_is_kem(int alg)
{
    return param_of(alg) != 0 && ((alg >> 12) & 0xF) == 0x1;
}

static int is_sig(int alg)
{
    return param_of(alg) != 0 && ((alg >> 12) & 0xF) == 0x2;
}

int qv_pqc_alg_index(int alg)
{
    if (param_of(alg) == 0)
        return -1;
    return alg & 0xF;
}

int qv_pqc_sizes(int alg, size_t *pk, size_t *sk, size_t *ct_or_sig)
{
    if (qv_pqc_is_kem(alg))
        return qv_mlkem_sizes(param_of(alg), pk, sk, ct_or_sig);
    if (is_sig(alg))
        return qv_mldsa_sizes(param_of(alg), pk, sk, ct_or_sig);
    return PQC_ERR_ALGORITHM;
}

/* ---- handles ------------------------------------------------------------------------- */

int qv_pqc_backend_open(const char *name, const char *device, qv_pqc_backend **out)
{
    if (out == NULL || name == NULL)
        return QV_ERR_INVAL;
    *out = NULL;
    qv_pqc_backend *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return QV_ERR_NOMEM;
    b->fd = -1;
    int rc;
    if (strcmp(name, "software") == 0) {
        b->kind = QV_PQC_BACKEND_SOFTWARE;
        rc = 0;
    } else if (strcmp(name, "quac100") == 0) {
        b->kind = QV_PQC_BACKEND_QUAC100;
        rc = qv_quac100_attach(b, device);
    } else if (strcmp(name, "liboqs") == 0) {
        b->kind = QV_PQC_BACKEND_LIBOQS;
        rc = qv_liboqs_attach(b);
    } else if (strcmp(name, "auto") == 0) {
        /* A card that answers GET_VERSION and GET_INFO wins; anything else is software. */
        b->kind = QV_PQC_BACKEND_QUAC100;
        if (qv_quac100_attach(b, device) != 0) {
            qv_quac100_detach(b);
            memset(b, 0, sizeof(*b));
            b->fd = -1;
            b->kind = QV_PQC_BACKEND_SOFTWARE;
        }
        rc = 0;
    } else {
        rc = PQC_ERR_BACKEND;
    }
    if (rc != 0) {
        qv_pqc_backend_close(b);
        return rc;
    }
    *out = b;
    return 0;
}

void qv_pqc_backend_close(qv_pqc_backend *b)
{
    if (b == NULL)
        return;
    if (b->kind == QV_PQC_BACKEND_QUAC100)
        qv_quac100_detach(b);
    else if (b->kind == QV_PQC_BACKEND_LIBOQS)
        qv_liboqs_detach(b);
    free(b);
}

int qv_pqc_backend_kind(const qv_pqc_backend *b)
{
    return b == NULL ? QV_ERR_INVAL : b->kind;
}

const char *qv_pqc_backend_name(const qv_pqc_backend *b)
{
    if (b == NULL)
        return "none";
    switch (b->kind) {
    case QV_PQC_BACKEND_QUAC100:
        return "quac100";
    case QV_PQC_BACKEND_LIBOQS:
        return "liboqs";
    default:
        return "software";
    }
}

const char *qv_pqc_backend_device(const qv_pqc_backend *b)
{
    if (b == NULL || b->kind != QV_PQC_BACKEND_QUAC100)
        return "";
    return b->info.path;
}

int qv_pqc_backend_last_result(const qv_pqc_backend *b)
{
    return b == NULL ? 0 : b->last_result;
}

/* ---- checks of what a card or a library returned ----------------------------------- */

/* ML-KEM dk = dk_pke (384k) || ek || H(ek) || z. The ek inside dk must be the returned ek,
 * both must pass the FIPS 203 input checks, and with a seed d || z: z is the last 32 bytes
 * and ek ends with rho = G(d || k)[0:32]. */
static int check_kem_keypair(int level, const uint8_t *seed, const uint8_t *pk, size_t pk_len,
                             const uint8_t *sk, size_t sk_len)
{
    size_t k = (size_t)level / 256;
    if (qv_mlkem_check_public_key(level, pk, pk_len) != 0 ||
        qv_mlkem_check_secret_key(level, sk, sk_len) != 0 ||
        memcmp(sk + 384 * k, pk, pk_len) != 0)
        return QUAC100_ERR_REPLY;
    if (seed != NULL) {
        uint8_t in[33], g[64];
        memcpy(in, seed, 32);
        in[32] = (uint8_t)k;
        qv_sha3_512(g, in, sizeof(in));
        int bad = memcmp(pk + pk_len - 32, g, 32) != 0 || memcmp(sk + sk_len - 32, seed + 32, 32) != 0;
        qv_wipe(in, sizeof(in));
        qv_wipe(g, sizeof(g));
        if (bad)
            return QUAC100_ERR_REPLY;
    }
    return 0;
}

/* ML-DSA pk = rho || t1, sk = rho || K || tr || ...: rho agrees, tr = H(pk, 64), and with a
 * seed xi: H(xi || k || l, 128) = rho || rho' || K. */
static int check_sig_keypair(int alg, const uint8_t *seed, const uint8_t *pk, size_t pk_len,
                             const uint8_t *sk)
{
    uint8_t tr[64];
    qv_shake256(tr, sizeof(tr), pk, pk_len);
    int bad = memcmp(pk, sk, 32) != 0 || memcmp(tr, sk + 64, 64) != 0;
    if (!bad && seed != NULL) {
        static const uint8_t kl[3][2] = {{4, 4}, {6, 5}, {8, 7}};
        int i = qv_pqc_alg_index(alg);
        uint8_t in[34], h[128];
        memcpy(in, seed, 32);
        in[32] = kl[i][0];
        in[33] = kl[i][1];
        qv_shake256(h, sizeof(h), in, sizeof(in));
        bad = memcmp(h, pk, 32) != 0 || memcmp(h + 96, sk + 32, 32) != 0;
        qv_wipe(in, sizeof(in));
        qv_wipe(h, sizeof(h));
    }
    return bad ? QUAC100_ERR_REPLY : 0;
}

/* ---- single operations -------------------------------------------------------------- */

/* What every operation checks first: a usable handle and an algorithm of the right family
 * (KEM or signature); then the FIPS sizes of its public key, secret key and ciphertext or
 * signature (any of the three pointers may be NULL). */
static int op_args(qv_pqc_backend *b, int alg, int kem, size_t *pkb, size_t *skb, size_t *xb)
{
    if (b == NULL)
        return QV_ERR_INVAL;
    if (b->kind == QV_PQC_BACKEND_QUAC100 && b->gone)
        return QUAC100_ERR_GONE;
    if (kem ? !qv_pqc_is_kem(alg) : !is_sig(alg))
        return PQC_ERR_ALGORITHM;
    qv_pqc_sizes(alg, pkb, skb, xb);
    return 0;
}

/* Optional byte strings (message, context) reach the backends as a valid pointer. */
static const uint8_t *or_empty(const uint8_t *p)
{
    static const uint8_t empty[1] = {0};
    return p != NULL ? p : empty;
}

/* ML-KEM and ML-DSA key generation: the same checks and the same reply checks. */
static int keygen(qv_pqc_backend *b, int alg, int kem, const uint8_t *seed, size_t seed_len,
                  uint8_t *pk, size_t pk_len, uint8_t *sk, size_t sk_len)
{
    size_t pkb, skb;
    int rc = op_args(b, alg, kem, &pkb, &skb, NULL);
    if (rc != 0)
        return rc;
    if (pk == NULL || sk == NULL || pk_len != pkb || sk_len != skb)
        return PQC_ERR_SIZE;
    if (seed != NULL && seed_len != (kem ? QV_MLKEM_SEED_BYTES : QV_MLDSA_SEED_BYTES))
        return PQC_ERR_SEED;
    const int level = param_of(alg);
    switch (b->kind) {
    case QV_PQC_BACKEND_SOFTWARE:
        if (kem)
            return seed ? qv_mlkem_keygen_seed(level, seed, seed_len, pk, pk_len, sk, sk_len)
                        : qv_mlkem_keygen(level, pk, pk_len, sk, sk_len);
        return seed ? qv_mldsa_keygen_seed(level, pk, sk, seed) : qv_mldsa_keygen(level, pk, sk);
    case QV_PQC_BACKEND_QUAC100:
        rc = qv_quac100_keygen(b, alg, seed, seed_len, pk, pk_len, sk, sk_len);
        break;
    default:
        rc = qv_liboqs_keygen(b, alg, seed, seed_len, pk, pk_len, sk, sk_len);
        break;
    }
    if (rc == 0)
        rc = kem ? check_kem_keypair(level, seed, pk, pk_len, sk, sk_len)
                 : check_sig_keypair(alg, seed, pk, pk_len, sk);
    if (rc != 0) {
        qv_wipe(pk, pk_len);
        qv_wipe(sk, sk_len);
    }
    return rc;
}

int qv_pqc_kem_keygen(qv_pqc_backend *b, int alg, const uint8_t *seed, size_t seed_len,
                      uint8_t *pk, size_t pk_len, uint8_t *sk, size_t sk_len)
{
    return keygen(b, alg, 1, seed, seed_len, pk, pk_len, sk, sk_len);
}

int qv_pqc_kem_encaps(qv_pqc_backend *b, int alg, const uint8_t *pk, size_t pk_len,
                      uint8_t *ct, size_t ct_len, uint8_t *ss, size_t ss_len)
{
    size_t pkb, ctb;
    int rc = op_args(b, alg, 1, &pkb, NULL, &ctb);
    if (rc != 0)
        return rc;
    if (pk == NULL || ct == NULL || ss == NULL || pk_len != pkb || ct_len != ctb ||
        ss_len != QV_MLKEM_SHARED_SECRET_BYTES)
        return PQC_ERR_SIZE;
    int level = param_of(alg);
    if (b->kind == QV_PQC_BACKEND_SOFTWARE)
        return qv_mlkem_encaps(level, pk, pk_len, ct, ct_len, ss, ss_len);
    /* The modulus check runs here, so every backend rejects the same keys the same way. */
    rc = qv_mlkem_check_public_key(level, pk, pk_len);
    if (rc != 0)
        return rc;
    if (b->kind == QV_PQC_BACKEND_QUAC100)
        rc = qv_quac100_encaps(b, alg, pk, pk_len, ct, ct_len, ss, ss_len);
    else
        rc = qv_liboqs_encaps(b, alg, pk, ct, ss);
    if (rc != 0) {
        qv_wipe(ct, ct_len);
        qv_wipe(ss, ss_len);
    }
    return rc;
}

int qv_pqc_kem_decaps(qv_pqc_backend *b, int alg, const uint8_t *sk, size_t sk_len,
                      const uint8_t *ct, size_t ct_len, uint8_t *ss, size_t ss_len)
{
    size_t skb, ctb;
    int rc = op_args(b, alg, 1, NULL, &skb, &ctb);
    if (rc != 0)
        return rc;
    if (sk == NULL || ct == NULL || ss == NULL || sk_len != skb || ct_len != ctb ||
        ss_len != QV_MLKEM_SHARED_SECRET_BYTES)
        return PQC_ERR_SIZE;
    int level = param_of(alg);
    if (b->kind == QV_PQC_BACKEND_SOFTWARE)
        return qv_mlkem_decaps(level, sk, sk_len, ct, ct_len, ss, ss_len);
    rc = qv_mlkem_check_secret_key(level, sk, sk_len);
    if (rc != 0)
        return rc;
    if (b->kind == QV_PQC_BACKEND_QUAC100)
        rc = qv_quac100_decaps(b, alg, sk, sk_len, ct, ct_len, ss, ss_len);
    else
        rc = qv_liboqs_decaps(b, alg, sk, ct, ss);
    if (rc != 0)
        qv_wipe(ss, ss_len);
    return rc;
}

int qv_pqc_sig_keygen(qv_pqc_backend *b, int alg, const uint8_t *seed, size_t seed_len,
                      uint8_t *pk, size_t pk_len, uint8_t *sk, size_t sk_len)
{
    return keygen(b, alg, 0, seed, seed_len, pk, pk_len, sk, sk_len);
}

int qv_pqc_sig_sign(qv_pqc_backend *b, int alg, const uint8_t *sk, size_t sk_len,
                    const uint8_t *msg, size_t msg_len, const uint8_t *ctx, size_t ctx_len,
                    int deterministic, uint8_t *sig, size_t sig_len)
{
    size_t skb, sigb;
    int rc = op_args(b, alg, 0, NULL, &skb, &sigb);
    if (rc != 0)
        return rc;
    if (sk == NULL || sig == NULL || sk_len != skb || sig_len != sigb ||
        (msg == NULL && msg_len != 0) || (ctx == NULL && ctx_len != 0))
        return PQC_ERR_SIZE;
    if (ctx_len > QV_MLDSA_MAX_CONTEXT)
        return PQC_ERR_CONTEXT;
    msg = or_empty(msg);
    ctx = or_empty(ctx);
    switch (b->kind) {
    case QV_PQC_BACKEND_SOFTWARE:
        return qv_mldsa_sign(param_of(alg), sig, sk, msg, msg_len, ctx, ctx_len, deterministic);
    case QV_PQC_BACKEND_QUAC100:
        rc = qv_quac100_sign(b, alg, sk, sk_len, msg, msg_len, ctx, ctx_len, deterministic, sig,
                             sig_len);
        break;
    default:
        rc = qv_liboqs_sign(b, alg, sk, msg, msg_len, ctx, ctx_len, deterministic, sig, sig_len);
        break;
    }
    if (rc != 0)
        qv_wipe(sig, sig_len);
    return rc;
}

int qv_pqc_sig_verify(qv_pqc_backend *b, int alg, const uint8_t *pk, size_t pk_len,
                      const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len,
                      const uint8_t *ctx, size_t ctx_len)
{
    size_t pkb, sigb;
    int rc = op_args(b, alg, 0, &pkb, NULL, &sigb);
    if (rc != 0)
        return rc;
    if (pk == NULL || pk_len != pkb || (msg == NULL && msg_len != 0) ||
        (ctx == NULL && ctx_len != 0) || (sig == NULL && sig_len != 0))
        return PQC_ERR_SIZE;
    if (ctx_len > QV_MLDSA_MAX_CONTEXT)
        return PQC_ERR_CONTEXT;
    msg = or_empty(msg);
    ctx = or_empty(ctx);
    sig = or_empty(sig);
    if (b->kind == QV_PQC_BACKEND_SOFTWARE)
        return qv_mldsa_verify(param_of(alg), pk, pk_len, msg, msg_len, sig, sig_len, ctx,
                               ctx_len);
    if (sig_len != sigb)
        return PQC_ERR_VERIFY; /* as the software backend says: no card or library call */
    if (b->kind == QV_PQC_BACKEND_QUAC100)
        return qv_quac100_verify(b, alg, pk, pk_len, msg, msg_len, sig, sig_len, ctx, ctx_len);
    return qv_liboqs_verify(b, alg, pk, msg, msg_len, sig, sig_len, ctx, ctx_len);
}

/* ---- batches ------------------------------------------------------------------------ */

static int batch_args(qv_pqc_backend *b, int alg, int kem, size_t n, size_t *pkb, size_t *skb,
                      size_t *xb)
{
    int rc = op_args(b, alg, kem, pkb, skb, xb);
    if (rc != 0)
        return rc;
    /* n * size must not overflow when the loop computes offsets */
    if (n > SIZE_MAX / 8192)
        return PQC_ERR_SIZE;
    return 0;
}

static void set_bad(size_t *bad_index, size_t i)
{
    if (bad_index != NULL)
        *bad_index = i;
}

/* The packed arrays of one batch call, for the backends without a batch path of their own:
 * they run the single operation on item i (one function per operation below). */
typedef struct batch {
    qv_pqc_backend *b;
    int alg, deterministic;
    size_t pkb, skb, xb; /* item sizes: public key, secret key, ciphertext or signature */
    uint8_t *pk_out, *sk_out, *x_out, *ss_out, *ok;
    const uint8_t *pk_in, *sk_in, *x_in, *seeds, *msgs, *ctx;
    size_t msg_len, ctx_len;
} batch;

typedef int (*batch_item)(const batch *a, size_t i);

/* Nothing of a failed batch is handed out: every output row is wiped (secret keys, shared
 * secrets), not only the failing one. */
static void wipe_outputs(const batch *a, size_t n)
{
    if (a->pk_out != NULL)
        qv_wipe(a->pk_out, n * a->pkb);
    if (a->sk_out != NULL)
        qv_wipe(a->sk_out, n * a->skb);
    if (a->x_out != NULL)
        qv_wipe(a->x_out, n * a->xb);
    if (a->ss_out != NULL)
        qv_wipe(a->ss_out, n * QV_MLKEM_SHARED_SECRET_BYTES);
}

static int each_item(const batch *a, size_t n, batch_item op, size_t *bad_index)
{
    for (size_t i = 0; i < n; i++) {
        int rc = op(a, i);
        if (rc != 0) {
            set_bad(bad_index, i);
            wipe_outputs(a, n);
            return rc;
        }
    }
    return 0;
}

static const uint8_t *msg_of(const batch *a, size_t i)
{
    return a->msgs != NULL ? a->msgs + i * a->msg_len : NULL;
}

static int kem_keygen_item(const batch *a, size_t i)
{
    return qv_pqc_kem_keygen(a->b, a->alg, NULL, 0, a->pk_out + i * a->pkb, a->pkb,
                             a->sk_out + i * a->skb, a->skb);
}

static int kem_encaps_item(const batch *a, size_t i)
{
    return qv_pqc_kem_encaps(a->b, a->alg, a->pk_in + i * a->pkb, a->pkb, a->x_out + i * a->xb,
                             a->xb, a->ss_out + i * 32, 32);
}

static int kem_decaps_item(const batch *a, size_t i)
{
    return qv_pqc_kem_decaps(a->b, a->alg, a->sk_in + i * a->skb, a->skb, a->x_in + i * a->xb,
                             a->xb, a->ss_out + i * 32, 32);
}

static int sig_keygen_item(const batch *a, size_t i)
{
    const uint8_t *seed = a->seeds != NULL ? a->seeds + i * QV_MLDSA_SEED_BYTES : NULL;
    return qv_pqc_sig_keygen(a->b, a->alg, seed, seed ? QV_MLDSA_SEED_BYTES : 0,
                             a->pk_out + i * a->pkb, a->pkb, a->sk_out + i * a->skb, a->skb);
}

static int sig_sign_item(const batch *a, size_t i)
{
    return qv_pqc_sig_sign(a->b, a->alg, a->sk_in + i * a->skb, a->skb, msg_of(a, i),
                           a->msg_len, a->ctx, a->ctx_len, a->deterministic,
                           a->x_out + i * a->xb, a->xb);
}

static int sig_verify_item(const batch *a, size_t i)
{
    int rc = qv_pqc_sig_verify(a->b, a->alg, a->pk_in + i * a->pkb, a->pkb, msg_of(a, i),
                               a->msg_len, a->x_in + i * a->xb, a->xb, a->ctx, a->ctx_len);
    if (rc != 0 && rc != PQC_ERR_VERIFY)
        return rc; /* a card failure is an error, never "invalid" */
    a->ok[i] = rc == 0;
    return 0;
}

/* ML-KEM batches on a QUAC 100 go to the card as BATCH_SUBMIT jobs once every input has
 * passed the FIPS 203 checks; the key pairs it returns are checked like single ones. 1 when the
 * card has no batch path (max_batch_size 0, or the batch ioctls answer "not supported"): the
 * caller then runs the items one by one. */
static int card_kem_batch(const batch *a, unsigned op, size_t n, size_t *bad_index, int *rc)
{
    const int level = param_of(a->alg);
    for (size_t i = 0; i < n; i++) {
        int bad = op == QUAC100_BATCH_OP_KEM_ENCAPS
                      ? qv_mlkem_check_public_key(level, a->pk_in + i * a->pkb, a->pkb)
                  : op == QUAC100_BATCH_OP_KEM_DECAPS
                      ? qv_mlkem_check_secret_key(level, a->sk_in + i * a->skb, a->skb)
                      : 0;
        if (bad != 0) {
            set_bad(bad_index, i);
            *rc = bad;
            return 0;
        }
    }
    const size_t sizes[3] = {op == QUAC100_BATCH_OP_KEM_DECAPS ? a->skb : a->pkb,
                             op == QUAC100_BATCH_OP_KEM_KEYGEN ? a->skb : a->xb,
                             QV_MLKEM_SHARED_SECRET_BYTES};
    int r = op == QUAC100_BATCH_OP_KEM_KEYGEN
                ? qv_quac100_kem_batch(a->b, a->alg, op, n, NULL, NULL, a->pk_out, a->sk_out,
                                       sizes, bad_index)
            : op == QUAC100_BATCH_OP_KEM_ENCAPS
                ? qv_quac100_kem_batch(a->b, a->alg, op, n, a->pk_in, NULL, a->x_out, a->ss_out,
                                       sizes, bad_index)
                : qv_quac100_kem_batch(a->b, a->alg, op, n, a->sk_in, a->x_in, a->ss_out, NULL,
                                       sizes, bad_index);
    if (r == QUAC100_ERR_NOTSUP)
        return 1;
    for (size_t i = 0; r == 0 && op == QUAC100_BATCH_OP_KEM_KEYGEN && i < n; i++) {
        if (check_kem_keypair(level, NULL, a->pk_out + i * a->pkb, a->pkb,
                              a->sk_out + i * a->skb, a->skb) != 0) {
            set_bad(bad_index, i);
            wipe_outputs(a, n);
            r = QUAC100_ERR_REPLY;
        }
    }
    *rc = r;
    return 0;
}

int qv_pqc_kem_keygen_batch(qv_pqc_backend *b, int alg, size_t n, uint8_t *pks, uint8_t *sks,
                            size_t *bad_index)
{
    batch a = {.b = b, .alg = alg, .pk_out = pks, .sk_out = sks};
    int rc = batch_args(b, alg, 1, n, &a.pkb, &a.skb, NULL);
    if (rc != 0)
        return rc;
    if (b->kind == QV_PQC_BACKEND_SOFTWARE) {
        set_bad(bad_index, 0);
        return qv_mlkem_keygen_batch(param_of(alg), n, pks, sks);
    }
    if (b->kind == QV_PQC_BACKEND_QUAC100 &&
        card_kem_batch(&a, QUAC100_BATCH_OP_KEM_KEYGEN, n, bad_index, &rc) == 0)
        return rc;
    return each_item(&a, n, kem_keygen_item, bad_index);
}

int qv_pqc_kem_encaps_batch(qv_pqc_backend *b, int alg, size_t n, const uint8_t *pks,
                            uint8_t *cts, uint8_t *sss, size_t *bad_index)
{
    batch a = {.b = b, .alg = alg, .pk_in = pks, .x_out = cts, .ss_out = sss};
    int rc = batch_args(b, alg, 1, n, &a.pkb, NULL, &a.xb);
    if (rc != 0)
        return rc;
    if (b->kind == QV_PQC_BACKEND_SOFTWARE)
        return qv_mlkem_encaps_batch(param_of(alg), n, pks, cts, sss, bad_index);
    if (b->kind == QV_PQC_BACKEND_QUAC100 &&
        card_kem_batch(&a, QUAC100_BATCH_OP_KEM_ENCAPS, n, bad_index, &rc) == 0)
        return rc;
    return each_item(&a, n, kem_encaps_item, bad_index);
}

int qv_pqc_kem_decaps_batch(qv_pqc_backend *b, int alg, size_t n, const uint8_t *sks,
                            const uint8_t *cts, uint8_t *sss, size_t *bad_index)
{
    batch a = {.b = b, .alg = alg, .sk_in = sks, .x_in = cts, .ss_out = sss};
    int rc = batch_args(b, alg, 1, n, NULL, &a.skb, &a.xb);
    if (rc != 0)
        return rc;
    if (b->kind == QV_PQC_BACKEND_SOFTWARE)
        return qv_mlkem_decaps_batch(param_of(alg), n, sks, cts, sss, bad_index);
    if (b->kind == QV_PQC_BACKEND_QUAC100 &&
        card_kem_batch(&a, QUAC100_BATCH_OP_KEM_DECAPS, n, bad_index, &rc) == 0)
        return rc;
    return each_item(&a, n, kem_decaps_item, bad_index);
}

int qv_pqc_sig_keygen_batch(qv_pqc_backend *b, int alg, size_t n, uint8_t *pks, uint8_t *sks,
                            const uint8_t *seeds, size_t *bad_index)
{
    batch a = {.b = b, .alg = alg, .pk_out = pks, .sk_out = sks, .seeds = seeds};
    int rc = batch_args(b, alg, 0, n, &a.pkb, &a.skb, NULL);
    if (rc != 0)
        return rc;
    if (b->kind == QV_PQC_BACKEND_SOFTWARE) {
        set_bad(bad_index, 0);
        return qv_mldsa_keygen_batch(param_of(alg), n, pks, sks, seeds);
    }
    return each_item(&a, n, sig_keygen_item, bad_index);
}

int qv_pqc_sig_sign_batch(qv_pqc_backend *b, int alg, size_t n, uint8_t *sigs,
                          const uint8_t *sks, const uint8_t *msgs, size_t msg_len,
                          const uint8_t *ctx, size_t ctx_len, int deterministic,
                          size_t *bad_index)
{
    batch a = {.b = b, .alg = alg, .deterministic = deterministic, .x_out = sigs, .sk_in = sks,
               .msgs = msgs, .msg_len = msg_len, .ctx = ctx, .ctx_len = ctx_len};
    int rc = batch_args(b, alg, 0, n, NULL, &a.skb, &a.xb);
    if (rc != 0)
        return rc;
    if (msg_len != 0 && n > SIZE_MAX / msg_len)
        return PQC_ERR_SIZE;
    if (b->kind == QV_PQC_BACKEND_SOFTWARE) {
        set_bad(bad_index, 0);
        return qv_mldsa_sign_batch(param_of(alg), n, sigs, sks, msgs, msg_len, ctx, ctx_len,
                                   deterministic);
    }
    return each_item(&a, n, sig_sign_item, bad_index);
}

int qv_pqc_sig_verify_batch(qv_pqc_backend *b, int alg, size_t n, uint8_t *ok,
                            const uint8_t *pks, const uint8_t *msgs, size_t msg_len,
                            const uint8_t *sigs, const uint8_t *ctx, size_t ctx_len)
{
    batch a = {.b = b, .alg = alg, .ok = ok, .pk_in = pks, .msgs = msgs, .msg_len = msg_len,
               .x_in = sigs, .ctx = ctx, .ctx_len = ctx_len};
    int rc = batch_args(b, alg, 0, n, &a.pkb, NULL, &a.xb);
    if (rc != 0)
        return rc;
    if (msg_len != 0 && n > SIZE_MAX / msg_len)
        return PQC_ERR_SIZE;
    if (b->kind == QV_PQC_BACKEND_SOFTWARE)
        return qv_mldsa_verify_batch(param_of(alg), n, ok, pks, msgs, msg_len, sigs, ctx,
                                     ctx_len);
    return each_item(&a, n, sig_verify_item, NULL);
}
