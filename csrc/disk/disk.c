/* Block backends: opening (format detection, backing-chain bookkeeping), the checked
 * wrappers every caller goes through, and the small I/O helpers the formats share. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/disk_internal.h"

int qv_disk_errf(char *errbuf, size_t errlen, int code, const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int qv_disk_fail(struct qv_disk *disk, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(disk->error, sizeof(disk->error), fmt, ap);
    va_end(ap);
    return code;
}

int qv_disk_errno_code(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
        return QV_ERR_NOENT;
    case EACCES:
    case EPERM:
        return QV_ERR_PERM;
    case EROFS:
        return QV_STR_ERR_READONLY;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return QV_STR_ERR_NOSPC;
    case ENOMEM:
        return QV_ERR_NOMEM;
    default:
        return QV_STR_ERR_IO;
    }
}

int qv_disk_lock(int fd, int exclusive, const char *path, char *errbuf, size_t errlen)
{
    struct flock fl = {.l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno == EAGAIN || errno == EACCES)
        return qv_disk_errf(errbuf, errlen, QV_ERR_BUSY,
                            "%s: the image is in use by another process (%s lock held)", path,
                            exclusive ? "a" : "a write");
    return 0; /* the file system has no locks: nothing to protect against */
}

/* ---- iovec helpers ---- */

size_t qv_iov_total(const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    return total;
}

/* Walk [skip, skip+len) of iov calling fn on each piece. */
#define IOV_WALK(iov, iovcnt, skip, len, BODY)                                              \
    do {                                                                                    \
        size_t walk_skip = (skip), walk_left = (len), walk_done = 0;                        \
        for (int wi = 0; wi < (iovcnt) && walk_left; wi++) {                                \
            if (walk_skip >= (iov)[wi].iov_len) {                                           \
                walk_skip -= (iov)[wi].iov_len;                                             \
                continue;                                                                   \
            }                                                                               \
            uint8_t *piece = (uint8_t *)(iov)[wi].iov_base + walk_skip;                     \
            size_t piece_len = (iov)[wi].iov_len - walk_skip;                               \
            if (piece_len > walk_left)                                                      \
                piece_len = walk_left;                                                      \
            walk_skip = 0;                                                                  \
            BODY;                                                                           \
            walk_done += piece_len;                                                         \
            walk_left -= piece_len;                                                         \
        }                                                                                   \
        (void)walk_done; /* bodies that do not need it (clang warns otherwise) */           \
    } while (0)

void qv_iov_copy_out(const struct iovec *iov, int iovcnt, size_t skip, void *buf, size_t len)
{
    IOV_WALK(iov, iovcnt, skip, len, memcpy((uint8_t *)buf + walk_done, piece, piece_len));
}

void qv_iov_copy_in(const struct iovec *iov, int iovcnt, size_t skip, const void *buf,
                    size_t len)
{
    IOV_WALK(iov, iovcnt, skip, len,
             memcpy(piece, (const uint8_t *)buf + walk_done, piece_len));
}

void qv_iov_zero(const struct iovec *iov, int iovcnt, size_t skip, size_t len)
{
    IOV_WALK(iov, iovcnt, skip, len, memset(piece, 0, piece_len));
}

int qv_disk_iov_slice(const struct iovec *iov, int iovcnt, size_t skip, size_t len,
                 struct iovec *out, int outmax)
{
    int n = 0, overflow = 0;
    IOV_WALK(iov, iovcnt, skip, len, {
        if (n == outmax) {
            overflow = 1;
            break;
        }
        out[n].iov_base = piece;
        out[n].iov_len = piece_len;
        n++;
    });
    return overflow ? -1 : n;
}

/* ---- positional I/O ---- */

