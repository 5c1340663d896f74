/* QUAC 100 PQC accelerator: the Linux character-device ioctl ABI (/dev/quac100_N).
 *
 * Written by the QuantaVirt project from the vendor's public interface description
 * (docs: shared/reference/quac100-interface.md); no vendor code. Where the vendor's own
 * headers disagree, the choice made here is noted, and this header is the only place the
 * project spells the ABI:
 *   - Layout: natural alignment, every struct padded explicitly to a multiple of 8 bytes
 *     (the vendor says "8-byte packed"), so the ABI is identical for any compiler.
 *   - Buffer sizes are u64, next to their u64 user addresses (no hidden padding).
 *   - Sizes are FIPS 203 / FIPS 204 final (not the SDK's pre-standard Dilithium sizes).
 *   - device_info firmware version is three u16 fields.
 *   - QuantaVirt extension, in space the vendor leaves reserved: KEM_KEYGEN / SIGN_KEYGEN
 *     with QUAC100_KEYGEN_FLAG_SEED take the FIPS seed (ML-KEM d || z, 64 bytes; ML-DSA xi,
 *     32 bytes) at seed_addr/seed_size, for deterministic key generation. A card that ignores
 *     the flag is caught by the host (the key does not match the seed), never trusted.
 *   - VERIFY reports an invalid signature as QUAC100_RES_VERIFICATION_FAILED; only 0 means
 *     valid.
 *   - Key slots (0xC0-0xC5): the vendor names the operations but publishes no layouts, so the
 *     structs below are the project's own (same rules: explicit padding, u64 buffers, int32
 *     result + reserved at the end). A slot keeps an ML-KEM key pair on the card; the secret
 *     key never leaves it: there is no secret-key export, and KEM_DECAPS with
 *     QUAC100_FLAG_KEY_SLOT takes the slot number in sk_addr (sk_size 0) instead of a key.
 *     0xC1 (import) and 0xC3 are reserved here; the project does not use them.
 */
#ifndef QUAC100_IOCTL_H
#define QUAC100_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define QUAC100_IOC_MAGIC 'Q'
#define QUAC100_INTERFACE_VERSION 0x00010000u
#define QUAC100_MAX_PAYLOAD (16u << 20)
#define QUAC100_MAX_DEVICES 16
#define QUAC100_CAP_SIMULATOR 0x80000000u

/* Algorithm identifiers: family in bits 15..12 (0x1 KEM, 0x2 signature). */
enum quac100_algorithm {
    QUAC100_ALG_ML_KEM_512 = 0x1100,
    QUAC100_ALG_ML_KEM_768 = 0x1101,
    QUAC100_ALG_ML_KEM_1024 = 0x1102,
    QUAC100_ALG_ML_DSA_44 = 0x2100,
    QUAC100_ALG_ML_DSA_65 = 0x2101,
    QUAC100_ALG_ML_DSA_87 = 0x2102,
    QUAC100_ALG_SLH_DSA_SHA2_128S = 0x2200,
    QUAC100_ALG_SLH_DSA_SHA2_128F = 0x2201,
    QUAC100_ALG_SLH_DSA_SHA2_192S = 0x2202,
    QUAC100_ALG_SLH_DSA_SHA2_192F = 0x2203,
    QUAC100_ALG_SLH_DSA_SHA2_256S = 0x2204,
    QUAC100_ALG_SLH_DSA_SHA2_256F = 0x2205,
};

#define QUAC100_ALG_FAMILY(alg) (((alg) >> 12) & 0xF)
#define QUAC100_FAMILY_KEM 0x1
#define QUAC100_FAMILY_SIGN 0x2

