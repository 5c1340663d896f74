/* virtio-blk (section 5.2): requests from the driver executed on a qv_disk. */
#ifndef QUANTAVIRT_VIRTIO_BLK_H
#define QUANTAVIRT_VIRTIO_BLK_H

#include <stddef.h>
#include <stdint.h>

#include "quantavirt/disk.h"
#include "quantavirt/virtio.h"

/* Feature bits */
#define QV_VIRTIO_BLK_F_SIZE_MAX 1
#define QV_VIRTIO_BLK_F_SEG_MAX 2
#define QV_VIRTIO_BLK_F_RO 5
#define QV_VIRTIO_BLK_F_BLK_SIZE 6
#define QV_VIRTIO_BLK_F_FLUSH 9
#define QV_VIRTIO_BLK_F_MQ 12
#define QV_VIRTIO_BLK_F_DISCARD 13
#define QV_VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values */
#define QV_VIRTIO_BLK_T_IN 0
#define QV_VIRTIO_BLK_T_OUT 1
#define QV_VIRTIO_BLK_T_FLUSH 4
#define QV_VIRTIO_BLK_T_GET_ID 8
#define QV_VIRTIO_BLK_T_DISCARD 11
#define QV_VIRTIO_BLK_T_WRITE_ZEROES 13
#define QV_VIRTIO_BLK_S_OK 0
#define QV_VIRTIO_BLK_S_IOERR 1
#define QV_VIRTIO_BLK_S_UNSUPP 2

#define QV_VIRTIO_BLK_ID_BYTES 20
#define QV_VIRTIO_BLK_CONFIG_SIZE 60
#define QV_VIRTIO_BLK_MAX_DISCARD_SEG 16u
#define QV_VIRTIO_BLK_MAX_DISCARD_SECTORS 0x3fffffu

/* Where requests run (storage[].io) */
#define QV_VIRTIO_BLK_IO_INLINE 0  /* synchronously inside process_queue */
#define QV_VIRTIO_BLK_IO_THREADS 1 /* a worker-thread pool, several requests in flight */
#define QV_VIRTIO_BLK_IO_NATIVE 2  /* io_uring on the image file (disk_aio.h) */

struct qv_virtio_blk_options {
    int readonly;          /* also forced when the disk itself is read-only */
    int discard;           /* offer VIRTIO_BLK_F_DISCARD (needs disk->ops->discard) */
    uint16_t num_queues;   /* 0 -> 1; > 1 offers VIRTIO_BLK_F_MQ */
    uint16_t queue_size;   /* 0 -> 256; power of 2 */
    uint32_t seg_max;      /* data segments per request; 0 -> 126 */
    const char *serial;    /* GET_ID string, up to 20 bytes (NULL: empty) */
    uint64_t io_limit;     /* bytes/s over reads and writes, 0 = unlimited */
    uint64_t iops_limit;   /* requests/s, 0 = unlimited */
    /* monotonic clock in ns for the limits; NULL -> CLOCK_MONOTONIC (tests inject one) */
    uint64_t (*clock_ns)(void *opaque);
    void *clock_opaque;
    /* QV_VIRTIO_BLK_IO_*. With an engine, IN / OUT / FLUSH complete later: the owner polls
     * qv_virtio_blk_completion_fd() and calls qv_virtio_pci_complete(). A flush completes
     * after every write popped before it. */
    uint32_t io_mode;
    uint32_t io_workers;   /* threads mode: 0 -> 4 */
};

struct qv_virtio_blk_stats {
    uint64_t rd_ops, rd_bytes;
    uint64_t wr_ops, wr_bytes;
    uint64_t flush_ops, discard_ops, write_zeroes_ops, get_id_ops;
    uint64_t io_errors;     /* requests completed with IOERR */
    uint64_t unsupported;   /* requests completed with UNSUPP */
    uint64_t throttled;     /* times a queue was deferred by io_limit / iops_limit */
    /* the engine (0 when requests run inline) */
    uint64_t aio_submitted;
    uint64_t aio_uring;         /* native: went to io_uring */
    uint64_t aio_bounced;       /* native: through an aligned bounce buffer */
    uint64_t aio_sync_fallback; /* native: ran synchronously (not mappable to the file) */
    uint64_t aio_max_inflight;  /* most requests in flight at once */
};

struct qv_virtio_blk;

/* The device does not own disk (the caller closes it after qv_virtio_blk_free). */
struct qv_virtio_blk *qv_virtio_blk_new(struct qv_disk *disk,
                                        const struct qv_virtio_blk_options *opts);
/* The same with a code (QV_ERR_INVAL, QV_ERR_NOMEM, QV_ERR_NOTSUP: io_uring unavailable)
 * and a message. */
int qv_virtio_blk_create(struct qv_disk *disk, const struct qv_virtio_blk_options *opts,
                         struct qv_virtio_blk **out, char *errbuf, size_t errlen);
struct qv_virtio_device *qv_virtio_blk_device(struct qv_virtio_blk *blk);
/* Readable when engine requests finished (-1 without an engine). */
int qv_virtio_blk_completion_fd(const struct qv_virtio_blk *blk);
/* Block until the engine has nothing running (its completions wait for
 * qv_virtio_pci_complete). For tests and benchmarks driving the device from one thread. */
void qv_virtio_blk_drain(struct qv_virtio_blk *blk);
/* "inline", "threads" or "io_uring" */
const char *qv_virtio_blk_io_backend(const struct qv_virtio_blk *blk);
void qv_virtio_blk_get_stats(struct qv_virtio_blk *blk, struct qv_virtio_blk_stats *out);
void qv_virtio_blk_free(struct qv_virtio_blk *blk);

#endif
