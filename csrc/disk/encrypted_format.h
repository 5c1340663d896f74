/* On-disk layout of the encrypted format (docs/encrypted-disk-format.md). Private to
 * csrc/disk/encrypted*.c. All integers are little-endian unless noted. */
#ifndef QV_DISK_ENCRYPTED_FORMAT_H
#define QV_DISK_ENCRYPTED_FORMAT_H

#include <stdint.h>

#include "quantavirt/disk_encrypted.h"

/* Block 0: the header. */
#define ENC_HDR_MAGIC 0        /* 8 bytes "QVENCDSK" */
#define ENC_HDR_VERSION 8      /* u32 */
#define ENC_HDR_HEADER_SIZE 12 /* u32, 4096 */
#define ENC_HDR_FLAGS 16       /* u64 */
#define ENC_HDR_UUID 24        /* 16 bytes, random (RFC 4122 version 4) */
#define ENC_HDR_KEM 40         /* u16: 512, 768 or 1024 (ML-KEM parameter set) */
#define ENC_HDR_AEAD 42        /* u16: enum qv_encdisk_aead */
#define ENC_HDR_SECTOR_SIZE 44 /* u32, 4096 */
#define ENC_HDR_VSIZE 48       /* u64, virtual size in bytes */
#define ENC_HDR_KEM_CT_LEN 56  /* u32 */
#define ENC_HDR_FINGERPRINT 64 /* 32 bytes: SHA3-256 of the host ML-KEM public key */
#define ENC_HDR_WRAPPED 96     /* 32 bytes wrapped data key + 16 bytes tag */
#define ENC_HDR_WRAP_AAD_LEN 96 /* the wrap's AAD: header bytes [0, 96) and the KEM ciphertext */
#define ENC_HDR_KEM_CT 256     /* up to 1568 bytes */
#define ENC_HDR_MAC 4064       /* 32 bytes HMAC-SHA3-256 over bytes [0, 4064) */

#define ENC_FLAG_INITIALIZED UINT64_C(1) /* every sector was sealed at least once */
#define ENC_KNOWN_FLAGS ENC_FLAG_INITIALIZED

/* Block 1: the epoch block (the session counter that makes nonces unique). */
#define ENC_EPOCH_OFFSET 4096
#define ENC_EPOCH_MAGIC "QVEPOCH1"
#define ENC_EPOCH_VALUE 8   /* u32 */
#define ENC_EPOCH_MAC 4064  /* HMAC-SHA3-256 over uuid || block bytes [0, 4064) */

/* Blocks from 2 on: the record area (one 64-byte record per sector), then the data area. */
#define ENC_META_OFFSET 8192
#define ENC_RECORD_SIZE 64
#define ENC_STAMP_SIZE 12 /* the nonce: epoch (u32 BE) || sequence (u64 BE) */
#define ENC_TAG_SIZE 16
#define ENC_SLOT_SIZE (ENC_STAMP_SIZE + ENC_TAG_SIZE) /* 28; slots at 0 and 28 */
#define ENC_RECORD_CHECK 56 /* 8 bytes; see record_check() in encrypted.c */

#endif
