/* The qcow2 format (versions 2 and 3): opening with full header validation, backing files,
 * and guest reads and writes (copy-on-write, zero clusters, discard). Metadata handling is in
 * qcow2_meta.c. Every value read from the image is checked before use. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "disk/qcow2.h"

#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u

static struct qcow2 *to_q(struct qv_disk *d)
{
    return (struct qcow2 *)d;
}

/* ---- zlib, loaded on first use so the core does not link it ---- */

struct zlib_api {
    int loaded;
    int (*init2)(z_stream *, int, const char *, int);
    int (*inflate)(z_stream *, int);
    int (*end)(z_stream *);
};
static struct zlib_api zlib_api;
static pthread_mutex_t zlib_lock = PTHREAD_MUTEX_INITIALIZER;

static int zlib_load(void)
{
    pthread_mutex_lock(&zlib_lock);
    if (!zlib_api.loaded) {
        void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
        zlib_api.loaded = -1;
        if (h) {
            *(void **)&zlib_api.init2 = dlsym(h, "inflateInit2_");
            *(void **)&zlib_api.inflate = dlsym(h, "inflate");
            *(void **)&zlib_api.end = dlsym(h, "inflateEnd");
            if (zlib_api.init2 && zlib_api.inflate && zlib_api.end)
                zlib_api.loaded = 1;
        }
    }
    pthread_mutex_unlock(&zlib_lock);
    return zlib_api.loaded == 1;
}

/* Inflate one compressed cluster (raw deflate) into q->cow. */
static int read_compressed(struct qcow2 *q, const struct qcow2_map *m, uint64_t guest)
{
    z_stream zs;
    int zr, rc;
    if (q->zstd)
        return qv_disk_fail(&q->base, QV_STR_ERR_NOTSUP,
                            "qcow2 image %s: zstd-compressed clusters are not supported",
                            q->path);
    if (!zlib_load())
        return qv_disk_fail(&q->base, QV_STR_ERR_NOTSUP,
                            "compressed qcow2 clusters need zlib (libz.so.1), not found");
    if (!q->zin && !(q->zin = malloc(2 * q->cluster_size)))
        return qv_disk_fail(&q->base, QV_ERR_NOMEM, "no memory");
    if (m->comp_len > 2 * q->cluster_size)
        return qcow2_corrupt(q, "compressed cluster too long");
    if ((rc = qcow2_meta_read(q, m->host, q->zin, m->comp_len)))
        return rc;
    memset(&zs, 0, sizeof(zs));
    if (zlib_api.init2(&zs, -12, ZLIB_VERSION, (int)sizeof(zs)) != Z_OK)
        return qv_disk_fail(&q->base, QV_ERR_NOMEM, "zlib initialisation failed");
    zs.next_in = q->zin;
    zs.avail_in = (uInt)m->comp_len;
    zs.next_out = q->cow;
    zs.avail_out = (uInt)q->cluster_size;
    zr = zlib_api.inflate(&zs, Z_FINISH);
    zlib_api.end(&zs);
    /* The stored length is rounded up to sectors: a full output buffer is success too. */
    if (!(zr == Z_STREAM_END || (zr == Z_BUF_ERROR && zs.avail_out == 0)) || zs.avail_out)
        return qcow2_corrupt(q, "compressed cluster for guest offset %llu does not inflate",
                             (unsigned long long)guest);
    return 0;
}

/* ---- data I/O ---- */

static int data_fd(struct qcow2 *q, uint64_t host, const struct iovec *iov, int n)
{
    if (q->dfd < 0 || (host & 4095))
        return q->fd;
    for (int i = 0; i < n; i++)
        if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & 4095)
            return q->fd;
    return q->dfd;
}

/* Read or write [skip, skip+len) of the caller's iov at host offset. */
static int data_io(struct qcow2 *q, int write, uint64_t host, const struct iovec *iov,
                   int iovcnt, size_t skip, size_t len)
{
    struct iovec local[64];
    int n = qv_disk_iov_slice(iov, iovcnt, skip, len, local, 64), e;
    if (n < 0) { /* too fragmented: go through the scratch buffer in cluster pieces */
        for (size_t done = 0; done < len;) {
            size_t piece = len - done > q->cluster_size ? q->cluster_size : len - done;
            if (write) {
                qv_iov_copy_out(iov, iovcnt, skip + done, q->cow, piece);
                e = qv_pwrite_full(q->fd, q->cow, piece, host + done);
            } else {
                e = qv_pread_full(q->fd, q->cow, piece, host + done);
                if (!e)
                    qv_iov_copy_in(iov, iovcnt, skip + done, q->cow, piece);
            }
            if (e)
                goto fail;
            done += piece;
        }
        return 0;
    }
    {
        int fd = data_fd(q, host, local, n);
        e = write ? qv_pwritev_full(fd, local, n, host) : qv_preadv_full(fd, local, n, host);
    }
    if (!e) {
        if (write)
            q->written = 1;
        return 0;
    }
fail:
    return qv_disk_fail(&q->base, e == -ENOSPC ? QV_STR_ERR_NOSPC : QV_STR_ERR_IO,
                        "qcow2 data %s at %llu failed: %s", write ? "write" : "read",
                        (unsigned long long)host, strerror(-e));
}

