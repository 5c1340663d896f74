/* The PQC-encrypted disk backend (format "encrypted"); layout in encrypted_format.h and
 * docs/encrypted-disk-format.md.
 *
 * Write protocol per request (why: a sector must read back as its old or new content after a
 * crash, never as wrong data): 1. write the records with the new entry added beside the
 * current one ("pending"), 2. write the sealed data, 3. write the records with the old entry
 * removed. A sector without a current entry (never written) skips step 1, so its record stays
 * empty, and the sector reads as zeros, until step 3. Every record is 64-byte aligned and every sealed sector 4 KiB aligned, so no
 * record or sector straddles a page and a killed writer leaves each one old or new. */
#include "quantavirt/disk_encrypted.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "core/wipe.h"
#include "disk/encrypted_format.h"
#include "quantavirt/errors.h"
#include "quantavirt/hkdf.h"
#include "quantavirt/mlkem.h"
#include "quantavirt/pqc_backend.h"

#define SS QV_ENCDISK_SECTOR_SIZE
#define CHUNK_SECTORS 64 /* sectors per I/O batch: 256 KiB of data, 4 KiB of records */

struct encdisk {
    struct qv_disk base; /* first: the qv_disk interface */
    int fd;
    int sync_writes;
    char *path;
    pthread_mutex_t lock; /* one request at a time: RMW and the record protocol need it */
    uint8_t uuid[16];
    int aead;
    uint64_t flags;
    uint64_t nsectors;
    uint64_t data_off;
    uint32_t epoch;
    uint64_t seq;
    uint8_t record_key[32];
    EVP_CIPHER_CTX *enc;
    EVP_CIPHER_CTX *dec;
    EVP_MD *sha3;
    EVP_MD_CTX *md;
    uint8_t *pbuf; /* plaintext of a chunk */
    uint8_t *cbuf; /* sealed data of a chunk */
    uint8_t *recs; /* records of a chunk (pending state) */
    uint8_t *recs_done; /* records of a chunk (old entries removed) */
    uint8_t *scratch; /* two sectors for live_slot */
    char last_error[256];
};

static const struct qv_disk_ops encdisk_ops;

/* ---- small helpers ---- */

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* A failure on an open disk: kept for qv_disk_encrypted_last_error and written to the host log
 * (stderr), since the block interface has no message channel of its own. */
static int disk_fail(struct encdisk *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int disk_fail(struct encdisk *d, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->last_error, sizeof(d->last_error), fmt, ap);
    va_end(ap);
    fprintf(stderr, "quantavirt: encrypted disk %s: %s\n", d->path, d->last_error);
    return code;
}

static void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | ((uint64_t)get_le32(p + 4) << 32);
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static const char *aead_name(int aead)
{
    return aead == QV_ENCDISK_AEAD_AES_256_GCM ? "AES-256-GCM" : "ChaCha20-Poly1305";
}

static int io_error_code(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG ? QV_STR_ERR_NOSPC : QV_STR_ERR_IO;
}

/* Full pread/pwrite: 0, or -errno (short read past the end of file: -EIO). */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* ---- key derivation and MACs (OpenSSL only) ---- */

/* HKDF (RFC 5869) over SHA3-256: out = HKDF(ikm, salt, info), through the core's one HKDF
 * (csrc/pqc/hkdf.c, OpenSSL's EVP_KDF); the labels here are C strings. */
static int hkdf_sha3(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                     const char *info, uint8_t *out, size_t out_len)
{
    return qv_hkdf_sha3_256(ikm, ikm_len, salt, salt_len, (const uint8_t *)info, strlen(info),
                            out, out_len) == 0
               ? 0
               : QV_ERR_INTERNAL;
}

static int hmac_sha3(const uint8_t key[32], const uint8_t *prefix, size_t prefix_len,
                     const uint8_t *data, size_t len, uint8_t out[32])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    int ok = 0;
    if (ctx != NULL) {
        OSSL_PARAM params[2];
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA3-256", 0);
        params[1] = OSSL_PARAM_construct_end();
        size_t outl = 0;
        ok = EVP_MAC_init(ctx, key, 32, params) == 1 &&
             (prefix_len == 0 || EVP_MAC_update(ctx, prefix, prefix_len) == 1) &&
             EVP_MAC_update(ctx, data, len) == 1 && EVP_MAC_final(ctx, out, &outl, 32) == 1 &&
             outl == 32;
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : QV_ERR_INTERNAL;
}

static int sha3_256(const uint8_t *data, size_t len, uint8_t out[32])
{
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA3-256", NULL);
    unsigned int outl = 0;
    int ok = md != NULL && EVP_Digest(data, len, out, &outl, md, NULL) == 1 && outl == 32;
    EVP_MD_free(md);
    return ok ? 0 : QV_ERR_INTERNAL;
}