/* Result codes the card reports in the `result` field (positive; 0 = success). */
enum quac100_result {
    QUAC100_OK = 0x000,
    QUAC100_RES_UNKNOWN = 0x001,
    QUAC100_RES_NOT_INITIALIZED = 0x002,
    QUAC100_RES_ALREADY_INITIALIZED = 0x003,
    QUAC100_RES_INVALID_PARAMETER = 0x004,
    QUAC100_RES_NULL_POINTER = 0x005,
    QUAC100_RES_BUFFER_TOO_SMALL = 0x006,
    QUAC100_RES_OUT_OF_MEMORY = 0x007,
    QUAC100_RES_NOT_SUPPORTED = 0x008,
    QUAC100_RES_TIMEOUT = 0x009,
    QUAC100_RES_CANCELLED = 0x00A,
    QUAC100_RES_BUSY = 0x00B,
    QUAC100_RES_OVERFLOW = 0x00C,
    QUAC100_RES_NO_DEVICE = 0x100,
    QUAC100_RES_DEVICE_NOT_FOUND = 0x101,
    QUAC100_RES_DEVICE_OPEN_FAILED = 0x102,
    QUAC100_RES_HARDWARE_ERROR = 0x10B,
    QUAC100_RES_INVALID_ALGORITHM = 0x200,
    QUAC100_RES_INVALID_KEY = 0x201,
    QUAC100_RES_INVALID_KEY_SIZE = 0x202,
    QUAC100_RES_INVALID_CIPHERTEXT = 0x203,
    QUAC100_RES_INVALID_SIGNATURE = 0x204,
    QUAC100_RES_DECAPSULATION_FAILED = 0x205,
    QUAC100_RES_VERIFICATION_FAILED = 0x206,
    QUAC100_RES_KEY_GENERATION_FAILED = 0x207,
    QUAC100_RES_SIGNING_FAILED = 0x208,
    QUAC100_RES_ENCAPSULATION_FAILED = 0x209,
    QUAC100_RES_QRNG_BASE = 0x400,
    QUAC100_RES_BATCH_BASE = 0x500,
    QUAC100_RES_SECURITY_BASE = 0x600,
};

struct quac100_device_info {
    __u32 struct_size;        /* sizeof(struct quac100_device_info): lets the ABI grow */
    __u32 driver_version;
    __u32 device_index;
    __u32 reserved0;
    char device_name[64];
    char serial_number[32];
    __u16 vendor_id;
    __u16 device_id;
    __u16 subsystem_id;
    __u16 revision;
    __u16 fw_major;
    __u16 fw_minor;
    __u16 fw_patch;
    __u16 reserved1;
    __u32 capabilities;
    __u32 status;
    __u32 max_batch_size;
    __u32 max_pending_jobs;
    __u32 key_slots_total;
    __u32 key_slots_used;
    __u32 reserved[8];
};

#define QUAC100_KEYGEN_FLAG_SEED 0x1u

struct quac100_kem_keygen {
    __u32 algorithm;
    __u32 flags;
    __u64 pk_addr;
    __u64 pk_size;
    __u64 sk_addr;
    __u64 sk_size;
    __s32 result;
    __u32 reserved0;
    __u64 seed_addr;          /* extension: with QUAC100_KEYGEN_FLAG_SEED */
    __u64 seed_size;
};

struct quac100_kem_encaps {
    __u32 algorithm;
    __u32 flags;
    __u64 pk_addr;
    __u64 pk_size;
    __u64 ct_addr;
    __u64 ct_size;
    __u64 ss_addr;
    __u64 ss_size;
    __s32 result;
    __u32 reserved[5];
};

struct quac100_kem_decaps {
    __u32 algorithm;
    __u32 flags;
    __u64 ct_addr;
    __u64 ct_size;
    __u64 sk_addr;
    __u64 sk_size;
    __u64 ss_addr;
    __u64 ss_size;
    __s32 result;
    __u32 reserved[5];
};

/* SIGN_KEYGEN uses struct quac100_kem_keygen. */

#define QUAC100_SIGN_FLAG_DETERMINISTIC 0x1u

