/* ML-KEM (FIPS 203): K-PKE (Algorithms 13-15), ML-KEM internal algorithms (16-18), the
 * input checks of section 7 and the public API of quantavirt/mlkem.h. Arithmetic, encodings
 * and hashing live in csrc/pqc/mlkem/. */
#include "quantavirt/mlkem.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "core/wipe.h"
#include "pqc/keccak_x4.h"
#include "pqc/mlkem/mlkem_internal.h"
#include "quantavirt/errors.h"

static const mlkem_params mlkem512 = {2, 3, 2, 10, 4, 800, 1632, 768};
static const mlkem_params mlkem768 = {3, 2, 2, 10, 4, 1184, 2400, 1088};
static const mlkem_params mlkem1024 = {4, 2, 2, 11, 5, 1568, 3168, 1568};

static const mlkem_params *params_of(int level)
{
    switch (level) {
    case 512: return &mlkem512;
    case 768: return &mlkem768;
    case 1024: return &mlkem1024;
    default: return NULL;
    }
}

/* ---- K-PKE ---- */

/* Keccak work goes through the 4-lane job runner (csrc/pqc/mlkem/symmetric.c): the matrix
 * entries, the noise PRFs and, where they are independent, the long hashes run side by side. */

/* k * k SampleNTT jobs for A_hat (A[i * k + j] from rho || j || i) or, transposed, A_hat^T. */
static unsigned matrix_jobs(mlkem_job *jobs, uint8_t seeds[][34], mlkem_poly *a,
                            const uint8_t rho[32], unsigned k, int transposed)
{
    for (unsigned i = 0; i < k; i++) {
        for (unsigned j = 0; j < k; j++) {
            unsigned e = i * k + j;
            memcpy(seeds[e], rho, 32);
            seeds[e][32] = (uint8_t)(transposed ? i : j);
            seeds[e][33] = (uint8_t)(transposed ? j : i);
            mlkem_job_sample_ntt(&jobs[e], &a[e], seeds[e]);
        }
    }
    return k * k;
}

/* count PRF jobs: PRF_eta[i](seed, i) into bufs[i] (64 * eta[i] bytes). */
static unsigned noise_jobs(mlkem_job *jobs, uint8_t *nonces, uint8_t bufs[][3 * 64],
                           const unsigned etas[], unsigned count, const uint8_t seed[32])
{
    for (unsigned i = 0; i < count; i++) {
        nonces[i] = (uint8_t)i;
        mlkem_job_hash(&jobs[i], 136, 0x1F, seed, 32, &nonces[i], 1, bufs[i], 64 * etas[i]);
    }
    return count;
}

