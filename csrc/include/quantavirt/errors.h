/* The one table of QuantaVirt error codes, shared by C and (through cffi) Python.
 * Codes are negative; 0 is success. Ranges: -1..-99 core, -100..-199 PQC, -200..-299 QUAC 100,
 * -300..-399 migration, -400..-499 storage, -500..-599 network. Values are stable: never
 * renumber, only append. */
#ifndef QUANTAVIRT_ERRORS_H
#define QUANTAVIRT_ERRORS_H

#define QV_ERROR_TABLE(X)                                                            \
    X(QV_SUCCESS, 0, "success")                                                      \
    X(QV_ERR_INVAL, -1, "invalid argument")                                          \
    X(QV_ERR_NOENT, -2, "no such file, object or network")                           \
    X(QV_ERR_NOVMX, -3, "no hardware virtualization (KVM) available")               \
    X(QV_ERR_NODEV, -4, "device or host capability not available")                  \
    X(QV_ERR_EXIST, -5, "already exists")                                            \
    X(QV_ERR_NOMEM, -6, "out of memory")                                             \
    X(QV_ERR_PERM, -7, "permission denied")                                          \
    X(QV_ERR_IO, -8, "input/output error")                                           \
    X(QV_ERR_BUSY, -9, "resource busy")                                              \
    X(QV_ERR_STATE, -10, "operation not valid in the current state")                 \
    X(QV_ERR_TIMEOUT, -11, "timed out")                                              \
    X(QV_ERR_NOTSUP, -12, "not supported")                                           \
    X(QV_ERR_KVM, -13, "KVM ioctl failed")                                           \
    X(QV_ERR_GUEST, -14, "guest failure (triple fault or emulation failure)")        \
    X(QV_ERR_INTERNAL, -15, "internal error")                                        \
    X(QV_ERR_AGAIN, -16, "try again")                                                \
    X(PQC_ERR_ALGORITHM, -100, "unknown or unsupported PQC algorithm")               \
    X(PQC_ERR_KEY, -101, "invalid key")                                              \
    X(PQC_ERR_CIPHERTEXT, -102, "invalid ciphertext")                                \
    X(PQC_ERR_SIGNATURE, -103, "invalid signature encoding")                         \
    X(PQC_ERR_VERIFY, -104, "signature verification failed")                         \
    X(PQC_ERR_SIZE, -105, "wrong buffer size")                                       \
    X(PQC_ERR_BACKEND, -106, "PQC backend not available")                            \
    X(PQC_ERR_RANDOM, -107, "random number generation failed")                       \
    X(PQC_ERR_CONTEXT, -108, "context string too long")                              \
    X(PQC_ERR_SEED, -109, "invalid seed")                                            \
    X(PQC_ERR_INTERNAL, -110, "internal PQC error")                                  \
    X(QUAC100_ERR_NO_DEVICE, -200, "no QUAC 100 device")                             \
    X(QUAC100_ERR_OPEN, -201, "cannot open the QUAC 100 device")                     \
    X(QUAC100_ERR_VERSION, -202, "unsupported QUAC 100 interface version")           \
    X(QUAC100_ERR_IOCTL, -203, "QUAC 100 ioctl failed")                              \
    X(QUAC100_ERR_DEVICE, -204, "the QUAC 100 card reported an error")               \
    X(QUAC100_ERR_REPLY, -205, "malformed reply from the QUAC 100 card")             \
    X(QUAC100_ERR_TIMEOUT, -206, "QUAC 100 operation timed out")                     \
    X(QUAC100_ERR_NOTSUP, -207, "operation not supported by the QUAC 100 card")      \
    X(QUAC100_ERR_GONE, -208, "the QUAC 100 device went away")                       \
    X(QUAC100_ERR_BUSY, -209, "the QUAC 100 card is busy")                           \
    X(QUAC100_ERR_SLOT, -210, "no such QUAC 100 key slot, or the slot is empty")    \
    X(QV_MIG_ERR_CONNECT, -300, "cannot connect to the migration peer")              \
    X(QV_MIG_ERR_AUTH, -301, "migration peer authentication failed")                 \
    X(QV_MIG_ERR_VERSION, -302, "migration peer version mismatch")                   \
    X(QV_MIG_ERR_CPU, -303, "CPU models incompatible for migration")                 \
    X(QV_MIG_ERR_PROTOCOL, -304, "migration protocol error")                         \
    X(QV_MIG_ERR_NOT_ALLOWED, -305, "migration not allowed for this VM")             \
    X(QV_STR_ERR_FORMAT, -400, "unknown or mismatched disk image format")            \
    X(QV_STR_ERR_CORRUPT, -401, "corrupt disk image")                                \
    X(QV_STR_ERR_IO, -402, "disk I/O error")                                         \
    X(QV_STR_ERR_READONLY, -403, "disk is read-only")                                \
    X(QV_STR_ERR_NOSPC, -404, "no space left for the disk image")                    \
    X(QV_STR_ERR_INTEGRITY, -405, "disk sector failed authentication")               \
    X(QV_STR_ERR_NOTSUP, -407, "disk feature not supported")                         \
    X(QV_STR_ERR_RANGE, -408, "access beyond the end of the disk")                   \
    X(QV_NET_ERR_NOENT, -500, "network not found")                                   \
    X(QV_NET_ERR_TAP, -501, "tap device error")                                      \
    X(QV_NET_ERR_VHOST, -502, "vhost-net error")                                     \
    X(QV_NET_ERR_TUNNEL, -503, "PQC tunnel error")                                   \
    X(QV_NET_ERR_NOTSUP, -504, "network feature not supported")

enum qv_error {
#define QV_ERROR_ENUM(name, value, text) name = value,
    QV_ERROR_TABLE(QV_ERROR_ENUM)
#undef QV_ERROR_ENUM
};

/* Human-readable text of a code ("invalid argument"); unknown codes get a fixed text. */
const char *qv_strerror(int code);
/* Symbolic name of a code ("QV_ERR_INVAL"); NULL-safe: unknown codes give "QV_ERR_UNKNOWN". */
const char *qv_strerror_name(int code);
/* The table, for bindings: number of entries and the code at an index (0 <= i < count). */
int qv_error_count(void);
int qv_error_code_at(int index);

#endif
