/* The raw format: the image file (or block device) is the disk, byte for byte.
 * cache none uses O_DIRECT; requests whose buffers, offset or length are not aligned go
 * through an aligned bounce buffer (read-modify-write for partial blocks). */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/disk_internal.h"

/* Largest bounce buffer used at once; longer unaligned requests are split. */
#define RAW_BOUNCE_MAX (1u << 20)

struct raw_disk {
    struct qv_disk base;
    int fd;
    int direct;       /* fd has O_DIRECT */
    int discard;      /* punch holes on discard */
    int is_blockdev;
    uint32_t align;   /* O_DIRECT alignment of offsets, lengths and buffers */
    /* Aligned requests take it shared; read-modify-write of partial blocks exclusive, so two
     * writers of different sectors in one block never lose each other's data. */
    pthread_rwlock_t rmw_lock;
};

static struct raw_disk *to_raw(struct qv_disk *d)
{
    return (struct raw_disk *)d;
}

static int io_fail(struct raw_disk *r, const char *what, uint64_t off, int neg_errno)
{
    return qv_disk_fail(&r->base, neg_errno == -ENOSPC ? QV_STR_ERR_NOSPC : QV_STR_ERR_IO,
                        "raw %s at %llu failed: %s", what, (unsigned long long)off,
                        strerror(-neg_errno));
}

static int iov_aligned(const struct iovec *iov, int iovcnt, uint32_t align)
{
    for (int i = 0; i < iovcnt; i++)
        if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (align - 1))
            return 0;
    return 1;
}

/* Read [off, off+len) of the disk into iov at skip through an aligned bounce buffer. */
static int bounce_read(struct raw_disk *r, uint64_t off, const struct iovec *iov, int iovcnt,
                       size_t len)
{
    uint8_t *buf = NULL;
    size_t done = 0;
    int rc = 0;
    if (posix_memalign((void **)&buf, r->align, RAW_BOUNCE_MAX + 2 * (size_t)r->align))
        return qv_disk_fail(&r->base, QV_ERR_NOMEM, "no memory for a bounce buffer");
    while (done < len) {
        uint64_t pos = off + done;
        uint64_t start = pos & ~(uint64_t)(r->align - 1);
        size_t head = (size_t)(pos - start);
        size_t chunk = len - done;
        if (chunk > RAW_BOUNCE_MAX)
            chunk = RAW_BOUNCE_MAX;
        size_t span = (head + chunk + r->align - 1) & ~(size_t)(r->align - 1);
        int e = qv_pread_full(r->fd, buf, span, start);
        if (e) {
            rc = io_fail(r, "read", start, e);
            break;
        }
        qv_iov_copy_in(iov, iovcnt, done, buf + head, chunk);
        done += chunk;
    }
    free(buf);
    return rc;
}

static int bounce_write(struct raw_disk *r, uint64_t off, const struct iovec *iov, int iovcnt,
                        size_t len)
{
    uint8_t *buf = NULL;
    size_t done = 0;
    int rc = 0;
    if (posix_memalign((void **)&buf, r->align, RAW_BOUNCE_MAX + 2 * (size_t)r->align))
        return qv_disk_fail(&r->base, QV_ERR_NOMEM, "no memory for a bounce buffer");
    while (done < len) {
        uint64_t pos = off + done;
        uint64_t start = pos & ~(uint64_t)(r->align - 1);
        size_t head = (size_t)(pos - start);
        size_t chunk = len - done;
        if (chunk > RAW_BOUNCE_MAX)
            chunk = RAW_BOUNCE_MAX;
        size_t span = (head + chunk + r->align - 1) & ~(size_t)(r->align - 1);
        int e = 0;
        /* Partial first or last block: fetch what is there so the write keeps it. */
        if (head)
            e = qv_pread_full(r->fd, buf, r->align, start);
        if (!e && (head + chunk) % r->align)
            e = qv_pread_full(r->fd, buf + span - r->align, r->align, start + span - r->align);
        if (e) {
            rc = io_fail(r, "read (for a partial-block write)", start, e);
            break;
        }
        qv_iov_copy_out(iov, iovcnt, done, buf + head, chunk);
        e = qv_pwrite_full(r->fd, buf, span, start);
        if (e) {
            rc = io_fail(r, "write", start, e);
            break;
        }
        done += chunk;
    }
    free(buf);
    return rc;
}

/* A direct-I/O block at the very end of a file whose size is not block-aligned cannot be
 * written whole (it would grow the file); such requests use a buffered descriptor. */
static int past_aligned_end(struct raw_disk *r, uint64_t off, size_t len)
{
    uint64_t end = (off + len + r->align - 1) & ~(uint64_t)(r->align - 1);
    return end > r->base.size;
}