/* Algorithm 13, K-PKE.KeyGen(d): ek_pke (384k + 32 bytes) and dk_pke (384k bytes). */
static void kpke_keygen(const mlkem_params *P, uint8_t *ek, uint8_t *dk_pke, const uint8_t d[32])
{
    const unsigned k = P->k;
    uint8_t in[33], rho_sigma[64], seeds[MLKEM_KMAX * MLKEM_KMAX][34];
    uint8_t nonces[2 * MLKEM_KMAX], prf[2 * MLKEM_KMAX][3 * 64];
    unsigned etas[2 * MLKEM_KMAX];
    mlkem_job jobs[MLKEM_KMAX * MLKEM_KMAX + 2 * MLKEM_KMAX];
    mlkem_poly a[MLKEM_KMAX * MLKEM_KMAX], s[MLKEM_KMAX], e[MLKEM_KMAX], t;
    const uint8_t *rho = rho_sigma, *sigma = rho_sigma + 32;

    memcpy(in, d, 32);
    in[32] = (uint8_t)k; /* domain separation by k (FIPS 203 final) */
    mlkem_hash_g(rho_sigma, in, sizeof in);
    MLKEM_DECLASSIFY(rho_sigma, 32); /* rho is published in ek */

    /* A_hat, then s[i] with nonce i and e[i] with nonce k + i, in one run. */
    for (unsigned i = 0; i < 2 * k; i++)
        etas[i] = P->eta1;
    unsigned n = matrix_jobs(jobs, seeds, a, rho, k, 0);
    n += noise_jobs(jobs + n, nonces, prf, etas, 2 * k, sigma);
    mlkem_run_jobs(jobs, n);
    for (unsigned i = 0; i < k; i++) {
        mlkem_poly_cbd(&s[i], prf[i], P->eta1);
        mlkem_poly_cbd(&e[i], prf[k + i], P->eta1);
        mlkem_ntt(&s[i]);
        mlkem_ntt(&e[i]);
    }
    for (unsigned i = 0; i < k; i++) {
        /* t_hat[i] = sum_j A_hat[i][j] o s_hat[j] + e_hat[i]; tomont undoes basemul's R^-1. */
        mlkem_polyvec_basemul_acc(&t, &a[i * k], s, k);
        mlkem_poly_tomont(&t);
        mlkem_poly_add(&t, &t, &e[i]);
        mlkem_poly_encode12(ek + MLKEM_POLY_BYTES * i, &t);
        mlkem_poly_encode12(dk_pke + MLKEM_POLY_BYTES * i, &s[i]);
    }
    memcpy(ek + MLKEM_POLY_BYTES * k, rho, 32);

    qv_wipe(in, sizeof in);
    qv_wipe(rho_sigma, sizeof rho_sigma);
    qv_wipe(prf, sizeof prf);
    qv_wipe(s, sizeof s);
    qv_wipe(e, sizeof e);
    qv_wipe(&t, sizeof t);
}

/* Algorithm 14, K-PKE.Encrypt(ek_pke, m, r), in two halves so that its Keccak work can join
 * other jobs: encrypt_jobs adds the noise PRFs (and A_hat^T unless at is ready),
 * encrypt_finish does the arithmetic once they have run. ek_pke has passed the modulus check
 * or comes from a dk that passed the hash check (decode12 reduces mod q either way). */
typedef struct kpke_encrypt_state {
    uint8_t seeds[MLKEM_KMAX * MLKEM_KMAX][34];
    uint8_t nonces[2 * MLKEM_KMAX + 1];
    uint8_t prf[2 * MLKEM_KMAX + 1][3 * 64]; /* secret: wiped by encrypt_finish */
} kpke_encrypt_state;

static unsigned kpke_encrypt_jobs(const mlkem_params *P, kpke_encrypt_state *st, mlkem_job *jobs,
                                  const uint8_t *ek, const uint8_t r[32], mlkem_poly *at,
                                  int at_ready)
{
    const unsigned k = P->k;
    unsigned etas[2 * MLKEM_KMAX + 1];
    /* y[i] with nonce i, e1[i] with nonce k + i, e2 with nonce 2k. */
    for (unsigned i = 0; i < k; i++) {
        etas[i] = P->eta1;
        etas[k + i] = P->eta2;
    }
    etas[2 * k] = P->eta2;
    unsigned n = at_ready ? 0 : matrix_jobs(jobs, st->seeds, at, ek + MLKEM_POLY_BYTES * k, k, 1);
    return n + noise_jobs(jobs + n, st->nonces, st->prf, etas, 2 * k + 1, r);
}