/* One-shot AES-256-GCM for the key wrap (nonce all-zero: the KEK is fresh for every wrap). */
static int wrap_key(const uint8_t kek[32], const uint8_t *aad1, size_t aad1_len,
                    const uint8_t *aad2, size_t aad2_len, const uint8_t *in, uint8_t *out,
                    uint8_t tag[16], int decrypt)
{
    static const uint8_t zero_nonce[12];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, ok = ctx != NULL;
    ok = ok && EVP_CipherInit_ex2(ctx, EVP_aes_256_gcm(), kek, zero_nonce, !decrypt, NULL) == 1;
    ok = ok && EVP_CipherUpdate(ctx, NULL, &outl, aad1, (int)aad1_len) == 1;
    ok = ok && EVP_CipherUpdate(ctx, NULL, &outl, aad2, (int)aad2_len) == 1;
    ok = ok && EVP_CipherUpdate(ctx, out, &outl, in, QV_ENCDISK_KEY_BYTES) == 1;
    if (ok && decrypt)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(ctx, out + outl, &outl) == 1;
    if (ok && !decrypt)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

/* ---- header ---- */

struct header_info {
    int kem_level;
    int aead;
    uint64_t flags;
    uint64_t vsize;
    uint32_t kem_ct_len;
    uint8_t uuid[16];
};

static int kem_ct_len_of(int level)
{
    size_t ct = 0;
    if (qv_mlkem_sizes(level, NULL, NULL, &ct) != 0)
        return -1;
    return (int)ct;
}

/* Structural checks before any cryptography: values the code below relies on. */
static int parse_header(const uint8_t *h, size_t got, struct header_info *hi, char *errbuf,
                        size_t errlen)
{
    if (got < QV_ENCDISK_MAGIC_LEN || memcmp(h, QV_ENCDISK_MAGIC, QV_ENCDISK_MAGIC_LEN) != 0) {
        set_err(errbuf, errlen, "not an encrypted QuantaVirt image (no QVENCDSK magic)");
        return QV_STR_ERR_FORMAT;
    }
    if (got < QV_ENCDISK_HEADER_SIZE) {
        set_err(errbuf, errlen, "encrypted image header truncated (%zu of %d bytes)", got,
                QV_ENCDISK_HEADER_SIZE);
        return QV_STR_ERR_CORRUPT;
    }
    uint32_t version = get_le32(h + ENC_HDR_VERSION);
    if (version != QV_ENCDISK_VERSION) {
        set_err(errbuf, errlen, "encrypted image version %u not supported (this build: %d)",
                version, QV_ENCDISK_VERSION);
        return QV_STR_ERR_NOTSUP;
    }
    hi->flags = get_le64(h + ENC_HDR_FLAGS);
    hi->kem_level = get_le16(h + ENC_HDR_KEM);
    hi->aead = get_le16(h + ENC_HDR_AEAD);
    hi->vsize = get_le64(h + ENC_HDR_VSIZE);
    hi->kem_ct_len = get_le32(h + ENC_HDR_KEM_CT_LEN);
    memcpy(hi->uuid, h + ENC_HDR_UUID, 16);
    const char *bad = NULL;
    if (get_le32(h + ENC_HDR_HEADER_SIZE) != QV_ENCDISK_HEADER_SIZE)
        bad = "header size";
    else if (hi->flags & ~ENC_KNOWN_FLAGS)
        bad = "flags";
    else if (hi->kem_level != 512 && hi->kem_level != 768 && hi->kem_level != 1024)
        bad = "KEM algorithm";
    else if (hi->aead != QV_ENCDISK_AEAD_AES_256_GCM &&
             hi->aead != QV_ENCDISK_AEAD_CHACHA20_POLY1305)
        bad = "AEAD algorithm";
    else if (get_le32(h + ENC_HDR_SECTOR_SIZE) != SS)
        bad = "sector size";
    else if (hi->vsize == 0 || hi->vsize % 512 != 0 || hi->vsize > QV_ENCDISK_MAX_SIZE)
        bad = "virtual size";
    else if ((int)hi->kem_ct_len != kem_ct_len_of(hi->kem_level))
        bad = "KEM ciphertext length";
    if (bad != NULL) {
        set_err(errbuf, errlen, "corrupt encrypted image header: impossible %s", bad);
        return QV_STR_ERR_CORRUPT;
    }
    return 0;
}

static uint64_t meta_bytes(uint64_t nsectors)
{
    uint64_t b = nsectors * ENC_RECORD_SIZE;
    return (b + SS - 1) / SS * SS;
}

static uint64_t data_offset(uint64_t nsectors) { return ENC_META_OFFSET + meta_bytes(nsectors); }

/* FIPS 203 pair-wise consistency: encapsulate to the ek embedded in dk (at [384k, 768k+32))
 * and decapsulate with dk. A damaged secret part (which the fingerprint does not cover) gives
 * a different shared secret. 1 if consistent, 0 if not, -1 if the check could not run. */
static int key_pair_consistent(int kem_level, const uint8_t *dk, size_t dk_len)
{
    size_t ek_len = 0, ct_len = 0;
    if (qv_mlkem_sizes(kem_level, &ek_len, NULL, &ct_len) != 0 || ct_len > 1568)
        return -1;
    size_t ek_off = 384u * (size_t)(kem_level / 256);
    if (ek_off + ek_len + 64 != dk_len)
        return -1;
    uint8_t ct[1568], ss1[QV_MLKEM_SHARED_SECRET_BYTES], ss2[QV_MLKEM_SHARED_SECRET_BYTES];
    int ok = -1;
    if (qv_mlkem_encaps(kem_level, dk + ek_off, ek_len, ct, ct_len, ss1, sizeof(ss1)) == 0 &&
        qv_mlkem_decaps(kem_level, dk, dk_len, ct, ct_len, ss2, sizeof(ss2)) == 0)
        ok = CRYPTO_memcmp(ss1, ss2, sizeof(ss1)) == 0;
    qv_wipe(ss1, sizeof(ss1));
    qv_wipe(ss2, sizeof(ss2));
    return ok;
}

/* Where the host key's decapsulation happens: with the decapsulation key in memory (dk), or
 * on a QUAC 100 card with the secret key of one of its key slots (card != NULL). */
struct host_key {
    const uint8_t *dk;
    size_t dk_len;
    qv_pqc_backend *card;
    uint32_t slot;
};

/* The card's half of verify_header: the slot's public key must have the image's fingerprint,
 * then the card decapsulates. Card failures keep their QUAC100_ERR_* code. */
static int slot_decaps(const uint8_t *h, const struct header_info *hi, const struct host_key *k,
                       uint8_t ss[QV_MLKEM_SHARED_SECRET_BYTES], char *errbuf, size_t errlen)
{
    int alg = hi->kem_level == 512   ? QV_PQC_ML_KEM_512
              : hi->kem_level == 768 ? QV_PQC_ML_KEM_768
                                     : QV_PQC_ML_KEM_1024;
    size_t pkb = 0;
    uint8_t pk[1568], fp[32];
    qv_mlkem_sizes(hi->kem_level, &pkb, NULL, NULL);
    int rc = qv_quac100_slot_public_key(k->card, k->slot, alg, pk, pkb);
    if (rc == PQC_ERR_KEY) {
        set_err(errbuf, errlen, "wrong disk key: QUAC 100 key slot %u does not hold an "
                "ML-KEM-%d key", k->slot, hi->kem_level);
        return rc;
    }
    if (rc != 0) {
        set_err(errbuf, errlen, "QUAC 100 key slot %u: %s", k->slot, qv_strerror(rc));
        return rc;
    }
    if (sha3_256(pk, pkb, fp) != 0)
        return QV_ERR_NOMEM;
    if (CRYPTO_memcmp(fp, h + ENC_HDR_FINGERPRINT, 32) != 0) {
        set_err(errbuf, errlen, "wrong disk key: the image is wrapped to another host key than "
                "the one in QUAC 100 key slot %u", k->slot);
        return PQC_ERR_KEY;
    }
    rc = qv_quac100_slot_decaps(k->card, k->slot, alg, h + ENC_HDR_KEM_CT, hi->kem_ct_len, ss,
                                QV_MLKEM_SHARED_SECRET_BYTES);
    if (rc != 0)
        set_err(errbuf, errlen, "QUAC 100 key slot %u: decapsulation failed: %s", k->slot,
                qv_strerror(rc));
    return rc;
}

/* Unwrap the data key with the host key and check the header MAC.
 * Out: data key and header MAC key (both secrets; the caller wipes them). */
static int verify_header(const uint8_t *h, const struct header_info *hi,
                         const struct host_key *k, uint8_t data_key[32], uint8_t mac_key[32],
                         char *errbuf, size_t errlen)
{
    const uint8_t *dk = k->dk;
    size_t dk_len = k->dk_len;
    uint8_t ss[QV_MLKEM_SHARED_SECRET_BYTES], kek[32], tag[16], mac[32];
    int rc;
    if (k->card != NULL) {
        rc = slot_decaps(h, hi, k, ss, errbuf, errlen);
        if (rc != 0)
            goto out;
        goto unwrap;
    }
    size_t want_dk = 0;
    qv_mlkem_sizes(hi->kem_level, NULL, &want_dk, NULL);
    if (dk == NULL || dk_len != want_dk) {
        set_err(errbuf, errlen,
                "wrong disk key: the image is wrapped to an ML-KEM-%d key (%zu-byte secret "
                "key), the key given has %zu bytes",
                hi->kem_level, want_dk, dk_len);
        return PQC_ERR_KEY;
    }
    /* A FIPS 203 decapsulation key carries H(ek) = SHA3-256(ek) at dk[len-64, len-32): the
     * same value as the header's fingerprint when it is the right key. */
    if (CRYPTO_memcmp(dk + dk_len - 64, h + ENC_HDR_FINGERPRINT, 32) != 0) {
        set_err(errbuf, errlen,
                "wrong disk key: the image is wrapped to another host key (fingerprint "
                "%02x%02x%02x%02x...)",
                h[ENC_HDR_FINGERPRINT], h[ENC_HDR_FINGERPRINT + 1], h[ENC_HDR_FINGERPRINT + 2],
                h[ENC_HDR_FINGERPRINT + 3]);
        return PQC_ERR_KEY;
    }
    rc = qv_mlkem_decaps(hi->kem_level, dk, dk_len, h + ENC_HDR_KEM_CT, hi->kem_ct_len, ss,
                         sizeof(ss));
    if (rc != 0) {
        set_err(errbuf, errlen, "wrong disk key: ML-KEM decapsulation refused the key (%s)",
                qv_strerror(rc));
        rc = PQC_ERR_KEY;
        goto out;
    }
unwrap:
    rc = hkdf_sha3(ss, sizeof(ss), hi->uuid, 16, "quantavirt encdisk v1 key wrap", kek, 32);
    if (rc != 0)
        goto out;
    memcpy(tag, h + ENC_HDR_WRAPPED + 32, 16);
    if (!wrap_key(kek, h, ENC_HDR_WRAP_AAD_LEN, h + ENC_HDR_KEM_CT, hi->kem_ct_len,
                  h + ENC_HDR_WRAPPED, data_key, tag, 1)) {
        /* The key matches the fingerprint: either its secret part is damaged (the
         * fingerprint does not cover it) or the header was changed. */
        if (dk != NULL && key_pair_consistent(hi->kem_level, dk, dk_len) == 0) {
            set_err(errbuf, errlen,
                    "wrong disk key: the ML-KEM-%d host key has this image's fingerprint but "
                    "its secret part is damaged (pair-wise consistency check failed)",
                    hi->kem_level);
            rc = PQC_ERR_KEY;
            goto out;
        }
        set_err(errbuf, errlen,
                "encrypted image header failed authentication (the data-key wrap does not "
                "verify: header or KEM ciphertext changed)");
        rc = QV_STR_ERR_INTEGRITY;
        goto out;
    }
    rc = hkdf_sha3(data_key, 32, hi->uuid, 16, "quantavirt encdisk v1 header mac", mac_key, 32);
    if (rc == 0)
        rc = hmac_sha3(mac_key, NULL, 0, h, ENC_HDR_MAC, mac);
    if (rc == 0 && CRYPTO_memcmp(mac, h + ENC_HDR_MAC, 32) != 0) {
        set_err(errbuf, errlen, "encrypted image header failed authentication (header MAC)");
        rc = QV_STR_ERR_INTEGRITY;
    }
out:
    if (rc != 0) {
        qv_wipe(data_key, 32);
        qv_wipe(mac_key, 32);
    }
    qv_wipe(ss, sizeof(ss));
    qv_wipe(kek, sizeof(kek));
    return rc;
}

/* Fill the KEM part of a header (fingerprint, KEM ciphertext, wrapped key) for host key ek,
 * then the MAC. The other fields must already be set. */
static int seal_header(uint8_t *h, int kem_level, const uint8_t *ek, size_t ek_len,
                       const uint8_t data_key[32], char *errbuf, size_t errlen)
{
    int rc = qv_mlkem_check_public_key(kem_level, ek, ek_len);
    if (rc != 0) {
        set_err(errbuf, errlen, "invalid ML-KEM-%d public key: %s", kem_level, qv_strerror(rc));
        return rc == PQC_ERR_SIZE ? PQC_ERR_KEY : rc;
    }
    int ct_len = kem_ct_len_of(kem_level);
    uint8_t ss[QV_MLKEM_SHARED_SECRET_BYTES], kek[32], mac_key[32];
    put_le16(h + ENC_HDR_KEM, (uint16_t)kem_level);
    put_le32(h + ENC_HDR_KEM_CT_LEN, (uint32_t)ct_len);
    memset(h + ENC_HDR_KEM_CT, 0, ENC_HDR_MAC - ENC_HDR_KEM_CT);
    rc = sha3_256(ek, ek_len, h + ENC_HDR_FINGERPRINT);
    if (rc == 0)
        rc = qv_mlkem_encaps(kem_level, ek, ek_len, h + ENC_HDR_KEM_CT, (size_t)ct_len, ss,
                             sizeof(ss));
    if (rc == 0)
        rc = hkdf_sha3(ss, sizeof(ss), h + ENC_HDR_UUID, 16, "quantavirt encdisk v1 key wrap",
                       kek, 32);
    if (rc == 0 && !wrap_key(kek, h, ENC_HDR_WRAP_AAD_LEN, h + ENC_HDR_KEM_CT, (size_t)ct_len,
                             data_key, h + ENC_HDR_WRAPPED, h + ENC_HDR_WRAPPED + 32, 0))
        rc = QV_ERR_INTERNAL;
    if (rc == 0)
        rc = hkdf_sha3(data_key, 32, h + ENC_HDR_UUID, 16, "quantavirt encdisk v1 header mac",
                       mac_key, 32);
    if (rc == 0)
        rc = hmac_sha3(mac_key, NULL, 0, h, ENC_HDR_MAC, h + ENC_HDR_MAC);
    if (rc != 0)
        set_err(errbuf, errlen, "sealing the encrypted image header failed: %s", qv_strerror(rc));
    qv_wipe(ss, sizeof(ss));
    qv_wipe(kek, sizeof(kek));
    qv_wipe(mac_key, sizeof(mac_key));
    return rc;
}

static int epoch_block_mac(const uint8_t mac_key[32], const uint8_t uuid[16], uint8_t *blk,
                           uint8_t out[32])
{
    return hmac_sha3(mac_key, uuid, 16, blk, ENC_EPOCH_MAC, out);
}

static int write_epoch(int fd, const uint8_t mac_key[32], const uint8_t uuid[16],
                       uint32_t epoch)
{
    uint8_t blk[SS];
    memset(blk, 0, sizeof(blk));
    memcpy(blk, ENC_EPOCH_MAGIC, 8);
    put_le32(blk + ENC_EPOCH_VALUE, epoch);
    int rc = epoch_block_mac(mac_key, uuid, blk, blk + ENC_EPOCH_MAC);
    if (rc != 0)
        return rc;
    rc = pwrite_full(fd, blk, sizeof(blk), ENC_EPOCH_OFFSET);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = -errno;
    return rc < 0 ? io_error_code(-rc) : rc;
}

/* ---- the sector data path ---- */

static const EVP_CIPHER *aead_cipher(int aead)
{
    return aead == QV_ENCDISK_AEAD_AES_256_GCM ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
}

static void sector_aad(const uint8_t uuid[16], uint64_t sector, uint8_t aad[24])
{
    memcpy(aad, uuid, 16);
    put_le64(aad + 16, sector);
}

/* Seal one sector: out = AEAD(key, nonce = stamp, aad = uuid || le64 sector, in). */
static int seal_sector(EVP_CIPHER_CTX *ctx, const uint8_t aad[24], const uint8_t stamp[12],
                       const uint8_t *in, uint8_t *out, uint8_t tag[16])
{
    int outl = 0, finl = 0;
    if (EVP_EncryptInit_ex2(ctx, NULL, NULL, stamp, NULL) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &outl, aad, 24) != 1 ||
        EVP_EncryptUpdate(ctx, out, &outl, in, SS) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + outl, &finl) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
        return QV_ERR_INTERNAL;
    return 0;
}

