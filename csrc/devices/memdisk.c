/* In-memory block backend implementing the qv_disk operations over one heap buffer. */
#include "quantavirt/memdisk.h"

#include <stdlib.h>
#include <string.h>

#include "quantavirt/errors.h"

struct memdisk {
    struct qv_disk base; /* first: a struct qv_disk * is a struct memdisk * */
    uint8_t *data;
    uint64_t flushes;
    uint64_t discards;
};

static struct memdisk *to_md(struct qv_disk *disk)
{
    return (struct memdisk *)(void *)disk;
}

/* [offset, offset + len) inside the disk, overflow-safe */
static int in_range(const struct qv_disk *disk, uint64_t offset, uint64_t len)
{
    return offset <= disk->size && len <= disk->size - offset;
}

static uint64_t iov_total(const struct iovec *iov, int iovcnt)
{
    uint64_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    return total;
}

static int md_readv(struct qv_disk *disk, uint64_t offset, const struct iovec *iov, int iovcnt)
{
    struct memdisk *md = to_md(disk);
    if (iovcnt < 0 || !in_range(disk, offset, iov_total(iov, iovcnt)))
        return QV_STR_ERR_RANGE;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(iov[i].iov_base, md->data + offset, iov[i].iov_len);
        offset += iov[i].iov_len;
    }
    return 0;
}

static int md_writev(struct qv_disk *disk, uint64_t offset, const struct iovec *iov, int iovcnt)
{
    struct memdisk *md = to_md(disk);
    if (disk->readonly)
        return QV_STR_ERR_READONLY;
    if (iovcnt < 0 || !in_range(disk, offset, iov_total(iov, iovcnt)))
        return QV_STR_ERR_RANGE;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(md->data + offset, iov[i].iov_base, iov[i].iov_len);
        offset += iov[i].iov_len;
    }
    return 0;
}

static int md_flush(struct qv_disk *disk)
{
    to_md(disk)->flushes++;
    return 0;
}

static int md_zero(struct qv_disk *disk, uint64_t offset, uint64_t length)
{
    if (disk->readonly)
        return QV_STR_ERR_READONLY;
    if (!in_range(disk, offset, length))
        return QV_STR_ERR_RANGE;
    memset(to_md(disk)->data + offset, 0, length);
    return 0;
}

static int md_discard(struct qv_disk *disk, uint64_t offset, uint64_t length)
{
    int rc = md_zero(disk, offset, length); /* discarded memory reads back as zeroes */
    if (rc == 0)
        to_md(disk)->discards++;
    return rc;
}

static void md_close(struct qv_disk *disk)
{
    struct memdisk *md = to_md(disk);
    free(md->data);
    free(md);
}

static const struct qv_disk_ops memdisk_ops = {
    .readv = md_readv,
    .writev = md_writev,
    .flush = md_flush,
    .discard = md_discard,
    .write_zeroes = md_zero,
    .close = md_close,
};

struct qv_disk *qv_memdisk_new(uint64_t size, int readonly)
{
    if (size > SIZE_MAX)
        return NULL;
    struct memdisk *md = calloc(1, sizeof *md);
    if (!md)
        return NULL;
    md->data = calloc(1, size ? (size_t)size : 1);
    if (!md->data) {
        free(md);
        return NULL;
    }
    md->base.ops = &memdisk_ops;
    md->base.size = size;
    md->base.format = QV_DISK_FORMAT_RAW;
    md->base.readonly = readonly;
    return &md->base;
}

uint8_t *qv_memdisk_data(struct qv_disk *disk)
{
    return to_md(disk)->data;
}

uint64_t qv_memdisk_flush_count(struct qv_disk *disk)
{
    return to_md(disk)->flushes;
}

uint64_t qv_memdisk_discard_count(struct qv_disk *disk)
{
    return to_md(disk)->discards;
}