struct quac100_sign {
    __u32 algorithm;
    __u32 flags;
    __u64 sk_addr;
    __u64 sk_size;
    __u64 msg_addr;
    __u64 msg_size;
    __u64 sig_addr;
    __u64 sig_size;
    __u64 sig_actual;         /* out: bytes written to sig */
    __u64 context_addr;
    __u64 context_size;
    __s32 result;
    __u32 reserved[5];
};

struct quac100_verify {
    __u32 algorithm;
    __u32 flags;
    __u64 pk_addr;
    __u64 pk_size;
    __u64 msg_addr;
    __u64 msg_size;
    __u64 sig_addr;
    __u64 sig_size;
    __u64 context_addr;
    __u64 context_size;
    __s32 result;             /* 0 valid, QUAC100_RES_VERIFICATION_FAILED invalid */
    __u32 reserved[5];
};

struct quac100_random {
    __u64 buf_addr;
    __u64 length;
    __u32 quality;
    __s32 result;
    __u32 reserved[4];
};

struct quac100_self_test {
    __u32 tests;              /* bitmask of tests to run */
    __u32 flags;
    __u32 tests_passed;
    __u32 tests_failed;
    __u64 duration_us;
    __s32 result;
    __u32 reserved[5];
};

struct quac100_health {
    __u32 state;
    __u32 flags;
    __s32 temp_core;
    __s32 temp_memory;
    __u32 voltage_mv;
    __u32 power_mw;
    __u32 clock_mhz;
    __u32 entropy_bits;
    __u64 uptime_sec;
    __u64 ops_completed;
    __u64 ops_failed;
    __u32 reserved[4];
};

/* BATCH_SUBMIT (the project's reading of the vendor's field list): items_addr points at
 * item_count request structs of one operation, item_size bytes apart (exactly that operation's
 * struct); flags names the operation (QUAC100_BATCH_OP_*). The card runs the items in order,
 * each as its single-operation ioctl would (outputs through the item's *_addr fields, its
 * `result` field written in place), and answers with job_id and, when the job is finished,
 * completed + failed == item_count. A job still running after timeout_ms is reported by
 * BATCH_STATUS (status QUAC100_BATCH_RUNNING) until it is DONE; BATCH_CANCEL ends it. */
#define QUAC100_BATCH_OP_KEM_KEYGEN 1u
#define QUAC100_BATCH_OP_KEM_ENCAPS 2u
#define QUAC100_BATCH_OP_KEM_DECAPS 3u
#define QUAC100_BATCH_OP_MASK 0xFFu

#define QUAC100_BATCH_PENDING 0u
#define QUAC100_BATCH_RUNNING 1u
#define QUAC100_BATCH_DONE 2u
#define QUAC100_BATCH_CANCELLED 3u

struct quac100_batch_submit {
    __u64 items_addr;
    __u32 item_count;
    __u32 item_size;
    __u32 flags;              /* QUAC100_BATCH_OP_* */
    __u32 timeout_ms;
    __u64 job_id;             /* out */
    __u32 completed;          /* out: items that succeeded */
    __u32 failed;             /* out: items whose result is not 0 */
    __s32 result;
    __u32 reserved[5];
};

struct quac100_batch_status {
    __u64 job_id;
    __u32 status;             /* out: QUAC100_BATCH_* */
    __u32 progress;           /* out: percent */
    __u32 completed;
    __u32 failed;
    __s32 result;
    __u32 reserved[5];
};

/* ---- key slots (project layout, see the top of this file) ---------------------------- */

#define QUAC100_KEY_LABEL_LEN 32
/* KEM_DECAPS flag: decapsulate with the secret key of slot sk_addr (sk_size must be 0). */
#define QUAC100_FLAG_KEY_SLOT 0x2u

/* KEY_GENERATE: a fresh ML-KEM pair into the first free slot; answers the slot number and
 * the public key. QUAC100_RES_OUT_OF_MEMORY when every slot is used. */