/* 1 if the sector authenticates (plaintext in out), 0 if not (out then wiped). */
static int open_sector(EVP_CIPHER_CTX *ctx, const uint8_t aad[24], const uint8_t stamp[12],
                       const uint8_t tag[16], const uint8_t *in, uint8_t *out)
{
    int outl = 0, finl = 0;
    int ok = EVP_DecryptInit_ex2(ctx, NULL, NULL, stamp, NULL) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &outl, aad, 24) == 1 &&
             EVP_DecryptUpdate(ctx, out, &outl, in, SS) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, (void *)tag) == 1 &&
             EVP_DecryptFinal_ex(ctx, out + outl, &finl) == 1;
    if (!ok)
        qv_wipe(out, SS); /* never hand out unauthenticated plaintext */
    return ok;
}

static int slot_empty(const uint8_t *rec, int slot)
{
    return all_zero(rec + slot * ENC_SLOT_SIZE, ENC_SLOT_SIZE);
}

/* The record check, which makes a change to any byte of the record visible, also in the slot
 * a read does not use (the AEAD covers only the slot it verifies):
 *  - one slot in use (the steady state): the first 8 bytes of that slot's tag. Cheap; a
 *    changed tag, stamp or check fails the AEAD or the compare, and a changed empty slot makes
 *    the record look pending, whose check below it then fails;
 *  - both slots in use (a write in flight or interrupted): the first 8 bytes of
 *    SHA3-256(record key || le64 sector || record[0, 56)).
 * Security against deliberate changes rests on the AEAD tags (see the format document). */