static int buffered_io(struct raw_disk *r, int write, uint64_t off, const struct iovec *iov,
                       int iovcnt, size_t len)
{
    int flags = (write ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    struct iovec local[64];
    struct iovec *v = local;
    int fd, e;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", r->fd);
    fd = open(path, flags);
    if (fd < 0)
        return io_fail(r, "reopen without O_DIRECT", off, -errno);
    if (iovcnt > 64 && !(v = malloc(sizeof(*v) * (size_t)iovcnt))) {
        close(fd);
        return qv_disk_fail(&r->base, QV_ERR_NOMEM, "no memory");
    }
    memcpy(v, iov, sizeof(*v) * (size_t)iovcnt);
    e = write ? qv_pwritev_full(fd, v, iovcnt, off) : qv_preadv_full(fd, v, iovcnt, off);
    if (!e && write && fdatasync(fd))
        e = -errno;
    close(fd);
    if (v != local)
        free(v);
    (void)len;
    return e ? io_fail(r, write ? "write" : "read", off, e) : 0;
}

static int raw_io(struct qv_disk *d, int write, uint64_t off, const struct iovec *iov,
                  int iovcnt)
{
    struct raw_disk *r = to_raw(d);
    size_t len = qv_iov_total(iov, iovcnt);
    int rc, aligned;

    aligned = !r->direct || (!((off | len) & (r->align - 1)));
    if (r->direct && past_aligned_end(r, off, len)) {
        pthread_rwlock_wrlock(&r->rmw_lock);
        rc = buffered_io(r, write, off, iov, iovcnt, len);
        pthread_rwlock_unlock(&r->rmw_lock);
        return rc;
    }
    if (!aligned) {
        pthread_rwlock_wrlock(&r->rmw_lock);
        rc = write ? bounce_write(r, off, iov, iovcnt, len) : bounce_read(r, off, iov, iovcnt, len);
        pthread_rwlock_unlock(&r->rmw_lock);
        return rc;
    }
    pthread_rwlock_rdlock(&r->rmw_lock);
    if (r->direct && !iov_aligned(iov, iovcnt, r->align)) {
        /* Offset and length are aligned but the memory is not: bounce, no read-modify-write. */
        rc = write ? bounce_write(r, off, iov, iovcnt, len) : bounce_read(r, off, iov, iovcnt, len);
    } else {
        struct iovec local[64];
        struct iovec *v = local;
        if (iovcnt > 64 && !(v = malloc(sizeof(*v) * (size_t)iovcnt))) {
            pthread_rwlock_unlock(&r->rmw_lock);
            return qv_disk_fail(d, QV_ERR_NOMEM, "no memory");
        }
        memcpy(v, iov, sizeof(*v) * (size_t)iovcnt);
        int e = write ? qv_pwritev_full(r->fd, v, iovcnt, off)
                      : qv_preadv_full(r->fd, v, iovcnt, off);
        rc = e ? io_fail(r, write ? "write" : "read", off, e) : 0;
        if (v != local)
            free(v);
    }
    pthread_rwlock_unlock(&r->rmw_lock);
    return rc;
}

static int raw_readv(struct qv_disk *d, uint64_t off, const struct iovec *iov, int iovcnt)
{
    return raw_io(d, 0, off, iov, iovcnt);
}

static int raw_writev(struct qv_disk *d, uint64_t off, const struct iovec *iov, int iovcnt)
{
    return raw_io(d, 1, off, iov, iovcnt);
}

static int raw_flush(struct qv_disk *d)
{
    struct raw_disk *r = to_raw(d);
    if (fdatasync(r->fd))
        return io_fail(r, "flush", 0, -errno);
    return 0;
}

static int write_zero_buffers(struct raw_disk *r, uint64_t off, uint64_t len)
{
    size_t chunk = len > RAW_BOUNCE_MAX ? RAW_BOUNCE_MAX : (size_t)len;
    uint8_t *zeros = NULL;
    int rc = 0;
    if (posix_memalign((void **)&zeros, r->align, chunk ? chunk : 1))
        return qv_disk_fail(&r->base, QV_ERR_NOMEM, "no memory");
    memset(zeros, 0, chunk);
    while (len && !rc) {
        size_t n = len > chunk ? chunk : (size_t)len;
        struct iovec iov = {.iov_base = zeros, .iov_len = n};
        rc = raw_io(&r->base, 1, off, &iov, 1);
        off += n;
        len -= n;
    }
    free(zeros);
    return rc;
}

static int raw_discard(struct qv_disk *d, uint64_t off, uint64_t len)
{
    struct raw_disk *r = to_raw(d);
    if (!r->discard)
        return 0; /* discard=ignore: the request is only a hint */
    if (fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len)) {
        if (errno == EOPNOTSUPP || errno == ENOSYS)
            return 0; /* the host cannot unmap: still a valid answer to a hint */
        return io_fail(r, "discard", off, -errno);
    }
    return 0;
}

