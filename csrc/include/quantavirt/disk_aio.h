/* Asynchronous request engines over a qv_disk, so a device can keep several requests in
 * flight (virtio-blk `io`):
 *
 *   QV_DISK_AIO_THREADS  a small pool of worker threads running the disk's readv / writev /
 *                        flush (every format; the formats are thread-safe).
 *   QV_DISK_AIO_NATIVE   io_uring on the image file for the ranges the format maps straight to
 *                        the file (raw images; allocated data clusters of qcow2 images). With
 *                        O_DIRECT, guest buffers that are not aligned go through an aligned
 *                        bounce buffer; ranges the format cannot map (qcow2 metadata work,
 *                        partial O_DIRECT blocks) run synchronously in qv_disk_aio_submit().
 *
 * Ordering: requests in flight are unordered. A flush covers the writes that completed before
 * it was submitted: a caller wanting "flush after all earlier writes" submits it once they
 * have completed (virtio-blk does).
 *
 * Completions are collected with qv_disk_aio_reap() on the thread that submits (usually an
 * I/O thread polling qv_disk_aio_fd()). Not thread-safe between submitters: one thread
 * submits and reaps; the workers are internal. */
#ifndef QUANTAVIRT_DISK_AIO_H
#define QUANTAVIRT_DISK_AIO_H

#include <stdint.h>
#include <sys/uio.h>

#include "quantavirt/disk.h"

enum qv_disk_aio_mode {
    QV_DISK_AIO_THREADS = 1,
    QV_DISK_AIO_NATIVE = 2,
};

enum qv_disk_aio_op {
    QV_DISK_AIO_READ = 0,
    QV_DISK_AIO_WRITE = 1,
    QV_DISK_AIO_FLUSH = 2,
};

/* One request, owned by the caller; it and its iovec array must stay valid until reaped. */
struct qv_disk_aio_req {
    int op;                    /* enum qv_disk_aio_op */
    uint64_t offset;
    const struct iovec *iov;
    int iovcnt;
    int result;                /* at completion: 0 or a negative QV code */
    /* engine-private */
    struct qv_disk_aio_req *next;
    void *bounce;
    uint64_t len;
    int how;
    int mapped_write;          /* host_map(write) succeeded: host_done owed */
};

struct qv_disk_aio_stats {
    uint64_t submitted, completed;
    uint64_t uring;            /* native: requests that went to io_uring */
    uint64_t bounced;          /* native: of those, through an aligned bounce buffer */
    uint64_t sync_fallback;    /* native: requests run synchronously (not mappable) */
    uint64_t max_inflight;     /* most requests in flight at once */
};

struct qv_disk_aio;

/* Create an engine; workers 0 -> 4 (threads mode). Native: when io_uring cannot be set up
 * it fails with QV_ERR_NOTSUP and a message in errbuf (the caller may choose threads). */
int qv_disk_aio_new(struct qv_disk *disk, int mode, unsigned workers, struct qv_disk_aio **out,
                    char *errbuf, size_t errlen);
/* An eventfd that becomes readable when completions are waiting (read it to clear it). */
int qv_disk_aio_fd(const struct qv_disk_aio *aio);
/* Start a request; its completion is always delivered through qv_disk_aio_reap (even when
 * it ran synchronously). Bounds are the caller's job (virtio-blk checks them). */
void qv_disk_aio_submit(struct qv_disk_aio *aio, struct qv_disk_aio_req *req);
/* Hand prepared io_uring requests to the kernel (submit batches them; call after a batch). */
void qv_disk_aio_commit(struct qv_disk_aio *aio);
/* Collect up to max finished requests without blocking; returns the count. */
unsigned qv_disk_aio_reap(struct qv_disk_aio *aio, struct qv_disk_aio_req **out, unsigned max);
/* Requests submitted and not yet reaped. */
unsigned qv_disk_aio_inflight(const struct qv_disk_aio *aio);
/* Block until nothing is running any more (finished requests stay for reap). */
void qv_disk_aio_drain(struct qv_disk_aio *aio);
void qv_disk_aio_get_stats(const struct qv_disk_aio *aio, struct qv_disk_aio_stats *out);
/* "threads" or "io_uring" */
const char *qv_disk_aio_backend(const struct qv_disk_aio *aio);
/* Drains, then frees (the disk stays open). */
void qv_disk_aio_free(struct qv_disk_aio *aio);

#endif