static int record_check(struct encdisk *d, uint64_t sector, const uint8_t *rec, uint8_t out[8])
{
    int e0 = slot_empty(rec, 0), e1 = slot_empty(rec, 1);
    if (e0 != e1) {
        memcpy(out, rec + (e0 ? ENC_SLOT_SIZE : 0) + ENC_STAMP_SIZE, 8);
        return 0;
    }
    if (e0)
        return QV_STR_ERR_INTEGRITY; /* no entry, but not all-zero either */
    uint8_t idx[8], dig[32];
    unsigned int outl = 0;
    put_le64(idx, sector);
    if (EVP_DigestInit_ex2(d->md, d->sha3, NULL) != 1 ||
        EVP_DigestUpdate(d->md, d->record_key, sizeof(d->record_key)) != 1 ||
        EVP_DigestUpdate(d->md, idx, 8) != 1 ||
        EVP_DigestUpdate(d->md, rec, ENC_RECORD_CHECK) != 1 ||
        EVP_DigestFinal_ex(d->md, dig, &outl) != 1)
        return QV_ERR_INTERNAL;
    memcpy(out, dig, 8);
    return 0;
}

/* 1: record verified; 0: all-zero (never written); negative: check failed. */
static int record_state(struct encdisk *d, uint64_t sector, const uint8_t *rec)
{
    if (all_zero(rec, ENC_RECORD_SIZE))
        return 0;
    uint8_t chk[8];
    int rc = record_check(d, sector, rec, chk);
    if (rc != 0)
        return rc;
    if (CRYPTO_memcmp(chk, rec + ENC_RECORD_CHECK, 8) != 0)
        return QV_STR_ERR_INTEGRITY;
    return 1;
}


/* The slot holding the newer stamp (stamps compare as big-endian numbers). */
static int newer_slot(const uint8_t *rec)
{
    return memcmp(rec + ENC_SLOT_SIZE, rec, ENC_STAMP_SIZE) > 0 ? 1 : 0;
}

static void sector_range_text(uint64_t sector, char *buf, size_t len)
{
    snprintf(buf, len, "sector %llu (guest bytes %llu..%llu)", (unsigned long long)sector,
             (unsigned long long)(sector * SS), (unsigned long long)(sector * SS + SS - 1));
}

/* Read and authenticate sectors [first, first+n) into out (n * SS bytes). */
static int load_sectors(struct encdisk *d, uint64_t first, unsigned n, uint8_t *out_base)
{
    char where[96];
    int rc = pread_full(d->fd, d->recs, (size_t)n * ENC_RECORD_SIZE,
                        ENC_META_OFFSET + first * ENC_RECORD_SIZE);
    if (rc == 0)
        rc = pread_full(d->fd, d->cbuf, (size_t)n * SS, d->data_off + first * SS);
    if (rc != 0)
        return disk_fail(d, io_error_code(-rc), "reading sectors %llu..%llu: %s",
                         (unsigned long long)first, (unsigned long long)(first + n - 1),
                         strerror(-rc));
    for (unsigned i = 0; i < n; i++) {
        uint64_t sector = first + i;
        const uint8_t *rec = d->recs + (size_t)i * ENC_RECORD_SIZE;
        uint8_t *out = out_base + (size_t)i * SS;
        uint8_t aad[24];
        int st = record_state(d, sector, rec);
        if (st < 0) {
            sector_range_text(sector, where, sizeof(where));
            return disk_fail(d, st == QV_ERR_INTERNAL ? st : QV_STR_ERR_INTEGRITY,
                             "%s failed authentication: its metadata record was changed",
                             where);
        }
        if (st == 0) {
            if (d->flags & ENC_FLAG_INITIALIZED) {
                sector_range_text(sector, where, sizeof(where));
                return disk_fail(d, QV_STR_ERR_INTEGRITY,
                                 "%s failed authentication: its metadata record was erased",
                                 where);
            }
            memset(out, 0, SS); /* never written: reads as zeros */
            continue;
        }
        sector_aad(d->uuid, sector, aad);
        const uint8_t *cin = d->cbuf + (size_t)i * SS;
        int first_slot = newer_slot(rec), ok = 0;
        /* The newer entry serves every read except after an interrupted write, when the data
         * may still be the older entry's. */
        for (int k = 0; k < 2 && !ok; k++) {
            int slot = k == 0 ? first_slot : 1 - first_slot;
            const uint8_t *s = rec + slot * ENC_SLOT_SIZE;
            if (!slot_empty(rec, slot))
                ok = open_sector(d->dec, aad, s, s + ENC_STAMP_SIZE, cin, out);
        }
        if (!ok) {
            sector_range_text(sector, where, sizeof(where));
            return disk_fail(d, QV_STR_ERR_INTEGRITY,
                             "%s failed authentication (%s tag mismatch: the sealed data was "
                             "changed, moved or torn)",
                             where, aead_name(d->aead));
        }
    }
    return 0;
}

static void next_stamp(struct encdisk *d, uint8_t stamp[12])
{
    d->seq++;
    uint32_t e = d->epoch;
    stamp[0] = (uint8_t)(e >> 24);
    stamp[1] = (uint8_t)(e >> 16);
    stamp[2] = (uint8_t)(e >> 8);
    stamp[3] = (uint8_t)e;
    for (int i = 0; i < 8; i++)
        stamp[4 + i] = (uint8_t)(d->seq >> (56 - 8 * i));
}

/* After an interrupted write a record lists two entries and the data matches one of them (or
 * neither, if torn): the one to keep is the one that authenticates the data now, so that
 * another interrupted write still leaves the sector readable. Rare: only after a crash. */
static int live_slot(struct encdisk *d, uint64_t sector, const uint8_t *rec)
{
    uint8_t aad[24];
    if (pread_full(d->fd, d->scratch, SS, d->data_off + sector * SS) != 0)
        return -1;
    sector_aad(d->uuid, sector, aad);
    for (int slot = 0; slot < 2; slot++) {
        const uint8_t *s = rec + slot * ENC_SLOT_SIZE;
        if (open_sector(d->dec, aad, s, s + ENC_STAMP_SIZE, d->scratch, d->scratch + SS))
            return slot;
    }
    return -1;
}

/* Seal src (n * SS bytes) as sectors [first, first+n) and write them with the record
 * protocol. */