static void kpke_encrypt_finish(const mlkem_params *P, kpke_encrypt_state *st, uint8_t *c,
                                const uint8_t *ek, const uint8_t m[32], const mlkem_poly *at)
{
    const unsigned k = P->k;
    mlkem_poly t_hat[MLKEM_KMAX], y[MLKEM_KMAX], u, v, e, mu;

    for (unsigned i = 0; i < k; i++) {
        (void)mlkem_poly_decode12(&t_hat[i], ek + MLKEM_POLY_BYTES * i);
        mlkem_poly_cbd(&y[i], st->prf[i], P->eta1);
        mlkem_ntt(&y[i]);
    }
    for (unsigned i = 0; i < k; i++) {
        /* u[i] = NTT^-1(sum_j A_hat^T[i][j] o y_hat[j]) + e1[i] */
        mlkem_poly_cbd(&e, st->prf[k + i], P->eta2);
        mlkem_polyvec_basemul_acc(&u, &at[i * k], y, k);
        mlkem_invntt(&u);
        mlkem_poly_add(&u, &u, &e);
        mlkem_poly_compress(c + 32 * P->du * i, &u, P->du);
    }
    /* v = NTT^-1(t_hat^T o y_hat) + e2 + Decompress_1(m) */
    mlkem_poly_cbd(&e, st->prf[2 * k], P->eta2);
    mlkem_poly_from_msg(&mu, m);
    mlkem_polyvec_basemul_acc(&v, t_hat, y, k);
    mlkem_invntt(&v);
    mlkem_poly_add(&v, &v, &e);
    mlkem_poly_add(&v, &v, &mu);
    mlkem_poly_compress(c + 32 * P->du * k, &v, P->dv);

    qv_wipe(st->prf, sizeof st->prf);
    qv_wipe(y, sizeof y);
    qv_wipe(&u, sizeof u);
    qv_wipe(&v, sizeof v);
    qv_wipe(&e, sizeof e);
    qv_wipe(&mu, sizeof mu);
}

static void kpke_encrypt(const mlkem_params *P, uint8_t *c, const uint8_t *ek,
                         const uint8_t m[32], const uint8_t r[32], mlkem_poly *at, int at_ready)
{
    kpke_encrypt_state st;
    mlkem_job jobs[MLKEM_KMAX * MLKEM_KMAX + 2 * MLKEM_KMAX + 1];
    mlkem_run_jobs(jobs, kpke_encrypt_jobs(P, &st, jobs, ek, r, at, at_ready));
    kpke_encrypt_finish(P, &st, c, ek, m, at);
}

/* Algorithm 15, K-PKE.Decrypt(dk_pke, c) -> m. */
static void kpke_decrypt(const mlkem_params *P, uint8_t m[32], const uint8_t *dk_pke,
                         const uint8_t *c)
{
    const unsigned k = P->k;
    mlkem_poly u[MLKEM_KMAX], s_hat[MLKEM_KMAX], v, w;

    for (unsigned i = 0; i < k; i++) {
        mlkem_poly_decompress(&u[i], c + 32 * P->du * i, P->du);
        mlkem_ntt(&u[i]);
        (void)mlkem_poly_decode12(&s_hat[i], dk_pke + MLKEM_POLY_BYTES * i);
    }
    mlkem_poly_decompress(&v, c + 32 * P->du * k, P->dv);
    mlkem_polyvec_basemul_acc(&w, s_hat, u, k);
    mlkem_invntt(&w);
    mlkem_poly_sub(&w, &v, &w);
    mlkem_poly_to_msg(m, &w);

    qv_wipe(s_hat, sizeof s_hat);
    qv_wipe(u, sizeof u);
    qv_wipe(&v, sizeof v);
    qv_wipe(&w, sizeof w);
}

/* ---- ML-KEM internal algorithms ---- */

/* Algorithm 16: dk = dk_pke || ek || H(ek) || z. */
static void keygen_internal(const mlkem_params *P, uint8_t *ek, uint8_t *dk, const uint8_t d[32],
                            const uint8_t z[32])
{
    const size_t pke = MLKEM_POLY_BYTES * P->k;
    kpke_keygen(P, ek, dk, d);
    memcpy(dk + pke, ek, P->ek_bytes);
    mlkem_hash_h(dk + pke + P->ek_bytes, ek, P->ek_bytes);
    memcpy(dk + pke + P->ek_bytes + 32, z, 32);
}

/* Algorithm 17: (K, r) = G(m || H(ek)), c = K-PKE.Encrypt(ek, m, r); h_ek = H(ek). */
static void encaps_internal(const mlkem_params *P, uint8_t *c, uint8_t ss[32], const uint8_t *ek,
                            const uint8_t m[32], const uint8_t h_ek[32], mlkem_poly *at,
                            int at_ready)
{
    uint8_t in[64], kr[64];
    memcpy(in, m, 32);
    memcpy(in + 32, h_ek, 32);
    mlkem_hash_g(kr, in, sizeof in);
    kpke_encrypt(P, c, ek, m, kr + 32, at, at_ready);
    memcpy(ss, kr, 32);
    qv_wipe(in, sizeof in);
    qv_wipe(kr, sizeof kr);
}