/* Guest bytes [guest, guest+len) from the backing file (zeros past its end or without one). */
static int backing_read(struct qcow2 *q, uint64_t guest, const struct iovec *iov, int iovcnt,
                        size_t skip, size_t len)
{
    size_t from_backing = 0;
    if (q->backing && guest < q->backing->size) {
        uint64_t avail = q->backing->size - guest;
        from_backing = avail < len ? (size_t)avail : len;
    }
    if (from_backing) {
        struct iovec local[64];
        int n = qv_disk_iov_slice(iov, iovcnt, skip, from_backing, local, 64), rc;
        if (n >= 0) {
            rc = qv_disk_readv(q->backing, guest, local, n);
        } else {
            uint8_t *tmp = malloc(from_backing);
            if (!tmp)
                return qv_disk_fail(&q->base, QV_ERR_NOMEM, "no memory");
            rc = qv_disk_read(q->backing, guest, tmp, from_backing);
            if (!rc)
                qv_iov_copy_in(iov, iovcnt, skip, tmp, from_backing);
            free(tmp);
        }
        if (rc)
            return qv_disk_fail(&q->base, rc, "backing file %s: %s", q->backing_name,
                                qv_disk_last_error(q->backing));
    }
    if (len > from_backing)
        qv_iov_zero(iov, iovcnt, skip + from_backing, len - from_backing);
    return 0;
}

static int same_run(const struct qcow2_map *a, const struct qcow2_map *b, uint64_t distance)
{
    if (a->kind != b->kind || a->kind == QCOW2_COMPRESSED)
        return 0;
    return a->kind != QCOW2_NORMAL || b->host == a->host + distance;
}