static int store_sectors(struct encdisk *d, uint64_t first, unsigned n, const uint8_t *src)
{
    char where[96];
    size_t rlen = (size_t)n * ENC_RECORD_SIZE;
    uint64_t roff = ENC_META_OFFSET + first * ENC_RECORD_SIZE;
    int rc = pread_full(d->fd, d->recs, rlen, roff);
    if (rc != 0)
        return disk_fail(d, io_error_code(-rc), "reading records of sectors %llu..%llu: %s",
                         (unsigned long long)first, (unsigned long long)(first + n - 1),
                         strerror(-rc));
    int any_kept = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t sector = first + i;
        uint8_t *rec = d->recs + (size_t)i * ENC_RECORD_SIZE;
        uint8_t *done = d->recs_done + (size_t)i * ENC_RECORD_SIZE;
        uint8_t aad[24];
        int st = record_state(d, sector, rec);
        if (st == QV_ERR_INTERNAL)
            return disk_fail(d, st, "record check failed internally");
        int keep = -1;
        if (st == 1) {
            keep = newer_slot(rec);
            if (slot_empty(rec, keep))
                keep = -1;
            else if (!slot_empty(rec, 1 - keep))
                keep = live_slot(d, sector, rec);
        }
        /* keep < 0: never written, or already unreadable (damaged record, torn data); a full
         * overwrite then repairs the sector. */
        int slot = keep == 0 ? 1 : 0;
        if (keep < 0)
            memset(done, 0, ENC_RECORD_SIZE);
        else
            memcpy(done, rec, ENC_RECORD_SIZE);
        uint8_t *s = done + slot * ENC_SLOT_SIZE;
        next_stamp(d, s);
        sector_aad(d->uuid, sector, aad);
        rc = seal_sector(d->enc, aad, s, src + (size_t)i * SS, d->cbuf + (size_t)i * SS,
                         s + ENC_STAMP_SIZE);
        if (rc == 0)
            rc = record_check(d, sector, done, done + ENC_RECORD_CHECK);
        if (rc != 0) {
            sector_range_text(sector, where, sizeof(where));
            return disk_fail(d, rc, "sealing %s failed", where);
        }
        if (keep >= 0) {
            /* pending = old and new entry; done = new entry alone */
            any_kept = 1;
            memcpy(rec, done, ENC_RECORD_SIZE);
            memset(done + keep * ENC_SLOT_SIZE, 0, ENC_SLOT_SIZE);
            if (record_check(d, sector, done, done + ENC_RECORD_CHECK) != 0)
                return disk_fail(d, QV_ERR_INTERNAL, "record check failed internally");
        }
        /* keep < 0: the pending record stays the old one, so until step 3 the sector still
         * reads as before (zeros when never written). */
    }
    /* 1. pending records (old and new entry), 2. data, 3. final records (new entry only). */
    rc = any_kept ? pwrite_full(d->fd, d->recs, rlen, roff) : 0;
    if (rc == 0)
        rc = pwrite_full(d->fd, d->cbuf, (size_t)n * SS, d->data_off + first * SS);
    if (rc == 0)
        rc = pwrite_full(d->fd, d->recs_done, rlen, roff);
    if (rc != 0)
        return disk_fail(d, io_error_code(-rc), "writing sectors %llu..%llu: %s",
                         (unsigned long long)first, (unsigned long long)(first + n - 1),
                         strerror(-rc));
    return 0;
}

/* Copy between an iovec array (starting `skip` bytes in) and a flat buffer. */
static void iov_copy(const struct iovec *iov, int iovcnt, size_t skip, uint8_t *flat, size_t len,
                     int to_iov)
{
    for (int i = 0; i < iovcnt && len > 0; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t take = iov[i].iov_len - skip;
        if (take > len)
            take = len;
        uint8_t *base = (uint8_t *)iov[i].iov_base + skip;
        if (to_iov)
            memcpy(base, flat, take);
        else
            memcpy(flat, base, take);
        flat += take;
        len -= take;
        skip = 0;
    }
}

/* The address of bytes [skip, skip+len) of an iovec array if one element holds them all. */
static uint8_t *iov_span(const struct iovec *iov, int iovcnt, size_t skip, size_t len)
{
    for (int i = 0; i < iovcnt; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        return iov[i].iov_len - skip >= len ? (uint8_t *)iov[i].iov_base + skip : NULL;
    }
    return NULL;
}

/* Reads and writes of any byte range: whole chunks of sectors, read-modify-write at the
 * edges. iov == NULL writes zeroes. */
