/* The block-backend interface: every disk format (raw, qcow2, the PQC-encrypted layer)
 * implements these operations; virtio-blk and the storage tools use only this. All offsets
 * and lengths are in bytes; sector-aligned (512) requests are the norm but not required by
 * the interface. Operations return 0 or a negative QV error code (QV_STR_ERR_*). */
#ifndef QUANTAVIRT_DISK_H
#define QUANTAVIRT_DISK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum qv_disk_format {
    QV_DISK_FORMAT_AUTO = 0, /* detect from the image header */
    QV_DISK_FORMAT_RAW = 1,
    QV_DISK_FORMAT_QCOW2 = 2,
    QV_DISK_FORMAT_ENCRYPTED = 3,
};

enum qv_disk_cache {
    QV_DISK_CACHE_WRITEBACK = 0,   /* page cache; durable at flush */
    QV_DISK_CACHE_NONE = 1,        /* O_DIRECT */
    QV_DISK_CACHE_WRITETHROUGH = 2,/* O_DSYNC */
    QV_DISK_CACHE_DIRECTSYNC = 3,  /* O_DIRECT | O_DSYNC */
};

struct qv_disk_options {
    uint32_t format;   /* enum qv_disk_format */
    uint32_t cache;    /* enum qv_disk_cache */
    int readonly;
    int discard;       /* pass discard requests down (unmap / punch holes) */
    int force_share;   /* read-only inspection without the image lock (like qemu-img -U) */
};

struct qv_disk;

/* Where a range of the disk lives in a host file (for io_uring, disk_aio.h). */
struct qv_disk_extent {
    int fd;
    uint64_t offset;   /* in the host file */
    uint32_t align;    /* O_DIRECT alignment of file offset, length and memory; 1 if buffered */
};

struct qv_disk_ops {
    int (*readv)(struct qv_disk *disk, uint64_t offset, const struct iovec *iov, int iovcnt);
    int (*writev)(struct qv_disk *disk, uint64_t offset, const struct iovec *iov, int iovcnt);
    int (*flush)(struct qv_disk *disk);
    int (*discard)(struct qv_disk *disk, uint64_t offset, uint64_t length);
    int (*write_zeroes)(struct qv_disk *disk, uint64_t offset, uint64_t length);
    void (*close)(struct qv_disk *disk);
    /* Optional: 0 and *out when all of [offset, offset+len) is plain data at one place of one
     * host file (a write there needs no metadata change), 1 when the format must run the
     * request itself. len 0 asks for the file a flush may fdatasync directly. */
    int (*host_map)(struct qv_disk *disk, uint64_t offset, uint64_t len, int write,
                    struct qv_disk_extent *out);
    /* Optional: a write mapped by host_map finished (or was not issued after all). */
    void (*host_done)(struct qv_disk *disk);
};

struct qv_disk {
    const struct qv_disk_ops *ops;
    uint64_t size;     /* virtual size in bytes */
    uint32_t format;   /* the format actually opened */
    int readonly;
    /* Text of the last failing access ("L2 entry ... points beyond the end of the file"). */
    char error[256];
};

/* Open an image; on failure returns a negative code and a message in errbuf. */
int qv_disk_open(const char *path, const struct qv_disk_options *opts, struct qv_disk **out,
                 char *errbuf, size_t errlen);
/* Convenience wrappers over disk->ops (checking bounds and read-only). A request beyond the
 * virtual size fails with QV_STR_ERR_RANGE; a write, discard or write_zeroes on a read-only
 * disk with QV_STR_ERR_READONLY before anything reaches the image. */
int qv_disk_read(struct qv_disk *disk, uint64_t offset, void *buf, size_t len);
int qv_disk_write(struct qv_disk *disk, uint64_t offset, const void *buf, size_t len);
int qv_disk_readv(struct qv_disk *disk, uint64_t offset, const struct iovec *iov, int iovcnt);
int qv_disk_writev(struct qv_disk *disk, uint64_t offset, const struct iovec *iov, int iovcnt);
int qv_disk_flush(struct qv_disk *disk);
/* Unmap a range when the disk was opened with `discard` (a no-op otherwise). Whole clusters
 * of a qcow2 image are unmapped; afterwards they read as zeros (or, for a version 2 image
 * with a backing file, as the backing file). A raw file gets a hole (reads as zeros). */
int qv_disk_discard(struct qv_disk *disk, uint64_t offset, uint64_t length);
/* Make a range read as zeros (cheaply where the format allows: qcow2 v3 zero clusters). */
int qv_disk_write_zeroes(struct qv_disk *disk, uint64_t offset, uint64_t length);
/* The message of the last failing access ("" when none). */
const char *qv_disk_last_error(const struct qv_disk *disk);
void qv_disk_close(struct qv_disk *disk);

#endif