/* ---- input checks (FIPS 203 section 7.2 and 7.3) ---- */

/* Modulus check: ByteEncode12(ByteDecode12(ek)) == ek, i.e. no 12-bit value >= q. */
static int ek_modulus_ok(const mlkem_params *P, const uint8_t *ek)
{
    mlkem_poly t;
    uint16_t bad = 0;
    for (unsigned i = 0; i < P->k; i++)
        bad |= mlkem_poly_decode12(&t, ek + MLKEM_POLY_BYTES * i);
    return bad == 0;
}

/* Hash check: H(dk[384k : 768k + 32]) == dk[768k + 32 : 768k + 64], given h = that H(ek).
 * Both sides are public. */
static int dk_hash_matches(const mlkem_params *P, const uint8_t *dk, const uint8_t h[32])
{
    return mlkem_ct_differ(h, dk + MLKEM_POLY_BYTES * P->k + P->ek_bytes, 32) == 0;
}

static int dk_hash_ok(const mlkem_params *P, const uint8_t *dk)
{
    uint8_t h[32];
    mlkem_hash_h(h, dk + MLKEM_POLY_BYTES * P->k, P->ek_bytes);
    return dk_hash_matches(P, dk, h);
}

static int get_random(uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t got = getrandom(buf + done, len - done, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return PQC_ERR_RANDOM;
        }
        done += (size_t)got;
    }
    return 0;
}

/* ---- public API ---- */

int qv_mlkem_sizes(int level, size_t *public_key_bytes, size_t *secret_key_bytes,
                   size_t *ciphertext_bytes)
{
    const mlkem_params *P = params_of(level);
    if (P == NULL)
        return PQC_ERR_ALGORITHM;
    if (public_key_bytes)
        *public_key_bytes = P->ek_bytes;
    if (secret_key_bytes)
        *secret_key_bytes = P->dk_bytes;
    if (ciphertext_bytes)
        *ciphertext_bytes = P->ct_bytes;
    return 0;
}

int qv_mlkem_check_public_key(int level, const uint8_t *ek, size_t ek_len)
{
    const mlkem_params *P = params_of(level);
    if (P == NULL)
        return PQC_ERR_ALGORITHM;
    if (ek == NULL)
        return QV_ERR_INVAL;
    if (ek_len != P->ek_bytes)
        return PQC_ERR_SIZE;
    return ek_modulus_ok(P, ek) ? 0 : PQC_ERR_KEY;
}

int qv_mlkem_check_secret_key(int level, const uint8_t *dk, size_t dk_len)
{
    const mlkem_params *P = params_of(level);
    if (P == NULL)
        return PQC_ERR_ALGORITHM;
    if (dk == NULL)
        return QV_ERR_INVAL;
    if (dk_len != P->dk_bytes)
        return PQC_ERR_SIZE;
    return dk_hash_ok(P, dk) ? 0 : PQC_ERR_KEY;
}

int qv_mlkem_keygen_seed(int level, const uint8_t *seed, size_t seed_len, uint8_t *ek,
                         size_t ek_len, uint8_t *dk, size_t dk_len)
{
    const mlkem_params *P = params_of(level);
    if (P == NULL)
        return PQC_ERR_ALGORITHM;
    if (seed == NULL || ek == NULL || dk == NULL)
        return QV_ERR_INVAL;
    if (seed_len != QV_MLKEM_SEED_BYTES || ek_len != P->ek_bytes || dk_len != P->dk_bytes)
        return PQC_ERR_SIZE;
    keygen_internal(P, ek, dk, seed, seed + 32);
    return 0;
}