struct quac100_key_generate {
    __u32 algorithm;
    __u32 flags;              /* 0 */
    __u32 slot;               /* out */
    __u32 reserved0;
    char label[QUAC100_KEY_LABEL_LEN]; /* NUL-padded, printable ASCII */
    __u64 pk_addr;
    __u64 pk_size;
    __s32 result;
    __u32 reserved[3];
};

/* KEY_EXPORT_PUBLIC: the public key of a used slot (QUAC100_RES_INVALID_KEY if empty). */
struct quac100_key_export {
    __u32 slot;
    __u32 algorithm;          /* out: the slot's algorithm */
    __u64 pk_addr;
    __u64 pk_size;
    __s32 result;
    __u32 reserved[3];
};

/* KEY_DELETE: the card wipes the slot (QUAC100_RES_INVALID_KEY if it was empty). */
struct quac100_key_delete {
    __u32 slot;
    __s32 result;
    __u32 reserved[2];
};

/* KEY_LIST: one entry per used slot, in slot order, at most max_entries. */
struct quac100_key_entry {
    __u32 slot;
    __u32 algorithm;
    char label[QUAC100_KEY_LABEL_LEN];
};

struct quac100_key_list {
    __u64 entries_addr;       /* struct quac100_key_entry[max_entries] */
    __u32 max_entries;
    __u32 count;              /* out: entries written */
    __s32 result;
    __u32 reserved[3];
};

struct quac100_counters {
    __u64 kem_keygen;
    __u64 kem_encaps;
    __u64 kem_decaps;
    __u64 sign_keygen;
    __u64 sign;
    __u64 verify;
    __u64 random_bytes;
    __u64 dma_read_bytes;
    __u64 dma_write_bytes;
    __u64 errors_total;
};

#define QUAC100_IOC_GET_VERSION _IOR(QUAC100_IOC_MAGIC, 0x00, __u32)
#define QUAC100_IOC_GET_INFO _IOR(QUAC100_IOC_MAGIC, 0x01, struct quac100_device_info)
#define QUAC100_IOC_GET_CAPS _IOR(QUAC100_IOC_MAGIC, 0x02, __u32)
#define QUAC100_IOC_GET_STATUS _IOR(QUAC100_IOC_MAGIC, 0x03, __u32)
#define QUAC100_IOC_RESET _IOW(QUAC100_IOC_MAGIC, 0x04, __u32)
#define QUAC100_IOC_KEM_KEYGEN _IOWR(QUAC100_IOC_MAGIC, 0x40, struct quac100_kem_keygen)
#define QUAC100_IOC_KEM_ENCAPS _IOWR(QUAC100_IOC_MAGIC, 0x41, struct quac100_kem_encaps)
#define QUAC100_IOC_KEM_DECAPS _IOWR(QUAC100_IOC_MAGIC, 0x42, struct quac100_kem_decaps)
#define QUAC100_IOC_SIGN_KEYGEN _IOWR(QUAC100_IOC_MAGIC, 0x43, struct quac100_kem_keygen)
#define QUAC100_IOC_SIGN _IOWR(QUAC100_IOC_MAGIC, 0x44, struct quac100_sign)
#define QUAC100_IOC_VERIFY _IOWR(QUAC100_IOC_MAGIC, 0x45, struct quac100_verify)
#define QUAC100_IOC_RANDOM _IOWR(QUAC100_IOC_MAGIC, 0x46, struct quac100_random)
#define QUAC100_IOC_BATCH_SUBMIT _IOWR(QUAC100_IOC_MAGIC, 0x80, struct quac100_batch_submit)
#define QUAC100_IOC_BATCH_STATUS _IOWR(QUAC100_IOC_MAGIC, 0x81, struct quac100_batch_status)
#define QUAC100_IOC_BATCH_CANCEL _IOW(QUAC100_IOC_MAGIC, 0x82, __u64)
#define QUAC100_IOC_KEY_GENERATE _IOWR(QUAC100_IOC_MAGIC, 0xC0, struct quac100_key_generate)
#define QUAC100_IOC_KEY_EXPORT_PUBLIC _IOWR(QUAC100_IOC_MAGIC, 0xC2, struct quac100_key_export)
#define QUAC100_IOC_KEY_DELETE _IOWR(QUAC100_IOC_MAGIC, 0xC4, struct quac100_key_delete)
#define QUAC100_IOC_KEY_LIST _IOWR(QUAC100_IOC_MAGIC, 0xC5, struct quac100_key_list)
#define QUAC100_IOC_DIAG_SELF_TEST _IOWR(QUAC100_IOC_MAGIC, 0xE0, struct quac100_self_test)
#define QUAC100_IOC_DIAG_GET_HEALTH _IOR(QUAC100_IOC_MAGIC, 0xE1, struct quac100_health)
#define QUAC100_IOC_DIAG_GET_TEMP _IOR(QUAC100_IOC_MAGIC, 0xE2, __s32)
#define QUAC100_IOC_DIAG_GET_COUNTERS _IOR(QUAC100_IOC_MAGIC, 0xE3, struct quac100_counters)

