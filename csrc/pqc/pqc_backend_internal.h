/* Between the backend dispatcher (backend.c) and the backends behind it (quac100.c,
 * liboqs.c). The dispatcher checks every argument and size before a backend sees it, and
 * checks what a non-software backend hands back; backends only move bytes. */
#ifndef QV_PQC_BACKEND_INTERNAL_H
#define QV_PQC_BACKEND_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "quantavirt/pqc_backend.h"

struct qv_pqc_backend {
    int kind;             /* QV_PQC_BACKEND_* */
    /* quac100 */
    int fd;               /* -1 when closed or gone */
    int gone;             /* the device vanished: every later call is QUAC100_ERR_GONE */
    int last_result;      /* raw `result` of the last reply */
    qv_quac100_info info;
    /* liboqs: one OQS_KEM / OQS_SIG object per algorithm, made on first use */
    void *oqs_kem[3];
    void *oqs_sig[3];
};

/* quac100.c: sizes are already exact; these fill outputs or return QUAC100_ERR_*. */
int qv_quac100_attach(qv_pqc_backend *b, const char *device);
void qv_quac100_detach(qv_pqc_backend *b);
int qv_quac100_keygen(qv_pqc_backend *b, int alg, const uint8_t *seed, size_t seed_len,
                      uint8_t *pk, size_t pk_len, uint8_t *sk, size_t sk_len);
int qv_quac100_encaps(qv_pqc_backend *b, int alg, const uint8_t *pk, size_t pk_len,
                      uint8_t *ct, size_t ct_len, uint8_t *ss, size_t ss_len);
int qv_quac100_decaps(qv_pqc_backend *b, int alg, const uint8_t *sk, size_t sk_len,
                      const uint8_t *ct, size_t ct_len, uint8_t *ss, size_t ss_len);
int qv_quac100_sign(qv_pqc_backend *b, int alg, const uint8_t *sk, size_t sk_len,
                    const uint8_t *msg, size_t msg_len, const uint8_t *ctx, size_t ctx_len,
                    int deterministic, uint8_t *sig, size_t sig_len);
int qv_quac100_verify(qv_pqc_backend *b, int alg, const uint8_t *pk, size_t pk_len,
                      const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len,
                      const uint8_t *ctx, size_t ctx_len);

/* ML-KEM batches through BATCH_SUBMIT (op: QUAC100_BATCH_OP_KEM_*), in jobs of at most the
 * card's max_batch_size items. sizes[]: keygen {pk, sk}, encaps {pk, ct, ss}, decaps
 * {sk, ct, ss}; keygen fills out1 = pks, out2 = sks; encaps reads in1 = pks and fills
 * out1 = cts, out2 = sss; decaps reads in1 = sks, in2 = cts and fills out1 = sss. Inputs
 * have passed the FIPS 203 checks. On failure *bad_index names the first failing item (the
 * job's first for a job-level failure) and every output is wiped. QUAC100_ERR_NOTSUP when
 * the card reports no batch capacity (max_batch_size 0). */
int qv_quac100_kem_batch(qv_pqc_backend *b, int alg, unsigned op, size_t n, const uint8_t *in1,
                         const uint8_t *in2, uint8_t *out1, uint8_t *out2,
                         const size_t sizes[3], size_t *bad_index);

/* liboqs.c: PQC_ERR_BACKEND when the library or the algorithm is missing. */
int qv_liboqs_attach(qv_pqc_backend *b);
void qv_liboqs_detach(qv_pqc_backend *b);
int qv_liboqs_keygen(qv_pqc_backend *b, int alg, const uint8_t *seed, size_t seed_len,
                     uint8_t *pk, size_t pk_len, uint8_t *sk, size_t sk_len);
int qv_liboqs_encaps(qv_pqc_backend *b, int alg, const uint8_t *pk, uint8_t *ct, uint8_t *ss);
int qv_liboqs_decaps(qv_pqc_backend *b, int alg, const uint8_t *sk, const uint8_t *ct,
                     uint8_t *ss);
int qv_liboqs_sign(qv_pqc_backend *b, int alg, const uint8_t *sk, const uint8_t *msg,
                   size_t msg_len, const uint8_t *ctx, size_t ctx_len, int deterministic,
                   uint8_t *sig, size_t sig_len);
int qv_liboqs_verify(qv_pqc_backend *b, int alg, const uint8_t *pk, const uint8_t *msg,
                     size_t msg_len, const uint8_t *sig, size_t sig_len, const uint8_t *ctx,
                     size_t ctx_len);

/* Index 0..2 of an algorithm inside its family (512/768/1024, 44/65/87), or -1. */
int qv_pqc_alg_index(int alg);

#endif