int qv_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0) { /* end of file: the rest reads as zeros */
            memset(p, 0, len);
            return 0;
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int qv_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t r = pwrite(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Drop the first n bytes of an iov array in place; returns the new start index. */
static int iov_advance(struct iovec *iov, int iovcnt, int start, size_t n)
{
    while (start < iovcnt && n) {
        if (n >= iov[start].iov_len) {
            n -= iov[start].iov_len;
            start++;
        } else {
            iov[start].iov_base = (uint8_t *)iov[start].iov_base + n;
            iov[start].iov_len -= n;
            n = 0;
        }
    }
    while (start < iovcnt && iov[start].iov_len == 0)
        start++;
    return start;
}

int qv_preadv_full(int fd, struct iovec *iov, int iovcnt, uint64_t off)
{
    int i = iov_advance(iov, iovcnt, 0, 0);
    while (i < iovcnt) {
        int cnt = iovcnt - i > IOV_MAX ? IOV_MAX : iovcnt - i;
        ssize_t r = preadv(fd, iov + i, cnt, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0) {
            for (; i < iovcnt; i++)
                memset(iov[i].iov_base, 0, iov[i].iov_len);
            return 0;
        }
        off += (uint64_t)r;
        i = iov_advance(iov, iovcnt, i, (size_t)r);
    }
    return 0;
}

int qv_pwritev_full(int fd, struct iovec *iov, int iovcnt, uint64_t off)
{
    int i = iov_advance(iov, iovcnt, 0, 0);
    while (i < iovcnt) {
        int cnt = iovcnt - i > IOV_MAX ? IOV_MAX : iovcnt - i;
        ssize_t r = pwritev(fd, iov + i, cnt, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO;
        off += (uint64_t)r;
        i = iov_advance(iov, iovcnt, i, (size_t)r);
    }
    return 0;
}

/* ---- opening ---- */

static const uint8_t QCOW2_MAGIC_BYTES[4] = {'Q', 'F', 'I', 0xfb};

int qv_disk_open_in_chain(const char *path, const struct qv_disk_options *opts,
                          struct qv_disk_chain *chain, struct qv_disk **out, char *errbuf,
                          size_t errlen)
{
    uint8_t magic[4] = {0};
    int fd, is_qcow2;
    ssize_t n;

    *out = NULL;
    if (!path || !opts)
        return qv_disk_errf(errbuf, errlen, QV_ERR_INVAL, "no image path or options");
    if (opts->force_share && !opts->readonly)
        return qv_disk_errf(errbuf, errlen, QV_ERR_INVAL,
                            "force_share is only for read-only opens");
    if (opts->cache > QV_DISK_CACHE_DIRECTSYNC)
        return qv_disk_errf(errbuf, errlen, QV_ERR_INVAL, "unknown cache mode %u", opts->cache);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qv_disk_errf(errbuf, errlen, qv_disk_errno_code(errno), "%s: cannot open: %s",
                            path, strerror(errno));
    do
        n = pread(fd, magic, sizeof(magic), 0);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return qv_disk_errf(errbuf, errlen, QV_STR_ERR_IO, "%s: cannot read: %s", path,
                            strerror(errno));
    is_qcow2 = n == (ssize_t)sizeof(magic) && memcmp(magic, QCOW2_MAGIC_BYTES, 4) == 0;

    switch (opts->format) {
    case QV_DISK_FORMAT_AUTO:
        break;
    case QV_DISK_FORMAT_RAW:
        if (is_qcow2)
            return qv_disk_errf(errbuf, errlen, QV_STR_ERR_FORMAT,
                                "%s: format raw was given but the image is qcow2", path);
        break;
    case QV_DISK_FORMAT_QCOW2:
        if (!is_qcow2)
            return qv_disk_errf(errbuf, errlen, QV_STR_ERR_FORMAT,
                                "%s: format qcow2 was given but the image has no qcow2 magic "
                                "(raw image?)",
                                path);
        break;
    case QV_DISK_FORMAT_ENCRYPTED:
        return qv_disk_errf(errbuf, errlen, QV_STR_ERR_NOTSUP,
                            "%s: the encrypted format is not handled by the block layer yet",
                            path);
    default:
        return qv_disk_errf(errbuf, errlen, QV_ERR_INVAL, "unknown disk format %u",
                            opts->format);
    }
    if (is_qcow2)
        return qv_qcow2_open(path, opts, chain, out, errbuf, errlen);
    return qv_raw_open(path, opts, out, errbuf, errlen);
}

int qv_disk_open(const char *path, const struct qv_disk_options *opts, struct qv_disk **out,
                 char *errbuf, size_t errlen)
{
    struct qv_disk_chain chain;
    int rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!out)
        return qv_disk_errf(errbuf, errlen, QV_ERR_INVAL, "no output pointer");
    memset(&chain, 0, sizeof(chain));
    rc = qv_disk_open_in_chain(path, opts, &chain, out, errbuf, errlen);
    for (int i = 0; i < chain.depth; i++)
        free(chain.paths[i]);
    return rc;
}

/* ---- checked wrappers ---- */

static int check_range(struct qv_disk *disk, uint64_t offset, uint64_t len)
{
    if (offset > disk->size || len > disk->size - offset)
        return qv_disk_fail(disk, QV_STR_ERR_RANGE,
                            "request at %llu length %llu is beyond the disk size %llu",
                            (unsigned long long)offset, (unsigned long long)len,
                            (unsigned long long)disk->size);
    return 0;
}

static int check_write(struct qv_disk *disk, uint64_t offset, uint64_t len)
{
    if (disk->readonly)
        return qv_disk_fail(disk, QV_STR_ERR_READONLY, "the disk is read-only");
    return check_range(disk, offset, len);
}

int qv_disk_readv(struct qv_disk *disk, uint64_t offset, const struct iovec *iov, int iovcnt)
{
    if (!disk || iovcnt < 0 || (iovcnt && !iov))
        return QV_ERR_INVAL;
    size_t len = qv_iov_total(iov, iovcnt);
    int rc = check_range(disk, offset, len);
    if (rc || len == 0)
        return rc;
    return disk->ops->readv(disk, offset, iov, iovcnt);
}

int qv_disk_writev(struct qv_disk *disk, uint64_t offset, const struct iovec *iov, int iovcnt)
{
    if (!disk || iovcnt < 0 || (iovcnt && !iov))
        return QV_ERR_INVAL;
    size_t len = qv_iov_total(iov, iovcnt);
    int rc = check_write(disk, offset, len);
    if (rc || len == 0)
        return rc;
    return disk->ops->writev(disk, offset, iov, iovcnt);
}

int qv_disk_read(struct qv_disk *disk, uint64_t offset, void *buf, size_t len)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    if (!buf && len)
        return QV_ERR_INVAL;
    return qv_disk_readv(disk, offset, &iov, 1);
}

int qv_disk_write(struct qv_disk *disk, uint64_t offset, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    if (!buf && len)
        return QV_ERR_INVAL;
    return qv_disk_writev(disk, offset, &iov, 1);
}

int qv_disk_flush(struct qv_disk *disk)
{
    if (!disk)
        return QV_ERR_INVAL;
    if (disk->readonly)
        return 0;
    return disk->ops->flush(disk);
}

int qv_disk_discard(struct qv_disk *disk, uint64_t offset, uint64_t length)
{
    if (!disk)
        return QV_ERR_INVAL;
    int rc = check_write(disk, offset, length);
    if (rc || length == 0)
        return rc;
    return disk->ops->discard(disk, offset, length);
}

int qv_disk_write_zeroes(struct qv_disk *disk, uint64_t offset, uint64_t length)
{
    if (!disk)
        return QV_ERR_INVAL;
    int rc = check_write(disk, offset, length);
    if (rc || length == 0)
        return rc;
    return disk->ops->write_zeroes(disk, offset, length);
}

const char *qv_disk_last_error(const struct qv_disk *disk)
{
    return disk ? disk->error : "";
}

void qv_disk_close(struct qv_disk *disk)
{
    if (disk)
        disk->ops->close(disk);
}