int qv_mlkem_keygen(int level, uint8_t *ek, size_t ek_len, uint8_t *dk, size_t dk_len)
{
    const mlkem_params *P = params_of(level);
    uint8_t seed[QV_MLKEM_SEED_BYTES];
    if (P == NULL)
        return PQC_ERR_ALGORITHM;
    if (ek == NULL || dk == NULL)
        return QV_ERR_INVAL;
    if (ek_len != P->ek_bytes || dk_len != P->dk_bytes)
        return PQC_ERR_SIZE;
    int rc = get_random(seed, sizeof seed);
    if (rc == 0)
        keygen_internal(P, ek, dk, seed, seed + 32);
    qv_wipe(seed, sizeof seed);
    return rc;
}

int qv_mlkem_encaps_derand(int level, const uint8_t *ek, size_t ek_len, const uint8_t *m,
                           size_t m_len, uint8_t *ct, size_t ct_len, uint8_t *ss, size_t ss_len)
{
    int rc = qv_mlkem_check_public_key(level, ek, ek_len);
    if (rc != 0)
        return rc;
    const mlkem_params *P = params_of(level);
    if (m == NULL || ct == NULL || ss == NULL)
        return QV_ERR_INVAL;
    if (m_len != QV_MLKEM_MSG_BYTES || ct_len != P->ct_bytes ||
        ss_len != QV_MLKEM_SHARED_SECRET_BYTES)
        return PQC_ERR_SIZE;
    /* H(ek) runs beside the k * k matrix entries on the 4-lane Keccak. */
    uint8_t h_ek[32], seeds[MLKEM_KMAX * MLKEM_KMAX][34];
    mlkem_poly at[MLKEM_KMAX * MLKEM_KMAX];
    mlkem_job jobs[1 + MLKEM_KMAX * MLKEM_KMAX];
    mlkem_job_hash(&jobs[0], 136, 0x06, ek, P->ek_bytes, NULL, 0, h_ek, 32);
    unsigned n = 1 + matrix_jobs(jobs + 1, seeds, at, ek + MLKEM_POLY_BYTES * P->k, P->k, 1);
    mlkem_run_jobs(jobs, n);
    encaps_internal(P, ct, ss, ek, m, h_ek, at, 1);
    return 0;
}

int qv_mlkem_encaps(int level, const uint8_t *ek, size_t ek_len, uint8_t *ct, size_t ct_len,
                    uint8_t *ss, size_t ss_len)
{
    uint8_t m[QV_MLKEM_MSG_BYTES];
    int rc = get_random(m, sizeof m);
    if (rc == 0)
        rc = qv_mlkem_encaps_derand(level, ek, ek_len, m, sizeof m, ct, ct_len, ss, ss_len);
    qv_wipe(m, sizeof m);
    return rc;
}

int qv_mlkem_decaps(int level, const uint8_t *dk, size_t dk_len, const uint8_t *ct,
                    size_t ct_len, uint8_t *ss, size_t ss_len)
{
    const mlkem_params *P = params_of(level);
    if (P == NULL)
        return PQC_ERR_ALGORITHM;
    if (dk == NULL || ct == NULL || ss == NULL)
        return QV_ERR_INVAL;
    if (dk_len != P->dk_bytes || ct_len != P->ct_bytes || ss_len != QV_MLKEM_SHARED_SECRET_BYTES)
        return PQC_ERR_SIZE;

    /* Decrypt and G come first (they need only dk_pke, c and the stored h); then the hash
     * check's H(ek), the rejection key J(z || c), A_hat^T and the noise of the re-encryption
     * are independent Keccak work for one run of the 4-lane job runner. Nothing is returned
     * unless the hash check passes. */
    const size_t pke = MLKEM_POLY_BYTES * P->k;
    const uint8_t *ek = dk + pke, *h_stored = ek + P->ek_bytes;
    uint8_t h[32], k_bar[32], in[64], kr[64], c_prime[QV_MLKEM1024_CIPHERTEXT_BYTES];
    mlkem_poly at[MLKEM_KMAX * MLKEM_KMAX];
    kpke_encrypt_state st;
    mlkem_job jobs[2 + MLKEM_KMAX * MLKEM_KMAX + 2 * MLKEM_KMAX + 1];

    kpke_decrypt(P, in, dk, ct);
    memcpy(in + 32, h_stored, 32);
    mlkem_hash_g(kr, in, sizeof in);
    mlkem_job_hash(&jobs[0], 136, 0x06, ek, P->ek_bytes, NULL, 0, h, 32);
    mlkem_job_hash(&jobs[1], 136, 0x1F, dk + P->dk_bytes - 32, 32, ct, P->ct_bytes, k_bar, 32);
    unsigned n = 2 + kpke_encrypt_jobs(P, &st, jobs + 2, ek, kr + 32, at, 0);
    mlkem_run_jobs(jobs, n);
    kpke_encrypt_finish(P, &st, c_prime, ek, in, at);
    mlkem_ct_cmov(kr, k_bar, 32, mlkem_ct_differ(ct, c_prime, P->ct_bytes));

    int rc = PQC_ERR_KEY;
    if (dk_hash_matches(P, dk, h)) {
        memcpy(ss, kr, 32);
        rc = 0;
    }
    qv_wipe(in, sizeof in);
    qv_wipe(kr, sizeof kr);
    qv_wipe(k_bar, sizeof k_bar);
    qv_wipe(c_prime, sizeof c_prime);
    return rc;
}

