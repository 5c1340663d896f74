/* One interface to every PQC backend: ML-KEM and ML-DSA by algorithm id or name, served by
 * `software` (the core's own qv_mlkem_* / qv_mldsa_*), `quac100` (the QUAC 100 card through
 * its ioctl ABI, vendor/quac100/quac100_ioctl.h) or `liboqs` (dlopen'ed at run time, never
 * linked). `auto` is quac100 when a card answers GET_INFO, else software.
 *
 * Algorithm ids are the QUAC 100 ids (family in bits 15..12). Buffers come with their
 * lengths; a length other than the exact FIPS 203 / 204 size gives PQC_ERR_SIZE. Every
 * function returns 0 or a negative code from quantavirt/errors.h. A card's replies are
 * untrusted: bad sizes or result codes give QUAC100_ERR_* codes, a card that vanishes gives
 * QUAC100_ERR_GONE (and the handle stays gone), and output buffers are wiped on failure. */
#ifndef QUANTAVIRT_PQC_BACKEND_H
#define QUANTAVIRT_PQC_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#define QV_PQC_ML_KEM_512 0x1100
#define QV_PQC_ML_KEM_768 0x1101
#define QV_PQC_ML_KEM_1024 0x1102
#define QV_PQC_ML_DSA_44 0x2100
#define QV_PQC_ML_DSA_65 0x2101
#define QV_PQC_ML_DSA_87 0x2102

#define QV_PQC_BACKEND_SOFTWARE 1
#define QV_PQC_BACKEND_QUAC100 2
#define QV_PQC_BACKEND_LIBOQS 3

/* Environment variable naming the QUAC 100 device node(s) to use instead of scanning
 * /dev/quac100_0 .. /dev/quac100_15 (a ':'-separated list; the first that answers wins). */
#define QV_QUAC100_DEVICE_ENV "QUANTAVIRT_QUAC100_DEVICE"
/* Environment variable naming liboqs' shared library (else the usual names are tried). */
#define QV_LIBOQS_ENV "QUANTAVIRT_LIBOQS"

/* Algorithm id of a schema name ("ML-KEM-768"), or PQC_ERR_ALGORITHM. */
int qv_pqc_algorithm_id(const char *name);
/* Schema name of an id; NULL for an unknown id. */
const char *qv_pqc_algorithm_name(int alg);
/* 1 for a KEM id, 0 for a signature id. */
int qv_pqc_is_kem(int alg);
/* Sizes: KEM pk, sk, ciphertext; signature pk, sk, signature. Any pointer may be NULL. */
int qv_pqc_sizes(int alg, size_t *pk_bytes, size_t *sk_bytes, size_t *ct_or_sig_bytes);

typedef struct qv_pqc_backend qv_pqc_backend;

/* Opens a backend by name ("auto", "software", "quac100", "liboqs"). For quac100, `device`
 * is the node to use (NULL: the environment variable above, else a scan). Errors:
 * PQC_ERR_BACKEND (unknown name, liboqs missing), QUAC100_ERR_NO_DEVICE, QUAC100_ERR_OPEN,
 * QUAC100_ERR_VERSION, QUAC100_ERR_* for a bad GET_INFO reply. */
int qv_pqc_backend_open(const char *name, const char *device, qv_pqc_backend **out);
void qv_pqc_backend_close(qv_pqc_backend *b);
/* QV_PQC_BACKEND_* of an open handle, and its name ("software", "quac100", "liboqs"). */
int qv_pqc_backend_kind(const qv_pqc_backend *b);
const char *qv_pqc_backend_name(const qv_pqc_backend *b);
/* quac100: the device path in use and the raw result code of the card's last reply. */
const char *qv_pqc_backend_device(const qv_pqc_backend *b);
int qv_pqc_backend_last_result(const qv_pqc_backend *b);

/* KEM. seed: NULL (fresh randomness) or d || z (64 bytes). */
int qv_pqc_kem_keygen(qv_pqc_backend *b, int alg, const uint8_t *seed, size_t seed_len,
                      uint8_t *pk, size_t pk_len, uint8_t *sk, size_t sk_len);
int qv_pqc_kem_encaps(qv_pqc_backend *b, int alg, const uint8_t *pk, size_t pk_len,
                      uint8_t *ct, size_t ct_len, uint8_t *ss, size_t ss_len);
int qv_pqc_kem_decaps(qv_pqc_backend *b, int alg, const uint8_t *sk, size_t sk_len,
                      const uint8_t *ct, size_t ct_len, uint8_t *ss, size_t ss_len);

/* Signatures. seed: NULL or xi (32 bytes). sign writes exactly the FIPS 204 signature size;
 * verify returns 0 (valid) or PQC_ERR_VERIFY (invalid, including a wrong length). */
int qv_pqc_sig_keygen(qv_pqc_backend *b, int alg, const uint8_t *seed, size_t seed_len,
                      uint8_t *pk, size_t pk_len, uint8_t *sk, size_t sk_len);
int qv_pqc_sig_sign(qv_pqc_backend *b, int alg, const uint8_t *sk, size_t sk_len,
                    const uint8_t *msg, size_t msg_len, const uint8_t *ctx, size_t ctx_len,
                    int deterministic, uint8_t *sig, size_t sig_len);
