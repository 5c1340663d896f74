/* The PQC-encrypted disk format ("encrypted"): a block backend under the qv_disk interface.
 *
 * The layout is documented in docs/encrypted-disk-format.md. A random 256-bit data key is
 * wrapped to a host ML-KEM public key; sectors of 4096 bytes are sealed with AES-256-GCM or
 * ChaCha20-Poly1305 under keys derived by HKDF over SHA3-256. Reads return plaintext; a sector
 * whose stored bytes were changed fails with QV_STR_ERR_INTEGRITY and the disk's last-error
 * text names the sector. A wrong host key gives PQC_ERR_KEY at open.
 *
 * Functions return 0 or a negative QV error code and put a message in errbuf (may be NULL). */
#ifndef QUANTAVIRT_DISK_ENCRYPTED_H
#define QUANTAVIRT_DISK_ENCRYPTED_H

#include <stddef.h>
#include <stdint.h>

#include "quantavirt/disk.h"
#include "quantavirt/pqc_backend.h"

#define QV_ENCDISK_MAGIC "QVENCDSK" /* the first 8 bytes of every encrypted image */
#define QV_ENCDISK_MAGIC_LEN 8
#define QV_ENCDISK_VERSION 1
#define QV_ENCDISK_SECTOR_SIZE 4096 /* data bytes per sealed sector */
#define QV_ENCDISK_HEADER_SIZE 4096
#define QV_ENCDISK_KEY_BYTES 32 /* the data key */
#define QV_ENCDISK_FINGERPRINT_BYTES 32 /* SHA3-256 of the host ML-KEM public key */
/* Largest virtual size: 2^44 sectors of 4 KiB (64 PiB) keeps every offset inside int64. */
#define QV_ENCDISK_MAX_SIZE (UINT64_C(1) << 56)

enum qv_encdisk_aead {
    QV_ENCDISK_AEAD_AES_256_GCM = 1,
    QV_ENCDISK_AEAD_CHACHA20_POLY1305 = 2,
};

#define QV_ENCDISK_CREATE_PREALLOCATE 1u /* seal every sector now (see "initialized") */

/* Create an image of `size` bytes (a positive multiple of 512) wrapped to the ML-KEM public key
 * `host_ek` of parameter set `kem_level` (512/768/1024). Fails with QV_ERR_EXIST if the file
 * exists. */
int qv_disk_create_encrypted(const char *path, uint64_t size, int kem_level, int aead,
                             const uint8_t *host_ek, size_t host_ek_len, unsigned flags,
                             char *errbuf, size_t errlen);

/* Open an image with the host's ML-KEM decapsulation key. QV_STR_ERR_FORMAT: not this format;
 * PQC_ERR_KEY: the image is wrapped to another key; QV_STR_ERR_INTEGRITY: the header was
 * changed; QV_STR_ERR_CORRUPT: impossible values or a truncated file. */
int qv_disk_open_encrypted(const char *path, const struct qv_disk_options *opts,
                           const uint8_t *host_dk, size_t host_dk_len, struct qv_disk **out,
                           char *errbuf, size_t errlen);

/* Open an image wrapped to the ML-KEM key in QUAC 100 key slot `slot` of `card` (a quac100
 * backend handle): the slot's public key must have the image's fingerprint (PQC_ERR_KEY
 * otherwise) and the card decapsulates; its secret key never reaches the host. Card failures
 * give their QUAC100_ERR_* code (QUAC100_ERR_SLOT: empty or no such slot). */
int qv_disk_open_encrypted_slot(const char *path, const struct qv_disk_options *opts,
                                qv_pqc_backend *card, uint32_t slot, struct qv_disk **out,
                                char *errbuf, size_t errlen);

/* Re-wrap the same data key to another host key (possibly another ML-KEM parameter set)
 * without touching any sector. The image must not be open elsewhere. */
int qv_disk_rekey_encrypted(const char *path, const uint8_t *old_dk, size_t old_dk_len,
                            int new_kem_level, const uint8_t *new_ek, size_t new_ek_len,
                            char *errbuf, size_t errlen);

/* Does this header (at least 8 bytes) start an encrypted image? For format auto-detection. */
int qv_disk_is_encrypted(const uint8_t *header, size_t len);

/* The message of the last failed operation on an open encrypted disk ("" if none). */
const char *qv_disk_encrypted_last_error(const struct qv_disk *disk);

/* Flat wrappers for bindings and tools (bounds- and read-only-checked). */
int qv_encdisk_open(const char *path, int readonly, int cache, const uint8_t *host_dk,
                    size_t host_dk_len, struct qv_disk **out, char *errbuf, size_t errlen);
int qv_encdisk_open_slot(const char *path, int readonly, int cache, qv_pqc_backend *card,
                         uint32_t slot, struct qv_disk **out, char *errbuf, size_t errlen);
int qv_encdisk_read(struct qv_disk *disk, uint64_t offset, void *buf, size_t len);
int qv_encdisk_write(struct qv_disk *disk, uint64_t offset, const void *buf, size_t len);
int qv_encdisk_flush(struct qv_disk *disk);
int qv_encdisk_write_zeroes(struct qv_disk *disk, uint64_t offset, uint64_t len);
uint64_t qv_encdisk_size(const struct qv_disk *disk);
void qv_encdisk_close(struct qv_disk *disk);

/* Seal `count` 4 KiB buffers in memory with the data path's AEAD code (benchmarks): returns
 * 0 and the bytes processed in *bytes_out, using a throwaway key. */
int qv_encdisk_aead_bench(int aead, uint64_t count, uint64_t *bytes_out);

#endif