/* The batches work in groups of four so that the long hashes (H(ek) for keygen, encaps and
 * the dk hash check, J(z || c) for decaps) run four at a time on the 4-lane Keccak. Lanes past
 * the end of a short group repeat item 0 of the group; their results are dropped. */
#define GROUP 4

static void hash_h_x4(const mlkem_params *P, uint8_t out[GROUP][32], const uint8_t *const ek[GROUP])
{
    uint8_t *outs[GROUP] = {out[0], out[1], out[2], out[3]};
    qv_keccakx4_hash(136, 0x06, ek, P->ek_bytes, outs, 32);
}

int qv_mlkem_keygen_batch(int level, size_t n, uint8_t *eks, uint8_t *dks)
{
    const mlkem_params *P = params_of(level);
    if (P == NULL)
        return PQC_ERR_ALGORITHM;
    if (n > 0 && (eks == NULL || dks == NULL))
        return QV_ERR_INVAL;
    const size_t pke = MLKEM_POLY_BYTES * P->k;
    uint8_t seeds[GROUP][QV_MLKEM_SEED_BYTES], h[GROUP][32];
    int rc = 0;
    for (size_t g = 0; g < n && rc == 0; g += GROUP) {
        size_t cnt = n - g < GROUP ? n - g : GROUP;
        const uint8_t *ek[GROUP];
        rc = get_random(seeds[0], cnt * QV_MLKEM_SEED_BYTES);
        if (rc != 0)
            break;
        for (size_t l = 0; l < GROUP; l++) {
            size_t i = g + (l < cnt ? l : 0);
            uint8_t *ek_i = eks + i * P->ek_bytes, *dk_i = dks + i * P->dk_bytes;
            if (l < cnt) {
                kpke_keygen(P, ek_i, dk_i, seeds[l]);
                memcpy(dk_i + pke, ek_i, P->ek_bytes);
                memcpy(dk_i + pke + P->ek_bytes + 32, seeds[l] + 32, 32);
            }
            ek[l] = ek_i;
        }
        hash_h_x4(P, h, ek);
        for (size_t l = 0; l < cnt; l++)
            memcpy(dks + (g + l) * P->dk_bytes + pke + P->ek_bytes, h[l], 32);
    }
    qv_wipe(seeds, sizeof seeds);
    return rc;
}

/* Encaps and decaps batches run the Keccak work of a whole group through one job runner per
 * stage, so the 4 or 8 lanes are filled by several operations at once (H(ek) of four keys beside
 * their matrices, then the four G, then the noise of four encryptions) instead of by one
 * operation's jobs alone. */
/* Items per stage: eight fill the 8-lane G and noise stages exactly. */
#define BGROUP 8