/* The layout is part of the ABI: catch any accidental change at compile time. */
_Static_assert(sizeof(struct quac100_device_info) == 184, "quac100_device_info size");
_Static_assert(sizeof(struct quac100_kem_keygen) == 64, "quac100_kem_keygen size");
_Static_assert(sizeof(struct quac100_kem_encaps) == 80, "quac100_kem_encaps size");
_Static_assert(sizeof(struct quac100_kem_decaps) == 80, "quac100_kem_decaps size");
_Static_assert(sizeof(struct quac100_sign) == 104, "quac100_sign size");
_Static_assert(sizeof(struct quac100_verify) == 96, "quac100_verify size");
_Static_assert(sizeof(struct quac100_random) == 40, "quac100_random size");
_Static_assert(sizeof(struct quac100_batch_submit) == 64, "quac100_batch_submit size");
_Static_assert(sizeof(struct quac100_batch_status) == 48, "quac100_batch_status size");
_Static_assert(sizeof(struct quac100_key_generate) == 80, "quac100_key_generate size");
_Static_assert(sizeof(struct quac100_key_export) == 40, "quac100_key_export size");
_Static_assert(sizeof(struct quac100_key_delete) == 16, "quac100_key_delete size");
_Static_assert(sizeof(struct quac100_key_entry) == 40, "quac100_key_entry size");
_Static_assert(sizeof(struct quac100_key_list) == 32, "quac100_key_list size");
/* Field offsets the host and the card must agree on beyond the sizes. */
_Static_assert(__builtin_offsetof(struct quac100_kem_keygen, result) == 40, "keygen result");
_Static_assert(__builtin_offsetof(struct quac100_kem_keygen, seed_addr) == 48, "keygen seed");
_Static_assert(__builtin_offsetof(struct quac100_kem_encaps, result) == 56, "encaps result");
_Static_assert(__builtin_offsetof(struct quac100_kem_decaps, result) == 56, "decaps result");
_Static_assert(__builtin_offsetof(struct quac100_sign, sig_actual) == 56, "sign sig_actual");
_Static_assert(__builtin_offsetof(struct quac100_sign, result) == 80, "sign result");
_Static_assert(__builtin_offsetof(struct quac100_verify, result) == 72, "verify result");
_Static_assert(__builtin_offsetof(struct quac100_batch_submit, result) == 40, "batch result");
_Static_assert(__builtin_offsetof(struct quac100_batch_status, result) == 24, "status result");
_Static_assert(__builtin_offsetof(struct quac100_key_generate, result) == 64, "keygen slot result");
_Static_assert(__builtin_offsetof(struct quac100_key_export, result) == 24, "export result");
_Static_assert(__builtin_offsetof(struct quac100_key_list, result) == 16, "key list result");
_Static_assert(__builtin_offsetof(struct quac100_device_info, capabilities) == 128,
               "device_info capabilities");

#endif