static int qcow2_readv(struct qv_disk *d, uint64_t off, const struct iovec *iov, int iovcnt)
{
    struct qcow2 *q = to_q(d);
    size_t len = qv_iov_total(iov, iovcnt), done = 0;
    uint64_t cs = q->cluster_size;
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    while (!rc && done < len) {
        uint64_t pos = off + done, in = pos & (cs - 1);
        size_t run = len - done < cs - in ? len - done : (size_t)(cs - in);
        struct qcow2_map m, next;
        if ((rc = qcow2_map(q, pos, &m)))
            break;
        /* Merge following clusters that map the same way (contiguous host clusters). */
        while (done + run < len) {
            if ((rc = qcow2_map(q, pos + run, &next)))
                break;
            if (!same_run(&m, &next, in + run))
                break;
            run += len - done - run < cs ? len - done - run : (size_t)cs;
        }
        if (rc)
            break;
        switch (m.kind) {
        case QCOW2_NORMAL:
            rc = data_io(q, 0, m.host + in, iov, iovcnt, done, run);
            break;
        case QCOW2_ZERO:
            qv_iov_zero(iov, iovcnt, done, run);
            break;
        case QCOW2_UNALLOCATED:
            rc = backing_read(q, pos, iov, iovcnt, done, run);
            break;
        case QCOW2_COMPRESSED:
            rc = read_compressed(q, &m, pos);
            if (!rc)
                qv_iov_copy_in(iov, iovcnt, done, q->cow + in, run);
            break;
        }
        done += run;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Fill q->cow with the current content of the guest cluster at cluster_pos. */
static int load_cluster(struct qcow2 *q, const struct qcow2_map *m, uint64_t cluster_pos)
{
    struct iovec v = {.iov_base = q->cow, .iov_len = q->cluster_size};
    switch (m->kind) {
    case QCOW2_NORMAL: {
        int e = qv_pread_full(q->fd, q->cow, q->cluster_size, m->host);
        if (e)
            return qv_disk_fail(&q->base, QV_STR_ERR_IO, "qcow2 read at %llu failed: %s",
                                (unsigned long long)m->host, strerror(-e));
        return 0;
    }
    case QCOW2_ZERO:
        memset(q->cow, 0, q->cluster_size);
        return 0;
    case QCOW2_COMPRESSED:
        return read_compressed(q, m, cluster_pos);
    default: {
        uint64_t len = q->cluster_size;
        if (cluster_pos + len > q->base.size) /* last, partial cluster of the disk */
            len = q->base.size - cluster_pos;
        memset(q->cow, 0, q->cluster_size);
        return backing_read(q, cluster_pos, &v, 1, 0, (size_t)len);
    }
    }
}

/* Drop the host storage an old mapping held (after the L2 entry stopped pointing at it). */
static int release_mapping(struct qcow2 *q, const struct qcow2_map *m)
{
    if (m->kind == QCOW2_NORMAL || (m->kind == QCOW2_ZERO && m->host))
        return qcow2_release_cluster(q, m->host);
    if (m->kind == QCOW2_COMPRESSED) {
        uint64_t first = m->host & ~(q->cluster_size - 1);
        uint64_t last = (m->host + m->comp_len - 1) & ~(q->cluster_size - 1);
        for (uint64_t c = first; c <= last; c += q->cluster_size) {
            int rc = qcow2_release_cluster(q, c);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Write [skip, skip+len) of iov (or zeros when iov is NULL) into one guest cluster. */
static int write_in_cluster(struct qcow2 *q, uint64_t pos, const struct iovec *iov, int iovcnt,
                           size_t skip, size_t len)
{
    uint64_t cs = q->cluster_size, in = pos & (cs - 1), cpos = pos - in, toff, host;
    uint8_t *table;
    uint32_t idx;
    struct qcow2_map m;
    int rc;

    if ((rc = qcow2_l2_table(q, pos, 1, &table, &toff, &idx)))
        return rc;
    uint64_t entry = qcow2_be64(table + 8 * (size_t)idx);
    if ((rc = qcow2_decode_l2(q, entry, pos, &m)))
        return rc;
    if (m.kind == QCOW2_NORMAL && !m.copied) {
        uint64_t refs;
        if ((rc = qcow2_refcount_get(q, m.host >> q->cluster_bits, &refs)))
            return rc;
        if (refs == 1) { /* not shared after all: record it and write in place */
            if ((rc = qcow2_set_l2(q, table, toff, idx, entry | QCOW2_OFLAG_COPIED)))
                return rc;
            m.copied = 1;
        }
    }
    if (m.kind == QCOW2_NORMAL && m.copied) {
        if (qcow2_set_has(&q->l2_tables, m.host) || qcow2_set_has(&q->refblocks, m.host))
            return qcow2_corrupt(q, "data cluster for guest offset %llu overlaps metadata "
                                    "(%#llx); refusing to write",
                                 (unsigned long long)pos, (unsigned long long)m.host);
        if (iov)
            return data_io(q, 1, m.host + in, iov, iovcnt, skip, len);
        memset(q->cow, 0, len);
        struct iovec z = {.iov_base = q->cow, .iov_len = len};
        return data_io(q, 1, m.host + in, &z, 1, 0, len);
    }
    /* Copy-on-write into a new cluster: data first, then the L2 entry, then drop the old. */
    if (len < cs) {
        if ((rc = load_cluster(q, &m, cpos)))
            return rc;
    }
    int reused; /* data: durable at the guest's flush, like any write */
    if ((rc = qcow2_alloc_cluster(q, &host, &reused)))
        return rc;
    if (len == cs && iov) {
        rc = data_io(q, 1, host, iov, iovcnt, skip, len);
    } else {
        if (iov)
            qv_iov_copy_out(iov, iovcnt, skip, q->cow + in, len);
        else
            memset(q->cow + in, 0, len);
        struct iovec c = {.iov_base = q->cow, .iov_len = cs};
        rc = data_io(q, 1, host, &c, 1, 0, cs);
    }
    if (rc)
        return rc;
    if ((rc = qcow2_set_l2(q, table, toff, idx, host | QCOW2_OFLAG_COPIED)))
        return rc;
    return release_mapping(q, &m);
}

static int is_table(struct qcow2 *q, uint64_t host)
{
    return qcow2_set_has(&q->l2_tables, host) || qcow2_set_has(&q->refblocks, host);
}

static int qcow2_writev(struct qv_disk *d, uint64_t off, const struct iovec *iov, int iovcnt)
{
    struct qcow2 *q = to_q(d);
    size_t len = qv_iov_total(iov, iovcnt), done = 0;
    uint64_t cs = q->cluster_size;
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    while (!rc && done < len) {
        uint64_t pos = off + done, in = pos & (cs - 1);
        size_t n = len - done < cs - in ? len - done : (size_t)(cs - in);
        struct qcow2_map m, next;
        if ((rc = qcow2_map(q, pos, &m)))
            break;
        if (m.kind == QCOW2_NORMAL && m.copied && !is_table(q, m.host)) {
            /* In place: one write for the run of following clusters that are contiguous on
             * the host and ours alone. A lookup error ends the run; it is reported when the
             * loop reaches that cluster. */
            size_t run = n;
            while (done + run < len && qcow2_map(q, pos + run, &next) == 0 &&
                   next.kind == QCOW2_NORMAL && next.copied && next.host == m.host + in + run &&
                   !is_table(q, next.host))
                run += len - done - run < cs ? len - done - run : (size_t)cs;
            rc = data_io(q, 1, m.host + in, iov, iovcnt, done, run);
            done += run;
            continue;
        }
        rc = write_in_cluster(q, pos, iov, iovcnt, done, n);
        done += n;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static int qcow2_flush(struct qv_disk *d)
{
    struct qcow2 *q = to_q(d);
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    /* commit_releases ends with refcount writes of its own; they only ever lower counts, so
     * losing them leaks clusters: the final fdatasync makes them durable anyway. */
    rc = qcow2_commit_releases(q);
    if (!rc && fdatasync(q->fd))
        rc = qv_disk_fail(d, QV_STR_ERR_IO, "qcow2 flush failed: %s", strerror(errno));
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Point a whole guest cluster at nothing (or at the zero flag) and free what it held. */
static int unmap_cluster(struct qcow2 *q, uint64_t pos, uint64_t new_entry)
{
    uint8_t *table;
    uint64_t toff;
    uint32_t idx;
    struct qcow2_map m;
    int rc;

    if ((rc = qcow2_l2_table(q, pos, new_entry != 0, &table, &toff, &idx)) || !table)
        return rc;
    uint64_t entry = qcow2_be64(table + 8 * (size_t)idx);
    if ((rc = qcow2_decode_l2(q, entry, pos, &m)))
        return rc;
    if (entry == new_entry)
        return 0;
    if (m.kind == QCOW2_NORMAL && !m.copied) {
        uint64_t refs;
        if ((rc = qcow2_refcount_get(q, m.host >> q->cluster_bits, &refs)))
            return rc;
        m.copied = refs == 1;
    }
    if ((rc = qcow2_set_l2(q, table, toff, idx, new_entry)))
        return rc;
    return release_mapping(q, &m);
}

static int qcow2_discard(struct qv_disk *d, uint64_t off, uint64_t len)
{
    struct qcow2 *q = to_q(d);
    uint64_t cs = q->cluster_size, pos, end = off + len;
    int rc = 0;
    if (!q->discard)
        return 0; /* discard=ignore */
    /* With a backing file an empty entry would expose it again: v3 uses the zero flag. */
    uint64_t new_entry = (q->backing && q->version >= 3) ? QCOW2_OFLAG_ZERO : 0;
    pthread_mutex_lock(&q->lock);
    for (pos = (off + cs - 1) & ~(cs - 1); !rc && pos < end; pos += cs) {
        if (end - pos < cs && end != q->base.size)
            break; /* partial cluster: discard is a hint, keep the data */
        rc = unmap_cluster(q, pos, new_entry);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static int qcow2_write_zeroes(struct qv_disk *d, uint64_t off, uint64_t len)
{
    struct qcow2 *q = to_q(d);
    uint64_t cs = q->cluster_size, done = 0;
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    while (!rc && done < len) {
        uint64_t pos = off + done, in = pos & (cs - 1);
        uint64_t n = len - done < cs - in ? len - done : cs - in;
        /* A whole cluster (or the disk's last, partial one) of a v3 image: the zero flag. */
        int whole = in == 0 && (n == cs || pos + n == q->base.size);
        struct qcow2_map m;
        if ((rc = qcow2_map(q, pos, &m)))
            break;
        if (m.kind == QCOW2_ZERO || (m.kind == QCOW2_UNALLOCATED && !q->backing)) {
            /* already reads as zeros */
        } else if (whole && q->version >= 3) {
            rc = unmap_cluster(q, pos, QCOW2_OFLAG_ZERO);
        } else {
            rc = write_in_cluster(q, pos, NULL, 0, 0, (size_t)n);
        }
        done += n;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static void qcow2_free(struct qcow2 *q)
{
    if (q->backing)
        qv_disk_close(q->backing);
    if (q->fd >= 0)
        close(q->fd);
    if (q->dfd >= 0)
        close(q->dfd);
    qcow2_cache_free(&q->l2_cache);
    qcow2_cache_free(&q->rb_cache);
    qcow2_set_free(&q->l2_tables);
    qcow2_set_free(&q->refblocks);
    pthread_mutex_destroy(&q->lock);
    free(q->l1);
    free(q->rt);
    free(q->cow);
    free(q->zin);
    free(q->path);
    free(q->backing_name);
    free(q->pending_free);
    free(q);
}

static void qcow2_close(struct qv_disk *d)
{
    struct qcow2 *q = to_q(d);
    pthread_mutex_lock(&q->lock);
    if (!q->base.readonly) {
        (void)qcow2_commit_releases(q); /* on failure the clusters stay counted: leaks */
        qcow2_pool_release(q);
        if (q->written)
            (void)fdatasync(q->fd);
    }
    pthread_mutex_unlock(&q->lock);
    qcow2_free(q);
}

/* For io_uring: a guest range that is one run of allocated clusters, contiguous in the file.
 * Writes only to clusters that are ours alone (COPIED) and not metadata, so they need no
 * metadata change; each one counts in q->async_writes until host_done, and while any is in
 * flight no released cluster is freed (qcow2_commit_releases waits), so a write still in
 * flight when a concurrent discard drops its cluster cannot land in a reused cluster. */
static int qcow2_host_map(struct qv_disk *d, uint64_t off, uint64_t len, int write,
                          struct qv_disk_extent *out)
{
    struct qcow2 *q = to_q(d);
    uint64_t cs = q->cluster_size, in = off & (cs - 1), host = 0, covered = 0;
    if (len == 0 || (write && q->base.readonly))
        return 1; /* flushes do refcount work */
    pthread_mutex_lock(&q->lock);
    while (covered < len) {
        struct qcow2_map m;
        if (qcow2_map(q, off + covered, &m) != 0 || m.kind != QCOW2_NORMAL)
            break;
        if (write && (!m.copied || is_table(q, m.host)))
            break;
        uint64_t here = m.host + ((off + covered) & (cs - 1));
        if (covered == 0)
            host = here;
        else if (here != host + covered)
            break;
        covered += covered == 0 ? cs - in : cs;
    }
    if (covered >= len && write) {
        q->async_writes++;
        q->written = 1;
    }
    pthread_mutex_unlock(&q->lock);
    if (covered < len)
        return 1; /* zeros, backing file, compressed, shared, split on the host, an error */
    /* the O_DIRECT descriptor takes 4 KiB-aligned file ranges (memory is bounced) */
    int direct = q->dfd >= 0 && !((host | len) & 4095);
    out->fd = direct ? q->dfd : q->fd;
    out->offset = host;
    out->align = direct ? 4096 : 1;
    return 0;
}

static void qcow2_host_done(struct qv_disk *d)
{
    struct qcow2 *q = to_q(d);
    pthread_mutex_lock(&q->lock);
    if (q->async_writes)
        q->async_writes--;
    pthread_mutex_unlock(&q->lock);
}

static const struct qv_disk_ops qcow2_ops = {
    .readv = qcow2_readv,
    .writev = qcow2_writev,
    .flush = qcow2_flush,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .close = qcow2_close,
    .host_map = qcow2_host_map,
    .host_done = qcow2_host_done,
};

/* ---- opening ---- */

/* The name of a feature bit from the image's feature-name table, if it has one. */
static void feature_name(const uint8_t *table, uint32_t table_len, int type, int bit,
                         char *out, size_t outlen)
{
    snprintf(out, outlen, "bit %d", bit);
    if (!table)
        return;
    for (uint32_t i = 0; i + 48 <= table_len; i += 48) {
        if (table[i] == type && table[i + 1] == bit) {
            char name[47];
            memcpy(name, table + i + 2, 46);
            name[46] = '\0';
            for (char *c = name; *c; c++)
                if (*c < 0x20 || *c > 0x7e)
                    *c = '?';
            snprintf(out, outlen, "bit %d (%s)", bit, name);
            return;
        }
    }
}

#define OPEN_FAIL(code, ...)                                                                \
    do {                                                                                    \
        rc = qv_disk_errf(errbuf, errlen, (code), __VA_ARGS__);                             \
        goto fail;                                                                          \
    } while (0)

static int open_backing(struct qcow2 *q, const char *format_name,
                        const struct qv_disk_options *opts, struct qv_disk_chain *chain,
                        char *errbuf, size_t errlen)
{
    struct qv_disk_options bo = {.format = QV_DISK_FORMAT_AUTO,
                                 .cache = QV_DISK_CACHE_WRITEBACK,
                                 .readonly = 1,
                                 .discard = 0,
                                 .force_share = opts->force_share};
    char *full = NULL;
    int rc;
    if (format_name) {
        if (!strcmp(format_name, "raw"))
            bo.format = QV_DISK_FORMAT_RAW;
        else if (!strcmp(format_name, "qcow2"))
            bo.format = QV_DISK_FORMAT_QCOW2;
        else
            return qv_disk_errf(errbuf, errlen, QV_STR_ERR_NOTSUP,
                                "%s: backing file format '%s' is not supported (raw, qcow2)",
                                q->path, format_name);
    }
    if (strstr(q->backing_name, "://") || !strncmp(q->backing_name, "json:", 5))
        return qv_disk_errf(errbuf, errlen, QV_STR_ERR_NOTSUP,
                            "%s: backing file '%s' is not a local path", q->path,
                            q->backing_name);
    if (q->backing_name[0] == '/') {
        full = strdup(q->backing_name);
    } else {
        /* Relative names are relative to the directory of the image that names them. */
        char *copy = strdup(q->path);
        if (copy) {
            const char *dir = dirname(copy);
            size_t n = strlen(dir) + strlen(q->backing_name) + 2;
            full = malloc(n);
            if (full)
                snprintf(full, n, "%s/%s", dir, q->backing_name);
            free(copy);
        }
    }
    if (!full)
        return qv_disk_errf(errbuf, errlen, QV_ERR_NOMEM, "out of memory");
    char sub[256];
    rc = qv_disk_open_in_chain(full, &bo, chain, &q->backing, sub, sizeof(sub));
    if (rc)
        qv_disk_errf(errbuf, errlen, rc, "%s: backing file: %s", q->path, sub);
    free(full);
    return rc;
}

int qv_qcow2_open(const char *path, const struct qv_disk_options *opts,
                  struct qv_disk_chain *chain, struct qv_disk **out, char *errbuf,
                  size_t errlen)
{
    struct qcow2 *q;
    struct stat st;
    uint8_t h[112], *first = NULL;
    char *canon;
    int rc = 0, flags;
    uint64_t file_size;
    char backing_format[32] = "";
    int have_backing_format = 0;

    canon = realpath(path, NULL);
    if (!canon)
        return qv_disk_errf(errbuf, errlen, qv_disk_errno_code(errno), "%s: %s", path,
                            strerror(errno));
    for (int i = 0; i < chain->depth; i++) {
        if (!strcmp(chain->paths[i], canon)) {
            free(canon);
            return qv_disk_errf(errbuf, errlen, QV_STR_ERR_CORRUPT,
                                "%s: backing chain loop (the image is its own ancestor)", path);
        }
    }
    if (chain->depth >= QV_DISK_MAX_CHAIN) {
        free(canon);
        return qv_disk_errf(errbuf, errlen, QV_STR_ERR_CORRUPT,
                            "%s: backing chain deeper than %d images", path, QV_DISK_MAX_CHAIN);
    }
    chain->paths[chain->depth++] = canon;

    q = calloc(1, sizeof(*q));
    if (!q)
        return qv_disk_errf(errbuf, errlen, QV_ERR_NOMEM, "out of memory");
    q->fd = q->dfd = -1;
    pthread_mutex_init(&q->lock, NULL);
    q->path = strdup(path);
    if (!q->path)
        OPEN_FAIL(QV_ERR_NOMEM, "out of memory");
    q->discard = opts->discard;
    q->sync_writes = opts->cache == QV_DISK_CACHE_WRITETHROUGH ||
                     opts->cache == QV_DISK_CACHE_DIRECTSYNC;
    flags = (opts->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (q->sync_writes ? O_DSYNC : 0);
    q->fd = open(path, flags);
    if (q->fd < 0)
        OPEN_FAIL(qv_disk_errno_code(errno), "%s: cannot open: %s", path, strerror(errno));
    if (opts->cache == QV_DISK_CACHE_NONE || opts->cache == QV_DISK_CACHE_DIRECTSYNC) {
        q->dfd = open(path, flags | O_DIRECT);
        if (q->dfd < 0)
            OPEN_FAIL(errno == EINVAL ? QV_STR_ERR_NOTSUP : qv_disk_errno_code(errno),
                      "%s: cannot open with O_DIRECT (cache none): %s", path, strerror(errno));
    }
    if (!opts->force_share &&
        (rc = qv_disk_lock(q->fd, !opts->readonly, path, errbuf, errlen)))
        goto fail;
    if (fstat(q->fd, &st))
        OPEN_FAIL(QV_STR_ERR_IO, "%s: stat failed: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        OPEN_FAIL(QV_STR_ERR_NOTSUP, "%s: qcow2 is only supported in regular files", path);
    file_size = (uint64_t)st.st_size;
    if (file_size < 72)
        OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: truncated qcow2 header (%llu bytes)", path,
                  (unsigned long long)file_size);
    if ((rc = qv_pread_full(q->fd, h, sizeof(h), 0)))
        OPEN_FAIL(QV_STR_ERR_IO, "%s: cannot read the header: %s", path, strerror(-rc));

    if (qcow2_be32(h) != QCOW2_MAGIC)
        OPEN_FAIL(QV_STR_ERR_FORMAT, "%s: not a qcow2 image (bad magic)", path);
    q->version = qcow2_be32(h + 4);
    if (q->version != 2 && q->version != 3)
        OPEN_FAIL(QV_STR_ERR_NOTSUP, "%s: qcow2 version %u is not supported (2 and 3 are)", path,
                  q->version);
    uint64_t backing_off = qcow2_be64(h + 8);
    uint32_t backing_len = qcow2_be32(h + 16);
    q->cluster_bits = qcow2_be32(h + 20);
    uint64_t size = qcow2_be64(h + 24);
    uint32_t crypt = qcow2_be32(h + 32);
    q->l1_size = qcow2_be32(h + 36);
    q->l1_offset = qcow2_be64(h + 40);
    q->rt_offset = qcow2_be64(h + 48);
    q->rt_clusters = qcow2_be32(h + 56);
    q->nb_snapshots = qcow2_be32(h + 60);
    uint64_t snap_off = qcow2_be64(h + 64);
    uint32_t header_len = 72;
    q->refcount_order = 4;
    if (q->version >= 3) {
        if (file_size < 104)
            OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: truncated qcow2 v3 header", path);
        q->incompat = qcow2_be64(h + 72);
        q->compat = qcow2_be64(h + 80);
        q->autoclear = qcow2_be64(h + 88);
        q->refcount_order = qcow2_be32(h + 96);
        header_len = qcow2_be32(h + 100);
    }

    if (q->cluster_bits < 9 || q->cluster_bits > 21)
        OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: cluster_bits %u out of range (9..21)", path,
                  q->cluster_bits);
    q->cluster_size = 1ULL << q->cluster_bits;
    q->l2_bits = q->cluster_bits - 3;
    if (q->refcount_order > 6)
        OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: refcount_order %u out of range (0..6)", path,
                  q->refcount_order);
    q->rb_bits = q->cluster_bits + 3 - q->refcount_order;
    if (q->version >= 3 &&
        (header_len < 104 || header_len > q->cluster_size || (header_len & 7)))
        OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: invalid header_length %u", path, header_len);
    if (crypt != 0)
        OPEN_FAIL(QV_STR_ERR_NOTSUP, "%s: qcow2 encryption (method %u) is not supported", path,
                  crypt);
    if (size > QCOW2_MAX_SIZE)
        OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: virtual size %llu is too large", path,
                  (unsigned long long)size);

    /* Feature bits: the first cluster holds the header extensions (and their names). */
    size_t first_len = file_size < q->cluster_size ? (size_t)file_size : (size_t)q->cluster_size;
    first = calloc(1, q->cluster_size);
    if (!first)
        OPEN_FAIL(QV_ERR_NOMEM, "out of memory");
    if ((rc = qv_pread_full(q->fd, first, first_len, 0)))
        OPEN_FAIL(QV_STR_ERR_IO, "%s: cannot read the header: %s", path, strerror(-rc));

    const uint8_t *ftable = NULL;
    uint32_t ftable_len = 0;
    uint64_t ext = header_len;
    for (int guard = 0;; guard++) {
        if (ext + 8 > q->cluster_size || guard > 1024)
            OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: header extensions run past the first cluster",
                      path);
        uint32_t type = qcow2_be32(first + ext), elen = qcow2_be32(first + ext + 4);
        if (type == QCOW2_EXT_END)
            break;
        if (elen > q->cluster_size - ext - 8)
            OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: header extension %#x is too long (%u bytes)",
                      path, type, elen);
        const uint8_t *data = first + ext + 8;
        if (type == QCOW2_EXT_BACKING_FORMAT) {
            if (elen == 0 || elen >= sizeof(backing_format) || memchr(data, 0, elen))
                OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: invalid backing format extension", path);
            memcpy(backing_format, data, elen);
            backing_format[elen] = '\0';
            have_backing_format = 1;
        } else if (type == QCOW2_EXT_FEATURE_TABLE) {
            ftable = data;
            ftable_len = elen;
        }
        ext += 8 + (((uint64_t)elen + 7) & ~7ULL);
    }

    uint64_t known = QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_COMPRESSION;
    if (q->incompat & ~known) {
        int bit = __builtin_ctzll(q->incompat & ~known);
        char name[80];
        feature_name(ftable, ftable_len, 0, bit, name, sizeof(name));
        OPEN_FAIL(QV_STR_ERR_NOTSUP, "%s: unsupported incompatible qcow2 feature %s", path,
                  name);
    }
    if ((q->incompat & QCOW2_INCOMPAT_CORRUPT) && !opts->readonly)
        OPEN_FAIL(QV_STR_ERR_CORRUPT,
                  "%s: the image is marked corrupt; it may only be opened read-only (repair it "
                  "with qemu-img check -r all)",
                  path);
    if ((q->incompat & QCOW2_INCOMPAT_DIRTY) && !opts->readonly)
        OPEN_FAIL(QV_STR_ERR_CORRUPT,
                  "%s: the image is marked dirty (lazy refcounts not written back); repair it "
                  "with qemu-img check -r all or open it read-only",
                  path);
    if (q->incompat & QCOW2_INCOMPAT_COMPRESSION) {
        if (header_len < 105)
            OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: compression type bit set but no such field",
                      path);
        if (first[104] > 1)
            OPEN_FAIL(QV_STR_ERR_NOTSUP, "%s: unknown compression type %u", path, first[104]);
        q->zstd = first[104] == 1;
    }

    /* Tables: offsets aligned and inside the file, sizes consistent with the virtual size. */
    q->end = (file_size + q->cluster_size - 1) & ~(q->cluster_size - 1);
    uint64_t per_l1 = 1ULL << (q->cluster_bits + q->l2_bits); /* guest bytes per L1 entry */
    uint64_t l1_needed = size / per_l1 + (size % per_l1 != 0);
    if ((uint64_t)q->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: L1 table of %u entries is too large", path,
                  q->l1_size);
    if (q->l1_size < l1_needed)
        OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: L1 table (%u entries) too small for the virtual "
                                      "size %llu",
                  path, q->l1_size, (unsigned long long)size);
    if (q->l1_size) {
        if ((q->l1_offset & (q->cluster_size - 1)) || q->l1_offset == 0)
            OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: L1 table offset %#llx is invalid", path,
                      (unsigned long long)q->l1_offset);
        if (q->l1_offset > file_size || (uint64_t)q->l1_size * 8 > file_size - q->l1_offset)
            OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: L1 table (at %#llx, %u entries) extends beyond "
                                          "the end of the file",
                      path, (unsigned long long)q->l1_offset, q->l1_size);
    }
    if (q->rt_clusters == 0 ||
        (uint64_t)q->rt_clusters * q->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
        OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: refcount table size (%u clusters) is invalid", path,
                  q->rt_clusters);
    if ((q->rt_offset & (q->cluster_size - 1)) || q->rt_offset == 0 ||
        q->rt_offset > file_size ||
        (uint64_t)q->rt_clusters * q->cluster_size > q->end - q->rt_offset)
        OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: refcount table offset %#llx is invalid or beyond the "
                                      "end of the file",
                  path, (unsigned long long)q->rt_offset);
    if (q->nb_snapshots > 65536 ||
        (q->nb_snapshots && ((snap_off & (q->cluster_size - 1)) || snap_off == 0 ||
                             snap_off >= file_size)))
        OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: snapshot table (%u at %#llx) is invalid", path,
                  q->nb_snapshots, (unsigned long long)snap_off);

    q->l1 = calloc(q->l1_size ? q->l1_size : 1, sizeof(uint64_t));
    q->rt_entries = (uint64_t)q->rt_clusters * q->cluster_size / 8;
    q->rt = calloc(q->rt_entries, sizeof(uint64_t));
    if (posix_memalign((void **)&q->cow, 4096, q->cluster_size))
        q->cow = NULL;
    if (!q->l1 || !q->rt || !q->cow)
        OPEN_FAIL(QV_ERR_NOMEM, "out of memory for the qcow2 tables");
    if ((rc = qv_pread_full(q->fd, q->l1, (size_t)q->l1_size * 8, q->l1_offset)) ||
        (rc = qv_pread_full(q->fd, q->rt, q->rt_entries * 8, q->rt_offset)))
        OPEN_FAIL(QV_STR_ERR_IO, "%s: cannot read the tables: %s", path, strerror(-rc));
    for (uint32_t i = 0; i < q->l1_size; i++)
        q->l1[i] = qcow2_be64((const uint8_t *)&q->l1[i]);
    for (uint64_t i = 0; i < q->rt_entries; i++) {
        q->rt[i] = qcow2_be64((const uint8_t *)&q->rt[i]);
        uint64_t e = q->rt[i];
        if ((e & ~QCOW2_REFT_OFFSET_MASK) || (e & (q->cluster_size - 1)) || e >= q->end)
            OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: refcount table entry %llu (%#llx) is invalid or "
                                          "beyond the end of the file",
                      path, (unsigned long long)i, (unsigned long long)e);
    }

    /* Where the metadata lives, so guest writes can never be aimed at it. */
    for (uint32_t i = 0; i < q->l1_size; i++) {
        uint64_t off = q->l1[i] & QCOW2_OFFSET_MASK;
        if (off && qcow2_set_append(&q->l2_tables, off))
            OPEN_FAIL(QV_ERR_NOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < q->rt_entries; i++)
        if (q->rt[i] && qcow2_set_append(&q->refblocks, q->rt[i]))
            OPEN_FAIL(QV_ERR_NOMEM, "out of memory");
    qcow2_set_finish(&q->l2_tables);
    qcow2_set_finish(&q->refblocks);

    if (backing_off || backing_len) {
        if (backing_len == 0 || backing_len > 1023 || backing_off < 72 ||
            backing_off >= q->cluster_size || backing_len > q->cluster_size - backing_off)
            OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: backing file name (at %llu, %u bytes) is invalid",
                      path, (unsigned long long)backing_off, backing_len);
        if (memchr(first + backing_off, 0, backing_len))
            OPEN_FAIL(QV_STR_ERR_CORRUPT, "%s: backing file name contains a NUL byte", path);
        q->backing_name = strndup((const char *)first + backing_off, backing_len);
        if (!q->backing_name)
            OPEN_FAIL(QV_ERR_NOMEM, "out of memory");
        rc = open_backing(q, have_backing_format ? backing_format : NULL, opts, chain, errbuf,
                          errlen);
        if (rc)
            goto fail;
    }

    /* Autoclear bits we do not know must be cleared before the first write (spec). */
    if (!opts->readonly && q->autoclear) {
        uint8_t zero[8] = {0};
        if ((rc = qv_pwrite_full(q->fd, zero, 8, 88)) || fdatasync(q->fd))
            OPEN_FAIL(QV_STR_ERR_IO, "%s: cannot clear the autoclear features", path);
        q->autoclear = 0;
    }

    free(first);
    q->pool_batch = 16;
    q->scan_needed = 1; /* reuse clusters freed earlier (refcount 0 inside the file) */
    q->base.ops = &qcow2_ops;
    q->base.size = size;
    q->base.format = QV_DISK_FORMAT_QCOW2;
    q->base.readonly = opts->readonly;
    *out = &q->base;
    return 0;

fail:
    free(first);
    qcow2_free(q);
    return rc ? rc : QV_STR_ERR_CORRUPT;
}