int qv_mlkem_encaps_batch(int level, size_t n, const uint8_t *eks, uint8_t *cts, uint8_t *sss,
                          size_t *bad_index)
{
    const mlkem_params *P = params_of(level);
    if (P == NULL)
        return PQC_ERR_ALGORITHM;
    if (n > 0 && (eks == NULL || cts == NULL || sss == NULL))
        return QV_ERR_INVAL;
    const unsigned k = P->k;
    uint8_t m_h[BGROUP][64], kr[BGROUP][64]; /* G's input m || H(ek) and its output K || r */
    uint8_t seeds[BGROUP][MLKEM_KMAX * MLKEM_KMAX][34];
    mlkem_poly at[BGROUP][MLKEM_KMAX * MLKEM_KMAX];
    kpke_encrypt_state st[BGROUP];
    mlkem_job jobs[BGROUP * (1 + MLKEM_KMAX * MLKEM_KMAX + 2 * MLKEM_KMAX + 1)];
    int rc = 0;
    for (size_t g = 0; g < n && rc == 0; g += BGROUP) {
        size_t cnt = n - g < BGROUP ? n - g : BGROUP;
        const uint8_t *ek[BGROUP];
        for (size_t l = 0; l < cnt; l++) {
            ek[l] = eks + (g + l) * P->ek_bytes;
            if (!ek_modulus_ok(P, ek[l])) {
                if (bad_index)
                    *bad_index = g + l;
                rc = PQC_ERR_KEY;
                break;
            }
        }
        uint8_t m[BGROUP][QV_MLKEM_MSG_BYTES];
        if (rc == 0)
            rc = get_random(m[0], cnt * QV_MLKEM_MSG_BYTES); /* one getrandom per group */
        for (size_t l = 0; l < cnt && rc == 0; l++)
            memcpy(m_h[l], m[l], QV_MLKEM_MSG_BYTES);
        qv_wipe(m, sizeof m);
        if (rc != 0)
            break;
        /* Stage 1: H(ek) (the long ones first) and A_hat^T of every item. */
        unsigned nj = 0;
        for (size_t l = 0; l < cnt; l++)
            mlkem_job_hash(&jobs[nj++], 136, 0x06, ek[l], P->ek_bytes, NULL, 0, m_h[l] + 32, 32);
        for (size_t l = 0; l < cnt; l++)
            nj += matrix_jobs(jobs + nj, seeds[l], at[l], ek[l] + MLKEM_POLY_BYTES * k, k, 1);
        mlkem_run_jobs(jobs, nj);
        /* Stage 2: (K, r) = G(m || H(ek)). */
        for (size_t l = 0; l < cnt; l++)
            mlkem_job_hash(&jobs[l], 72, 0x06, m_h[l], 64, NULL, 0, kr[l], 64);
        mlkem_run_jobs(jobs, (unsigned)cnt);
        /* Stage 3: the noise of every encryption, then the arithmetic. */
        nj = 0;
        for (size_t l = 0; l < cnt; l++)
            nj += kpke_encrypt_jobs(P, &st[l], jobs + nj, ek[l], kr[l] + 32, at[l], 1);
        mlkem_run_jobs(jobs, nj);
        for (size_t l = 0; l < cnt; l++) {
            kpke_encrypt_finish(P, &st[l], cts + (g + l) * P->ct_bytes, ek[l], m_h[l], at[l]);
            memcpy(sss + (g + l) * 32, kr[l], 32);
        }
    }
    qv_wipe(m_h, sizeof m_h);
    qv_wipe(kr, sizeof kr);
    qv_wipe(st, sizeof st);
    return rc;
}

