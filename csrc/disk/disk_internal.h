/* Private helpers shared by the block backends (disk.c, raw.c, qcow2*.c). */
#ifndef QV_DISK_INTERNAL_H
#define QV_DISK_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "quantavirt/disk.h"
#include "quantavirt/errors.h"

/* Longest backing chain we follow; deeper chains are refused as corrupt (loops end here too). */
#define QV_DISK_MAX_CHAIN 16

/* The images already open on the way down a backing chain (canonical paths), to refuse loops. */
struct qv_disk_chain {
    char *paths[QV_DISK_MAX_CHAIN];
    int depth;
};

/* Format a message into errbuf and return code (for open-time failures). */
int qv_disk_errf(char *errbuf, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Record a message for a failing access on disk->error and return code. */
int qv_disk_fail(struct qv_disk *disk, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Take an OFD lock on the whole image (shared for readers, exclusive for a writer) so two
 * processes, ours or QEMU's, never write one image at once. QV_ERR_BUSY when it is in use. */
int qv_disk_lock(int fd, int exclusive, const char *path, char *errbuf, size_t errlen);
/* Map an errno from open(2) to a QV code. */
int qv_disk_errno_code(int err);

/* Open any supported format (auto-detected when format is AUTO) as part of a chain. */
int qv_disk_open_in_chain(const char *path, const struct qv_disk_options *opts,
                          struct qv_disk_chain *chain, struct qv_disk **out, char *errbuf,
                          size_t errlen);

int qv_raw_open(const char *path, const struct qv_disk_options *opts, struct qv_disk **out,
                char *errbuf, size_t errlen);
int qv_qcow2_open(const char *path, const struct qv_disk_options *opts,
                  struct qv_disk_chain *chain, struct qv_disk **out, char *errbuf,
                  size_t errlen);

/* iovec helpers. */
size_t qv_iov_total(const struct iovec *iov, int iovcnt);
void qv_iov_copy_out(const struct iovec *iov, int iovcnt, size_t skip, void *buf, size_t len);
void qv_iov_copy_in(const struct iovec *iov, int iovcnt, size_t skip, const void *buf,
                    size_t len);
void qv_iov_zero(const struct iovec *iov, int iovcnt, size_t skip, size_t len);
/* The part [skip, skip+len) of iov as at most outmax entries; returns the count or -1. */
int qv_disk_iov_slice(const struct iovec *iov, int iovcnt, size_t skip, size_t len,
                 struct iovec *out, int outmax);

/* Whole-buffer positional I/O retrying short transfers and EINTR. Reads past the end of the
 * file fill zeros. Return 0 or -errno. iov arrays are consumed (modified). */
int qv_pread_full(int fd, void *buf, size_t len, uint64_t off);
int qv_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int qv_preadv_full(int fd, struct iovec *iov, int iovcnt, uint64_t off);
int qv_pwritev_full(int fd, struct iovec *iov, int iovcnt, uint64_t off);

#endif