static int raw_write_zeroes(struct qv_disk *d, uint64_t off, uint64_t len)
{
    struct raw_disk *r = to_raw(d);
    int mode = r->discard ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                          : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    pthread_rwlock_wrlock(&r->rmw_lock);
    int ok = fallocate(r->fd, mode, (off_t)off, (off_t)len) == 0;
    pthread_rwlock_unlock(&r->rmw_lock);
    if (ok)
        return 0;
    return write_zero_buffers(r, off, len);
}

static void raw_close(struct qv_disk *d)
{
    struct raw_disk *r = to_raw(d);
    close(r->fd);
    pthread_rwlock_destroy(&r->rmw_lock);
    free(r);
}

/* The disk is the file byte for byte; only a request touching the partial last O_DIRECT
 * block (which needs the buffered descriptor) is left to raw_io. */
static int raw_host_map(struct qv_disk *d, uint64_t off, uint64_t len, int write,
                        struct qv_disk_extent *out)
{
    struct raw_disk *r = to_raw(d);
    (void)write;
    if (len && r->direct && past_aligned_end(r, off, (size_t)len))
        return 1;
    out->fd = r->fd;
    out->offset = off;
    out->align = r->direct ? r->align : 1;
    return 0;
}

static const struct qv_disk_ops raw_ops = {
    .readv = raw_readv,
    .writev = raw_writev,
    .flush = raw_flush,
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
    .close = raw_close,
    .host_map = raw_host_map,
};

/* Find the smallest O_DIRECT alignment the file accepts (512 or 4096). */
static uint32_t probe_alignment(int fd, int is_blockdev)
{
    uint8_t *buf = NULL;
    uint32_t align = 4096;
    if (is_blockdev) {
        int ssz = 0;
        if (ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz >= 512 && ssz <= 65536 && !(ssz & (ssz - 1)))
            return (uint32_t)ssz;
        return 4096;
    }
    if (posix_memalign((void **)&buf, 4096, 8192))
        return 4096;
    /* A 512-aligned (but not 4096-aligned) buffer and length: EINVAL means 4096 is needed. */
    if (pread(fd, buf + 512, 512, 0) >= 0)
        align = 512;
    free(buf);
    return align;
}

int qv_raw_open(const char *path, const struct qv_disk_options *opts, struct qv_disk **out,
                char *errbuf, size_t errlen)
{
    struct raw_disk *r;
    struct stat st;
    int flags = (opts->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    int direct = opts->cache == QV_DISK_CACHE_NONE || opts->cache == QV_DISK_CACHE_DIRECTSYNC;
    int fd;

    if (direct)
        flags |= O_DIRECT;
    if (opts->cache == QV_DISK_CACHE_WRITETHROUGH || opts->cache == QV_DISK_CACHE_DIRECTSYNC)
        flags |= O_DSYNC;
    fd = open(path, flags);
    if (fd < 0) {
        int e = errno;
        if (direct && e == EINVAL)
            return qv_disk_errf(errbuf, errlen, QV_STR_ERR_NOTSUP,
                                "%s: the filesystem does not support O_DIRECT (cache none); "
                                "use cache writeback",
                                path);
        return qv_disk_errf(errbuf, errlen, qv_disk_errno_code(e), "%s: cannot open: %s", path,
                            strerror(e));
    }
    if (fstat(fd, &st)) {
        int e = errno;
        close(fd);
        return qv_disk_errf(errbuf, errlen, QV_STR_ERR_IO, "%s: stat failed: %s", path,
                            strerror(e));
    }
    int lrc = opts->force_share ? 0 : qv_disk_lock(fd, !opts->readonly, path, errbuf,
                                                   errlen);
    if (lrc) {
        close(fd);
        return lrc;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        close(fd);
        return qv_disk_errf(errbuf, errlen, QV_ERR_NOMEM, "out of memory");
    }
    r->is_blockdev = S_ISBLK(st.st_mode);
    if (r->is_blockdev) {
        uint64_t bytes = 0;
        if (ioctl(fd, BLKGETSIZE64, &bytes)) {
            int e = errno;
            close(fd);
            free(r);
            return qv_disk_errf(errbuf, errlen, QV_STR_ERR_IO, "%s: BLKGETSIZE64 failed: %s",
                                path, strerror(e));
        }
        r->base.size = bytes;
    } else if (S_ISREG(st.st_mode)) {
        r->base.size = (uint64_t)st.st_size;
    } else {
        close(fd);
        free(r);
        return qv_disk_errf(errbuf, errlen, QV_STR_ERR_FORMAT,
                            "%s: not a regular file or block device", path);
    }
    r->fd = fd;
    r->direct = direct;
    r->discard = opts->discard;
    r->align = direct ? probe_alignment(fd, r->is_blockdev) : 512;
    pthread_rwlock_init(&r->rmw_lock, NULL);
    r->base.ops = &raw_ops;
    r->base.format = QV_DISK_FORMAT_RAW;
    r->base.readonly = opts->readonly;
    *out = &r->base;
    return 0;
}