int qv_mlkem_decaps_batch(int level, size_t n, const uint8_t *dks, const uint8_t *cts,
                          uint8_t *sss, size_t *bad_index)
{
    const mlkem_params *P = params_of(level);
    if (P == NULL)
        return PQC_ERR_ALGORITHM;
    if (n > 0 && (dks == NULL || cts == NULL || sss == NULL))
        return QV_ERR_INVAL;
    const size_t pke = MLKEM_POLY_BYTES * P->k;
    uint8_t h[BGROUP][32], k_bar[BGROUP][32], in[BGROUP][64], kr[BGROUP][64];
    uint8_t c_prime[QV_MLKEM1024_CIPHERTEXT_BYTES];
    mlkem_poly at[BGROUP][MLKEM_KMAX * MLKEM_KMAX];
    kpke_encrypt_state st[BGROUP];
    mlkem_job jobs[BGROUP * (2 + MLKEM_KMAX * MLKEM_KMAX + 2 * MLKEM_KMAX + 1)];
    int rc = 0;
    for (size_t g = 0; g < n && rc == 0; g += BGROUP) {
        size_t cnt = n - g < BGROUP ? n - g : BGROUP;
        const uint8_t *dk[BGROUP], *ek[BGROUP], *ct[BGROUP];
        /* Decrypt, then G(m' || h) of every item in one run. */
        for (size_t l = 0; l < cnt; l++) {
            dk[l] = dks + (g + l) * P->dk_bytes;
            ek[l] = dk[l] + pke;
            ct[l] = cts + (g + l) * P->ct_bytes;
            kpke_decrypt(P, in[l], dk[l], ct[l]);
            memcpy(in[l] + 32, ek[l] + P->ek_bytes, 32);
            mlkem_job_hash(&jobs[l], 72, 0x06, in[l], 64, NULL, 0, kr[l], 64);
        }
        mlkem_run_jobs(jobs, (unsigned)cnt);
        /* The hash checks' H(ek), J(z || c), the matrices and the re-encryption noise. */
        unsigned nj = 0;
        for (size_t l = 0; l < cnt; l++) {
            mlkem_job_hash(&jobs[nj++], 136, 0x06, ek[l], P->ek_bytes, NULL, 0, h[l], 32);
            mlkem_job_hash(&jobs[nj++], 136, 0x1F, dk[l] + P->dk_bytes - 32, 32, ct[l],
                           P->ct_bytes, k_bar[l], 32);
        }
        for (size_t l = 0; l < cnt; l++)
            nj += kpke_encrypt_jobs(P, &st[l], jobs + nj, ek[l], kr[l] + 32, at[l], 0);
        mlkem_run_jobs(jobs, nj);
        for (size_t l = 0; l < cnt; l++) {
            kpke_encrypt_finish(P, &st[l], c_prime, ek[l], in[l], at[l]);
            mlkem_ct_cmov(kr[l], k_bar[l], 32, mlkem_ct_differ(ct[l], c_prime, P->ct_bytes));
        }
        /* Nothing of a group is returned unless all its hash checks pass (the first failing
         * row is reported). */
        for (size_t l = 0; l < cnt; l++) {
            if (!dk_hash_matches(P, dk[l], h[l])) {
                if (bad_index)
                    *bad_index = g + l;
                rc = PQC_ERR_KEY;
                break;
            }
        }
        for (size_t l = 0; l < cnt && rc == 0; l++)
            memcpy(sss + (g + l) * 32, kr[l], 32);
    }
    qv_wipe(in, sizeof in);
    qv_wipe(kr, sizeof kr);
    qv_wipe(k_bar, sizeof k_bar);
    qv_wipe(c_prime, sizeof c_prime);
    qv_wipe(st, sizeof st);
    return rc;
}

const char *qv_mlkem_code_path(void)
{
    /* The NTT side is AVX2; the Keccak side adds AVX-512VL (4 lanes) or AVX-512F (8 lanes)
     * when the CPU has them. */
    if (!mlkem_use_avx2())
        return "portable";
    return qv_keccakx4_code_path();
}

int qv_mlkem_select_code_path(const char *path)
{
    static const char *const names[] = {"portable", "avx2", "avx512vl", "avx512"};
    if (path == NULL)
        return QV_ERR_INVAL;
    if (strcmp(path, "auto") == 0) {
        qv_keccakx4_set_max_level(3);
        return 0;
    }
    for (int level = 0; level < 4; level++) {
        if (strcmp(path, names[level]) == 0) {
            qv_keccakx4_set_max_level(level);
            if (strcmp(qv_mlkem_code_path(), path) != 0) {
                qv_keccakx4_set_max_level(3);
                return QV_ERR_NOTSUP;
            }
            return 0;
        }
    }
    return QV_ERR_INVAL;
}