static int encdisk_rw(struct encdisk *d, uint64_t offset, const struct iovec *iov, int iovcnt,
                      uint64_t total, int write)
{
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    if (offset > d->base.size || total > d->base.size - offset)
        rc = disk_fail(d, QV_STR_ERR_RANGE,
                       "access of %llu bytes at %llu beyond the end of the disk (%llu bytes)",
                       (unsigned long long)total, (unsigned long long)offset,
                       (unsigned long long)d->base.size);
    else if (write && d->base.readonly)
        rc = disk_fail(d, QV_STR_ERR_READONLY, "write to a read-only disk");
    if (rc != 0) {
        pthread_mutex_unlock(&d->lock);
        return rc;
    }
    uint64_t pos = 0;
    while (pos < total && rc == 0) {
        uint64_t cur = offset + pos;
        uint64_t first = cur / SS;
        size_t in_off = (size_t)(cur % SS);
        uint64_t want = total - pos;
        uint64_t span = ((uint64_t)in_off + want + SS - 1) / SS;
        unsigned n = span > CHUNK_SECTORS ? CHUNK_SECTORS : (unsigned)span;
        size_t len = (size_t)n * SS - in_off;
        if (len > want)
            len = (size_t)want;
        if (!write) {
            /* Decrypt into our own buffer, never into the caller's: that may be guest
             * memory, and the guest must not see plaintext before its tag verified. */
            rc = load_sectors(d, first, n, d->pbuf);
            if (rc == 0)
                iov_copy(iov, iovcnt, (size_t)pos, d->pbuf + in_off, len, 1);
        } else {
            size_t end = in_off + len; /* end within the chunk */
            /* Whole sectors from one contiguous buffer: seal straight from there (a guest
             * changing its buffer meanwhile only garbles its own data: the tag is computed
             * over the ciphertext in our buffer, so what is stored stays consistent). */
            const uint8_t *direct = iov != NULL && in_off == 0 && len == (size_t)n * SS
                                        ? iov_span(iov, iovcnt, (size_t)pos, len)
                                        : NULL;
            if (direct == NULL && (in_off != 0 || (n == 1 && end != SS)))
                rc = load_sectors(d, first, 1, d->pbuf);
            if (direct == NULL && rc == 0 && end % SS != 0 && n > 1)
                rc = load_sectors(d, first + n - 1, 1, d->pbuf + (size_t)(n - 1) * SS);
            if (rc == 0) {
                if (direct == NULL && iov != NULL)
                    iov_copy(iov, iovcnt, (size_t)pos, d->pbuf + in_off, len, 0);
                else if (direct == NULL)
                    memset(d->pbuf + in_off, 0, len);
                rc = store_sectors(d, first, n, direct != NULL ? direct : d->pbuf);
            }
        }
        pos += len;
    }
    if (rc != 0 && !write)
        qv_wipe(d->pbuf, (size_t)CHUNK_SECTORS * SS);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static uint64_t iov_total(const struct iovec *iov, int iovcnt)
{
    uint64_t t = 0;
    for (int i = 0; i < iovcnt; i++)
        t += iov[i].iov_len;
    return t;
}

static int op_readv(struct qv_disk *disk, uint64_t offset, const struct iovec *iov, int iovcnt)
{
    struct encdisk *d = (struct encdisk *)disk;
    return encdisk_rw(d, offset, iov, iovcnt, iov_total(iov, iovcnt), 0);
}

static int op_writev(struct qv_disk *disk, uint64_t offset, const struct iovec *iov, int iovcnt)
{
    struct encdisk *d = (struct encdisk *)disk;
    return encdisk_rw(d, offset, iov, iovcnt, iov_total(iov, iovcnt), 1);
}

static int op_flush(struct qv_disk *disk)
{
    struct encdisk *d = (struct encdisk *)disk;
    if (d->base.readonly)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    if (fdatasync(d->fd) != 0)
        rc = disk_fail(d, io_error_code(errno), "flush: %s", strerror(errno));
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* Discard is advisory for virtio-blk: the sealed sectors stay (nothing leaks, reads still
 * return the last data written). */
static int op_discard(struct qv_disk *disk, uint64_t offset, uint64_t length)
{
    struct encdisk *d = (struct encdisk *)disk;
    int rc = d->base.readonly ? QV_STR_ERR_READONLY : 0;
    pthread_mutex_lock(&d->lock);
    if (offset > d->base.size || length > d->base.size - offset)
        rc = disk_fail(d, QV_STR_ERR_RANGE, "discard beyond the end of the disk");
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int op_write_zeroes(struct qv_disk *disk, uint64_t offset, uint64_t length)
{
    return encdisk_rw((struct encdisk *)disk, offset, NULL, 0, length, 1);
}

static void encdisk_free(struct encdisk *d)
{
    if (d == NULL)
        return;
    EVP_CIPHER_CTX_free(d->enc); /* frees and cleanses the expanded keys */
    EVP_CIPHER_CTX_free(d->dec);
    EVP_MD_CTX_free(d->md);
    EVP_MD_free(d->sha3);
    qv_wipe(d->record_key, sizeof(d->record_key));
    if (d->pbuf != NULL) {
        qv_wipe(d->pbuf, (size_t)CHUNK_SECTORS * SS);
        free(d->pbuf);
    }
    free(d->cbuf);
    free(d->recs);
    free(d->recs_done);
    if (d->scratch != NULL) {
        qv_wipe(d->scratch, 2 * SS);
        free(d->scratch);
    }
    if (d->fd >= 0)
        close(d->fd);
    free(d->path);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static void op_close(struct qv_disk *disk)
{
    encdisk_free((struct encdisk *)disk);
}

static const struct qv_disk_ops encdisk_ops = {
    .readv = op_readv,
    .writev = op_writev,
    .flush = op_flush,
    .discard = op_discard,
    .write_zeroes = op_write_zeroes,
    .close = op_close,
};

/* ---- open / create / rekey ---- */

static int read_header(int fd, uint8_t h[QV_ENCDISK_HEADER_SIZE], struct header_info *hi,
                       char *errbuf, size_t errlen)
{
    size_t got = 0;
    while (got < QV_ENCDISK_HEADER_SIZE) {
        ssize_t n = pread(fd, h + got, QV_ENCDISK_HEADER_SIZE - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            set_err(errbuf, errlen, "reading the header: %s", strerror(errno));
            return QV_STR_ERR_IO;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return parse_header(h, got, hi, errbuf, errlen);
}

static int lock_file(int fd, int exclusive, char *errbuf, size_t errlen)
{
    if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
        return 0;
    if (errno == EWOULDBLOCK) {
        set_err(errbuf, errlen, "the image is in use by another process (locked)");
        return QV_ERR_BUSY;
    }
    set_err(errbuf, errlen, "locking the image: %s", strerror(errno));
    return QV_STR_ERR_IO;
}

/* Build the open disk from a verified header and its data key (wiped by the caller). */
static int encdisk_setup(int fd, const char *path, const struct header_info *hi, int readonly,
                         int sync_writes, const uint8_t data_key[32],
                         const uint8_t mac_key[32], struct encdisk **out, char *errbuf,
                         size_t errlen)
{
    uint8_t sector_key[32];
    struct encdisk *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        set_err(errbuf, errlen, "out of memory");
        return QV_ERR_NOMEM;
    }
    d->fd = -1;
    pthread_mutex_init(&d->lock, NULL);
    d->base.ops = &encdisk_ops;
    d->base.size = hi->vsize;
    d->base.format = QV_DISK_FORMAT_ENCRYPTED;
    d->base.readonly = readonly;
    d->sync_writes = sync_writes;
    d->aead = hi->aead;
    d->flags = hi->flags;
    memcpy(d->uuid, hi->uuid, 16);
    d->nsectors = (hi->vsize + SS - 1) / SS;
    d->data_off = data_offset(d->nsectors);
    d->path = strdup(path);
    int rc = QV_ERR_NOMEM;
    if (d->path == NULL || posix_memalign((void **)&d->pbuf, SS, (size_t)CHUNK_SECTORS * SS) ||
        posix_memalign((void **)&d->cbuf, SS, (size_t)CHUNK_SECTORS * SS) ||
        (d->recs = malloc(CHUNK_SECTORS * ENC_RECORD_SIZE)) == NULL ||
        (d->recs_done = malloc(CHUNK_SECTORS * ENC_RECORD_SIZE)) == NULL ||
        (d->scratch = malloc(2 * SS)) == NULL) {
        set_err(errbuf, errlen, "out of memory");
        goto fail;
    }
    rc = QV_ERR_INTERNAL;
    d->enc = EVP_CIPHER_CTX_new();
    d->dec = EVP_CIPHER_CTX_new();
    d->md = EVP_MD_CTX_new();
    d->sha3 = EVP_MD_fetch(NULL, "SHA3-256", NULL);
    const char *info = hi->aead == QV_ENCDISK_AEAD_AES_256_GCM
                           ? "quantavirt encdisk v1 sector key AES-256-GCM"
                           : "quantavirt encdisk v1 sector key ChaCha20-Poly1305";
    if (d->enc == NULL || d->dec == NULL || d->md == NULL || d->sha3 == NULL ||
        hkdf_sha3(data_key, 32, hi->uuid, 16, info, sector_key, 32) != 0 ||
        hkdf_sha3(data_key, 32, hi->uuid, 16, "quantavirt encdisk v1 record mac", d->record_key,
                  32) != 0 ||
        EVP_EncryptInit_ex2(d->enc, aead_cipher(hi->aead), sector_key, NULL, NULL) != 1 ||
        EVP_DecryptInit_ex2(d->dec, aead_cipher(hi->aead), sector_key, NULL, NULL) != 1) {
        set_err(errbuf, errlen, "setting up %s failed in libcrypto", aead_name(hi->aead));
        goto fail;
    }
    qv_wipe(sector_key, sizeof(sector_key));

    /* The epoch block: authenticated like the header; read-write opens take a new epoch and
     * make it durable before any sector is written, so no stamp (nonce) is ever reused. */
    uint8_t blk[SS], mac[32];
    rc = pread_full(fd, blk, sizeof(blk), ENC_EPOCH_OFFSET);
    if (rc != 0) {
        set_err(errbuf, errlen, "reading the epoch block: %s", strerror(-rc));
        rc = QV_STR_ERR_CORRUPT;
        goto fail;
    }
    if (memcmp(blk, ENC_EPOCH_MAGIC, 8) != 0 || epoch_block_mac(mac_key, hi->uuid, blk, mac) != 0 ||
        CRYPTO_memcmp(mac, blk + ENC_EPOCH_MAC, 32) != 0) {
        set_err(errbuf, errlen, "encrypted image header failed authentication (epoch block)");
        rc = QV_STR_ERR_INTEGRITY;
        goto fail;
    }
    d->epoch = get_le32(blk + ENC_EPOCH_VALUE);
    if (!readonly) {
        if (d->epoch == UINT32_MAX) {
            set_err(errbuf, errlen, "the image used up its 2^32 read-write opens; convert it "
                                    "to a new encrypted image");
            rc = QV_STR_ERR_NOTSUP;
            goto fail;
        }
        d->epoch++;
        rc = write_epoch(fd, mac_key, hi->uuid, d->epoch);
        if (rc != 0) {
            set_err(errbuf, errlen, "writing the epoch block: %s", qv_strerror(rc));
            goto fail;
        }
    }
    d->fd = fd;
    *out = d;
    return 0;
fail:
    qv_wipe(sector_key, sizeof(sector_key));
    encdisk_free(d);
    return rc;
}

static int open_flags(int readonly, int cache)
{
    int flags = O_CLOEXEC | (readonly ? O_RDONLY : O_RDWR);
    /* cache=none/directsync: O_DSYNC without O_DIRECT (records are written in 64-byte units,
     * below O_DIRECT's alignment); writethrough: O_DSYNC. Each write is then durable in
     * protocol order, so a power loss, too, leaves every sector old or new. */
    if (!readonly && cache != QV_DISK_CACHE_WRITEBACK)
        flags |= O_DSYNC;
    return flags;
}

static int open_encrypted(const char *path, const struct qv_disk_options *opts,
                          const struct host_key *key, struct qv_disk **out, char *errbuf,
                          size_t errlen)
{
    if (path == NULL || out == NULL) {
        set_err(errbuf, errlen, "missing path or output");
        return QV_ERR_INVAL;
    }
    *out = NULL;
    int readonly = opts != NULL && opts->readonly;
    int cache = opts != NULL ? (int)opts->cache : QV_DISK_CACHE_WRITEBACK;
    int fd = open(path, open_flags(readonly, cache));
    if (fd < 0) {
        int e = errno;
        set_err(errbuf, errlen, "cannot open %s: %s", path, strerror(e));
        return e == ENOENT ? QV_ERR_NOENT : e == EACCES || e == EPERM ? QV_ERR_PERM
                                                                      : QV_STR_ERR_IO;
    }
    uint8_t h[QV_ENCDISK_HEADER_SIZE], data_key[32], mac_key[32];
    struct header_info hi;
    struct encdisk *d = NULL;
    struct stat st;
    int rc = lock_file(fd, !readonly, errbuf, errlen);
    if (rc == 0)
        rc = read_header(fd, h, &hi, errbuf, errlen);
    if (rc != 0)
        goto fail;
    rc = verify_header(h, &hi, key, data_key, mac_key, errbuf, errlen);
    if (rc != 0)
        goto fail;
    uint64_t nsectors = (hi.vsize + SS - 1) / SS;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < data_offset(nsectors) + nsectors * SS) {
        set_err(errbuf, errlen, "encrypted image truncated: %lld bytes, the layout needs %llu",
                (long long)st.st_size,
                (unsigned long long)(data_offset(nsectors) + nsectors * SS));
        rc = QV_STR_ERR_CORRUPT;
    } else {
        rc = encdisk_setup(fd, path, &hi, readonly, cache != QV_DISK_CACHE_WRITEBACK, data_key,
                           mac_key, &d, errbuf, errlen);
    }
    qv_wipe(data_key, sizeof(data_key));
    qv_wipe(mac_key, sizeof(mac_key));
    if (rc != 0)
        goto fail;
    *out = &d->base;
    return 0;
fail:
    close(fd);
    return rc;
}

int qv_disk_open_encrypted(const char *path, const struct qv_disk_options *opts,
                           const uint8_t *host_dk, size_t host_dk_len, struct qv_disk **out,
                           char *errbuf, size_t errlen)
{
    const struct host_key key = {.dk = host_dk, .dk_len = host_dk_len};
    return open_encrypted(path, opts, &key, out, errbuf, errlen);
}

int qv_disk_open_encrypted_slot(const char *path, const struct qv_disk_options *opts,
                                qv_pqc_backend *card, uint32_t slot, struct qv_disk **out,
                                char *errbuf, size_t errlen)
{
    if (card == NULL || qv_pqc_backend_kind(card) != QV_PQC_BACKEND_QUAC100) {
        set_err(errbuf, errlen, "opening through a key slot needs a quac100 backend handle");
        return PQC_ERR_BACKEND;
    }
    const struct host_key key = {.card = card, .slot = slot};
    return open_encrypted(path, opts, &key, out, errbuf, errlen);
}

int qv_disk_create_encrypted(const char *path, uint64_t size, int kem_level, int aead,
                             const uint8_t *host_ek, size_t host_ek_len, unsigned flags,
                             char *errbuf, size_t errlen)
{
    if (path == NULL) {
        set_err(errbuf, errlen, "missing path");
        return QV_ERR_INVAL;
    }
    if (size == 0 || size % 512 != 0 || size > QV_ENCDISK_MAX_SIZE) {
        set_err(errbuf, errlen, "size %llu is not a positive multiple of 512 up to %llu bytes",
                (unsigned long long)size, (unsigned long long)QV_ENCDISK_MAX_SIZE);
        return QV_ERR_INVAL;
    }
    if (kem_ct_len_of(kem_level) < 0) {
        set_err(errbuf, errlen, "unknown KEM ML-KEM-%d (512, 768 or 1024)", kem_level);
        return PQC_ERR_ALGORITHM;
    }
    if (aead != QV_ENCDISK_AEAD_AES_256_GCM && aead != QV_ENCDISK_AEAD_CHACHA20_POLY1305) {
        set_err(errbuf, errlen, "unknown AEAD %d", aead);
        return PQC_ERR_ALGORITHM;
    }
    if (flags & ~QV_ENCDISK_CREATE_PREALLOCATE) {
        set_err(errbuf, errlen, "unknown create flags 0x%x", flags);
        return QV_ERR_INVAL;
    }
    uint8_t h[QV_ENCDISK_HEADER_SIZE], data_key[32], mac_key[32];
    memset(h, 0, sizeof(h));
    memcpy(h + ENC_HDR_MAGIC, QV_ENCDISK_MAGIC, QV_ENCDISK_MAGIC_LEN);
    put_le32(h + ENC_HDR_VERSION, QV_ENCDISK_VERSION);
    put_le32(h + ENC_HDR_HEADER_SIZE, QV_ENCDISK_HEADER_SIZE);
    put_le64(h + ENC_HDR_FLAGS,
             (flags & QV_ENCDISK_CREATE_PREALLOCATE) ? ENC_FLAG_INITIALIZED : 0);
    put_le16(h + ENC_HDR_AEAD, (uint16_t)aead);
    put_le32(h + ENC_HDR_SECTOR_SIZE, SS);
    put_le64(h + ENC_HDR_VSIZE, size);
    if (RAND_bytes(h + ENC_HDR_UUID, 16) != 1 || RAND_bytes(data_key, 32) != 1) {
        set_err(errbuf, errlen, "random number generation failed");
        return PQC_ERR_RANDOM;
    }
    h[ENC_HDR_UUID + 6] = (uint8_t)((h[ENC_HDR_UUID + 6] & 0x0f) | 0x40); /* RFC 4122 v4 */
    h[ENC_HDR_UUID + 8] = (uint8_t)((h[ENC_HDR_UUID + 8] & 0x3f) | 0x80);
    int rc = seal_header(h, kem_level, host_ek, host_ek_len, data_key, errbuf, errlen);
    if (rc != 0) {
        qv_wipe(data_key, sizeof(data_key));
        return rc;
    }
    struct header_info hi;
    parse_header(h, sizeof(h), &hi, NULL, 0);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        set_err(errbuf, errlen, "cannot create %s: %s", path, strerror(e));
        qv_wipe(data_key, sizeof(data_key));
        return e == EEXIST ? QV_ERR_EXIST : e == ENOENT ? QV_ERR_NOENT
               : e == EACCES || e == EPERM ? QV_ERR_PERM : QV_STR_ERR_IO;
    }
    uint64_t nsectors = (size + SS - 1) / SS;
    struct encdisk *d = NULL;
    rc = hkdf_sha3(data_key, 32, hi.uuid, 16, "quantavirt encdisk v1 header mac", mac_key, 32);
    if (rc == 0) {
        int e = pwrite_full(fd, h, sizeof(h), 0);
        if (e == 0 && ftruncate(fd, (off_t)(data_offset(nsectors) + nsectors * SS)) != 0)
            e = -errno;
        if (e != 0) {
            set_err(errbuf, errlen, "writing %s (%llu bytes): %s", path,
                    (unsigned long long)(data_offset(nsectors) + nsectors * SS), strerror(-e));
            rc = io_error_code(-e);
        } else {
            rc = write_epoch(fd, mac_key, hi.uuid, 0);
            if (rc != 0)
                set_err(errbuf, errlen, "writing %s: %s", path, qv_strerror(rc));
        }
    }
    if (rc == 0 && (flags & QV_ENCDISK_CREATE_PREALLOCATE)) {
        /* Seal every sector once, so an erased record is detectable later. */
        rc = encdisk_setup(fd, path, &hi, 0, 0, data_key, mac_key, &d, errbuf, errlen);
        if (rc == 0) {
            rc = encdisk_rw(d, 0, NULL, 0, size, 1);
            if (rc != 0)
                set_err(errbuf, errlen, "%s", d->last_error);
            d->fd = -1; /* still ours below */
            encdisk_free(d);
        }
    }
    if (rc == 0 && fsync(fd) != 0) {
        set_err(errbuf, errlen, "fsync %s: %s", path, strerror(errno));
        rc = QV_STR_ERR_IO;
    }
    qv_wipe(data_key, sizeof(data_key));
    qv_wipe(mac_key, sizeof(mac_key));
    close(fd);
    if (rc != 0)
        unlink(path);
    return rc;
}

int qv_disk_rekey_encrypted(const char *path, const uint8_t *old_dk, size_t old_dk_len,
                            int new_kem_level, const uint8_t *new_ek, size_t new_ek_len,
                            char *errbuf, size_t errlen)
{
    if (path == NULL) {
        set_err(errbuf, errlen, "missing path");
        return QV_ERR_INVAL;
    }
    if (kem_ct_len_of(new_kem_level) < 0) {
        set_err(errbuf, errlen, "unknown KEM ML-KEM-%d (512, 768 or 1024)", new_kem_level);
        return PQC_ERR_ALGORITHM;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        set_err(errbuf, errlen, "cannot open %s: %s", path, strerror(e));
        return e == ENOENT ? QV_ERR_NOENT : QV_STR_ERR_IO;
    }
    uint8_t h[QV_ENCDISK_HEADER_SIZE], data_key[32], mac_key[32];
    struct header_info hi;
    int rc = lock_file(fd, 1, errbuf, errlen);
    if (rc == 0)
        rc = read_header(fd, h, &hi, errbuf, errlen);
    const struct host_key old_key = {.dk = old_dk, .dk_len = old_dk_len};
    if (rc == 0)
        rc = verify_header(h, &hi, &old_key, data_key, mac_key, errbuf, errlen);
    if (rc == 0) {
        rc = seal_header(h, new_kem_level, new_ek, new_ek_len, data_key, errbuf, errlen);
        qv_wipe(data_key, sizeof(data_key));
        qv_wipe(mac_key, sizeof(mac_key));
    }
    if (rc == 0) {
        /* One aligned 4 KiB write: a killed rekey leaves the old or the new header. */
        int e = pwrite_full(fd, h, sizeof(h), 0);
        if (e == 0 && fdatasync(fd) != 0)
            e = -errno;
        if (e != 0) {
            set_err(errbuf, errlen, "writing the new header: %s", strerror(-e));
            rc = io_error_code(-e);
        }
    }
    close(fd);
    return rc;
}

int qv_disk_is_encrypted(const uint8_t *header, size_t len)
{
    return header != NULL && len >= QV_ENCDISK_MAGIC_LEN &&
           memcmp(header, QV_ENCDISK_MAGIC, QV_ENCDISK_MAGIC_LEN) == 0;
}

const char *qv_disk_encrypted_last_error(const struct qv_disk *disk)
{
    if (disk == NULL || disk->ops != &encdisk_ops)
        return "";
    return ((const struct encdisk *)disk)->last_error;
}

/* ---- flat wrappers ---- */

/* The options of the flat wrappers. */
static struct qv_disk_options flat_options(int readonly, int cache)
{
    struct qv_disk_options o = {.format = QV_DISK_FORMAT_ENCRYPTED,
                                .cache = (uint32_t)cache,
                                .readonly = readonly != 0,
                                .discard = 0};
    return o;
}

int qv_encdisk_open(const char *path, int readonly, int cache, const uint8_t *host_dk,
                    size_t host_dk_len, struct qv_disk **out, char *errbuf, size_t errlen)
{
    struct qv_disk_options o = flat_options(readonly, cache);
    return qv_disk_open_encrypted(path, &o, host_dk, host_dk_len, out, errbuf, errlen);
}

int qv_encdisk_open_slot(const char *path, int readonly, int cache, qv_pqc_backend *card,
                         uint32_t slot, struct qv_disk **out, char *errbuf, size_t errlen)
{
    struct qv_disk_options o = flat_options(readonly, cache);
    return qv_disk_open_encrypted_slot(path, &o, card, slot, out, errbuf, errlen);
}

static int is_encdisk(const struct qv_disk *disk)
{
    return disk != NULL && disk->ops == &encdisk_ops;
}

int qv_encdisk_read(struct qv_disk *disk, uint64_t offset, void *buf, size_t len)
{
    if (!is_encdisk(disk) || (buf == NULL && len != 0))
        return QV_ERR_INVAL;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    return disk->ops->readv(disk, offset, &iov, 1);
}

int qv_encdisk_write(struct qv_disk *disk, uint64_t offset, const void *buf, size_t len)
{
    if (!is_encdisk(disk) || (buf == NULL && len != 0))
        return QV_ERR_INVAL;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return disk->ops->writev(disk, offset, &iov, 1);
}

int qv_encdisk_flush(struct qv_disk *disk)
{
    return is_encdisk(disk) ? disk->ops->flush(disk) : QV_ERR_INVAL;
}

int qv_encdisk_write_zeroes(struct qv_disk *disk, uint64_t offset, uint64_t len)
{
    return is_encdisk(disk) ? disk->ops->write_zeroes(disk, offset, len) : QV_ERR_INVAL;
}

uint64_t qv_encdisk_size(const struct qv_disk *disk)
{
    return disk != NULL ? disk->size : 0;
}

void qv_encdisk_close(struct qv_disk *disk)
{
    if (is_encdisk(disk))
        disk->ops->close(disk);
}

/* ---- benchmark hook ---- */

int qv_encdisk_aead_bench(int aead, uint64_t count, uint64_t *bytes_out)
{
    if (aead != QV_ENCDISK_AEAD_AES_256_GCM && aead != QV_ENCDISK_AEAD_CHACHA20_POLY1305)
        return PQC_ERR_ALGORITHM;
    uint8_t key[32], aad[24], stamp[12] = {0}, tag[16];
    uint8_t *in = NULL, *out = NULL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int rc = QV_ERR_NOMEM;
    if (ctx == NULL || posix_memalign((void **)&in, 64, SS) || posix_memalign((void **)&out, 64, SS))
        goto done;
    rc = QV_ERR_INTERNAL;
    if (RAND_bytes(key, sizeof(key)) != 1 ||
        EVP_EncryptInit_ex2(ctx, aead_cipher(aead), key, NULL, NULL) != 1)
        goto done;
    memset(in, 0x5a, SS);
    memset(aad, 0, sizeof(aad));
    rc = 0;
    for (uint64_t i = 0; i < count && rc == 0; i++) {
        put_le64(stamp + 4, i + 1);
        put_le64(aad + 16, i);
        rc = seal_sector(ctx, aad, stamp, in, out, tag);
    }
    if (bytes_out != NULL)
        *bytes_out = rc == 0 ? count * SS : 0;
done:
    qv_wipe(key, sizeof(key));
    EVP_CIPHER_CTX_free(ctx);
    free(in);
    free(out);
    return rc;
}