int qv_pqc_sig_verify(qv_pqc_backend *b, int alg, const uint8_t *pk, size_t pk_len,
                      const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len,
                      const uint8_t *ctx, size_t ctx_len);

/* Batches on packed arrays (item i at i * size). The software backend hands them to the
 * core's batch code; the others loop. The first failure stops the call and stores its index
 * in *bad_index (may be NULL). verify_batch writes 1/0 to ok[i]. */
int qv_pqc_kem_keygen_batch(qv_pqc_backend *b, int alg, size_t n, uint8_t *pks, uint8_t *sks,
                            size_t *bad_index);
int qv_pqc_kem_encaps_batch(qv_pqc_backend *b, int alg, size_t n, const uint8_t *pks,
                            uint8_t *cts, uint8_t *sss, size_t *bad_index);
int qv_pqc_kem_decaps_batch(qv_pqc_backend *b, int alg, size_t n, const uint8_t *sks,
                            const uint8_t *cts, uint8_t *sss, size_t *bad_index);
int qv_pqc_sig_keygen_batch(qv_pqc_backend *b, int alg, size_t n, uint8_t *pks, uint8_t *sks,
                            const uint8_t *seeds, size_t *bad_index);
int qv_pqc_sig_sign_batch(qv_pqc_backend *b, int alg, size_t n, uint8_t *sigs,
                          const uint8_t *sks, const uint8_t *msgs, size_t msg_len,
                          const uint8_t *ctx, size_t ctx_len, int deterministic,
                          size_t *bad_index);
int qv_pqc_sig_verify_batch(qv_pqc_backend *b, int alg, size_t n, uint8_t *ok,
                            const uint8_t *pks, const uint8_t *msgs, size_t msg_len,
                            const uint8_t *sigs, const uint8_t *ctx, size_t ctx_len);

/* What GET_VERSION and GET_INFO of one QUAC 100 device said (strings NUL-terminated). */
typedef struct qv_quac100_info {
    char path[256];
    uint32_t interface_version;
    uint32_t driver_version;
    uint32_t device_index;
    char device_name[65];
    char serial_number[33];
    uint16_t vendor_id;
    uint16_t device_id;
    uint16_t subsystem_id;
    uint16_t revision;
    uint16_t fw_major;
    uint16_t fw_minor;
    uint16_t fw_patch;
    uint32_t capabilities;
    uint32_t status;
    uint32_t max_batch_size;
    uint32_t max_pending_jobs;
    uint32_t key_slots_total;
    uint32_t key_slots_used;
    int simulator;
} qv_quac100_info;

/* GET_VERSION + GET_INFO of the device at `path` (NULL: the first one found). */
int qv_quac100_probe(const char *path, qv_quac100_info *info);
/* Every device that answers (the environment variable's list, else /dev/quac100_0..15), up
 * to `max`; *count is how many were found. */
int qv_quac100_list(qv_quac100_info *infos, int max, int *count);
/* The card's own diagnostics through an open quac100 handle: GET_STATUS and
 * DIAG_GET_COUNTERS (10 counters: kem_keygen .. errors_total), and RANDOM. */
int qv_quac100_status(qv_pqc_backend *b, uint32_t *status);
int qv_quac100_counters(qv_pqc_backend *b, uint64_t counters[10]);
int qv_quac100_random(qv_pqc_backend *b, uint8_t *buf, size_t len);

/* QUAC 100 key slots: ML-KEM key pairs whose secret key never leaves the card. Slot numbers
 * run 0 .. key_slots_total-1 of GET_INFO; QUAC100_ERR_NOTSUP when the card has no slots,
 * QUAC100_ERR_SLOT for a number out of range or an empty slot, QUAC100_ERR_REPLY for a
 * reply that does not add up (slot out of range, a public key failing the FIPS 203 modulus
 * check, a list out of order, an all-zero shared secret). */
typedef struct qv_quac100_key_slot {
    uint32_t slot;
    int algorithm;
    char label[33];
} qv_quac100_key_slot;

/* A fresh pair in the first free slot; label: up to 32 printable ASCII characters or NULL. */
int qv_quac100_slot_generate(qv_pqc_backend *b, int alg, const char *label, uint32_t *slot,
                             uint8_t *pk, size_t pk_len);
/* The public key of a slot, which must hold a pair of `alg` (another algorithm: PQC_ERR_KEY). */
int qv_quac100_slot_public_key(qv_pqc_backend *b, uint32_t slot, int alg, uint8_t *pk,
                               size_t pk_len);
/* ML-KEM.Decaps with the slot's secret key (KEM_DECAPS with QUAC100_FLAG_KEY_SLOT). */
int qv_quac100_slot_decaps(qv_pqc_backend *b, uint32_t slot, int alg, const uint8_t *ct,
                           size_t ct_len, uint8_t *ss, size_t ss_len);
int qv_quac100_slot_delete(qv_pqc_backend *b, uint32_t slot);
/* The used slots in slot order; *count is how many the card has (up to `max` are copied). */
int qv_quac100_slot_list(qv_pqc_backend *b, qv_quac100_key_slot *slots, int max, int *count);

/* liboqs: 0 when its shared library can be loaded; the path or soname that loaded. */
int qv_liboqs_available(const char **where);

#endif
