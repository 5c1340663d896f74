/* Asynchronous request engines over a qv_disk (see quantavirt/disk_aio.h): a worker-thread
 * pool ("threads") and io_uring on the image file ("native").
 *
 * Finished requests go to one list (`done`, under `lock`) whatever ran them: a worker, the
 * synchronous fallback, or the io_uring completion queue (moved there by collect_uring on the
 * submitting thread). The eventfd is written for every completion; io_uring writes it itself
 * (registered eventfd). */
#include "quantavirt/disk_aio.h"

#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "disk/disk_internal.h"
#include "quantavirt/errors.h"

#define DEFAULT_WORKERS 4u
#define MAX_WORKERS 64u
#define RING_ENTRIES 256u
/* io_uring_submit once this many SQEs are waiting; qv_disk_aio_commit() sends the rest */
#define SUBMIT_BATCH 32u

enum how { HOW_SYNC = 0, HOW_THREAD, HOW_URING, HOW_URING_BOUNCE };

struct qv_disk_aio {
    struct qv_disk *disk;
    int mode;
    int efd;
    pthread_mutex_t lock;
    pthread_cond_t work_cv, idle_cv;
    struct qv_disk_aio_req *todo_head, *todo_tail; /* threads: waiting for a worker */
    struct qv_disk_aio_req *done_head, *done_tail; /* finished, waiting for reap */
    unsigned running;                              /* threads: taken by a worker */
    bool stop;
    pthread_t *threads;
    unsigned nthreads;
    struct io_uring ring;
    bool ring_ok;
    unsigned uring_inflight;  /* SQEs whose CQE has not been collected */
    unsigned unsubmitted;     /* SQEs prepared but not yet handed to the kernel */
    unsigned inflight;        /* submitted, not reaped (submitting thread only) */
    struct qv_disk_aio_stats stats;
};

static void stat_set(uint64_t *c, uint64_t v)
{
    __atomic_store_n(c, v, __ATOMIC_RELAXED);
}

static void stat_inc(uint64_t *c)
{
    __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static void wake(struct qv_disk_aio *aio)
{
    uint64_t one = 1;
    ssize_t n = write(aio->efd, &one, sizeof one);
    (void)n; /* a saturated counter still reads as "ready" */
}

/* with aio->lock held */
static void push_done(struct qv_disk_aio *aio, struct qv_disk_aio_req *req)
{
    req->next = NULL;
    if (aio->done_tail)
        aio->done_tail->next = req;
    else
        aio->done_head = req;
    aio->done_tail = req;
}

/* Run a request through the format's own code (any thread; the formats are thread-safe). */
static int run_sync(struct qv_disk *disk, struct qv_disk_aio_req *req)
{
    switch (req->op) {
    case QV_DISK_AIO_READ:
        return disk->ops->readv(disk, req->offset, req->iov, req->iovcnt);
    case QV_DISK_AIO_WRITE:
        return disk->ops->writev(disk, req->offset, req->iov, req->iovcnt);
    case QV_DISK_AIO_FLUSH:
        return disk->ops->flush ? disk->ops->flush(disk) : 0;
    default:
        return QV_ERR_INVAL;
    }
}

static void complete_now(struct qv_disk_aio *aio, struct qv_disk_aio_req *req, int result)
{
    req->result = result;
    pthread_mutex_lock(&aio->lock);
    push_done(aio, req);
    pthread_mutex_unlock(&aio->lock);
    wake(aio);
}

/* ---- threads ---- */

static void *worker(void *arg)
{
    struct qv_disk_aio *aio = arg;
    pthread_mutex_lock(&aio->lock);
    for (;;) {
        while (!aio->stop && !aio->todo_head)
            pthread_cond_wait(&aio->work_cv, &aio->lock);
        if (!aio->todo_head)
            break; /* stopping and nothing left */
        struct qv_disk_aio_req *req = aio->todo_head;
        aio->todo_head = req->next;
        if (!aio->todo_head)
            aio->todo_tail = NULL;
        aio->running++;
        pthread_mutex_unlock(&aio->lock);
        int rc = run_sync(aio->disk, req);
        pthread_mutex_lock(&aio->lock);
        req->result = rc;
        aio->running--;
        push_done(aio, req);
        if (!aio->todo_head && !aio->running)
            pthread_cond_broadcast(&aio->idle_cv);
        wake(aio);
    }
    pthread_mutex_unlock(&aio->lock);
    return NULL;
}

/* ---- io_uring ---- */

static bool iov_aligned(const struct iovec *iov, int iovcnt, uint32_t align)
{
    for (int i = 0; i < iovcnt; i++)
        if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (align - 1))
            return false;
    return true;
}

static struct io_uring_sqe *get_sqe(struct qv_disk_aio *aio)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&aio->ring);
    if (!sqe) { /* ring full: hand what is there to the kernel and retry once */
        io_uring_submit(&aio->ring);
        aio->unsubmitted = 0;
        sqe = io_uring_get_sqe(&aio->ring);
    }
    return sqe;
}

static void mapped_done(struct qv_disk *disk, struct qv_disk_aio_req *req)
{
    if (req->mapped_write && disk->ops->host_done)
        disk->ops->host_done(disk);
    req->mapped_write = 0;
}

/* Prepare req on the ring; false when it must run synchronously instead. */
static bool uring_prepare(struct qv_disk_aio *aio, struct qv_disk_aio_req *req)
{
    struct qv_disk *disk = aio->disk;
    struct qv_disk_extent ext;
    if (!disk->ops->host_map)
        return false;
    if (req->op == QV_DISK_AIO_FLUSH) {
        if (disk->ops->host_map(disk, 0, 0, 1, &ext) != 0)
            return false;
        struct io_uring_sqe *sqe = get_sqe(aio);
        if (!sqe)
            return false;
        io_uring_prep_fsync(sqe, ext.fd, IORING_FSYNC_DATASYNC);
        io_uring_sqe_set_data(sqe, req);
        req->how = HOW_URING;
        return true;
    }
    uint64_t len = qv_iov_total(req->iov, req->iovcnt);
    req->len = len;
    if (len == 0 || len > (1u << 30) || req->iovcnt > IOV_MAX ||
        disk->ops->host_map(disk, req->offset, len, req->op == QV_DISK_AIO_WRITE, &ext) != 0)
        return false;
    req->mapped_write = req->op == QV_DISK_AIO_WRITE;
    if (ext.align > 1 && ((ext.offset | len) & (ext.align - 1))) {
        mapped_done(disk, req);
        return false; /* partial O_DIRECT blocks: the format's read-modify-write */
    }
    bool bounce = ext.align > 1 && !iov_aligned(req->iov, req->iovcnt, ext.align);
    void *buf = NULL;
    if (bounce) {
        if (posix_memalign(&buf, ext.align, (size_t)len)) {
            mapped_done(disk, req);
            return false;
        }
        if (req->op == QV_DISK_AIO_WRITE)
            qv_iov_copy_out(req->iov, req->iovcnt, 0, buf, (size_t)len);
    }
    struct io_uring_sqe *sqe = get_sqe(aio);
    if (!sqe) {
        free(buf);
        mapped_done(disk, req);
        return false;
    }
    if (bounce && req->op == QV_DISK_AIO_WRITE)
        io_uring_prep_write(sqe, ext.fd, buf, (unsigned)len, ext.offset);
    else if (bounce)
        io_uring_prep_read(sqe, ext.fd, buf, (unsigned)len, ext.offset);
    else if (req->op == QV_DISK_AIO_WRITE)
        io_uring_prep_writev(sqe, ext.fd, req->iov, (unsigned)req->iovcnt, ext.offset);
    else
        io_uring_prep_readv(sqe, ext.fd, req->iov, (unsigned)req->iovcnt, ext.offset);
    io_uring_sqe_set_data(sqe, req);
    req->bounce = buf;
    req->how = bounce ? HOW_URING_BOUNCE : HOW_URING;
    if (bounce)
        stat_inc(&aio->stats.bounced);
    return true;
}

/* Move every available CQE's request to the done list (submitting thread). */
static void collect_uring(struct qv_disk_aio *aio)
{
    struct io_uring_cqe *cqe;
    while (aio->uring_inflight && io_uring_peek_cqe(&aio->ring, &cqe) == 0) {
        struct qv_disk_aio_req *req = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&aio->ring, cqe);
        aio->uring_inflight--;
        int rc = 0;
        if (req->op == QV_DISK_AIO_FLUSH) {
            if (res < 0)
                rc = qv_disk_fail(aio->disk, QV_STR_ERR_IO, "flush failed: %s", strerror(-res));
        } else if (res < 0 || (uint64_t)res != req->len) {
            /* an error or a short transfer: let the format do the whole request, which
             * retries short transfers and reports errors with their text */
            if (req->bounce) {
                free(req->bounce);
                req->bounce = NULL;
            }
            rc = run_sync(aio->disk, req);
        } else if (req->bounce && req->op == QV_DISK_AIO_READ) {
            qv_iov_copy_in(req->iov, req->iovcnt, 0, req->bounce, (size_t)req->len);
        }
        mapped_done(aio->disk, req);
        free(req->bounce);
        req->bounce = NULL;
        req->result = rc;
        pthread_mutex_lock(&aio->lock);
        push_done(aio, req);
        pthread_mutex_unlock(&aio->lock);
    }
}

/* ---- the interface ---- */

int qv_disk_aio_new(struct qv_disk *disk, int mode, unsigned workers, struct qv_disk_aio **out,
                    char *errbuf, size_t errlen)
{
    if (!disk || !out || (mode != QV_DISK_AIO_THREADS && mode != QV_DISK_AIO_NATIVE))
        return qv_disk_errf(errbuf, errlen, QV_ERR_INVAL, "unknown I/O mode %d", mode);
    struct qv_disk_aio *aio = calloc(1, sizeof *aio);
    if (!aio)
        return qv_disk_errf(errbuf, errlen, QV_ERR_NOMEM, "out of memory");
    aio->disk = disk;
    aio->mode = mode;
    pthread_mutex_init(&aio->lock, NULL);
    pthread_cond_init(&aio->work_cv, NULL);
    pthread_cond_init(&aio->idle_cv, NULL);
    aio->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (aio->efd < 0) {
        int e = errno;
        qv_disk_aio_free(aio);
        return qv_disk_errf(errbuf, errlen, QV_ERR_IO, "eventfd: %s", strerror(e));
    }
    if (mode == QV_DISK_AIO_NATIVE) {
        int rc = io_uring_queue_init(RING_ENTRIES, &aio->ring, 0);
        if (rc < 0) {
            qv_disk_aio_free(aio);
            return qv_disk_errf(errbuf, errlen, QV_ERR_NOTSUP,
                                "io_uring is not available (%s); use io \"threads\"",
                                strerror(-rc));
        }
        aio->ring_ok = true;
        rc = io_uring_register_eventfd(&aio->ring, aio->efd);
        if (rc < 0) {
            qv_disk_aio_free(aio);
            return qv_disk_errf(errbuf, errlen, QV_ERR_NOTSUP,
                                "io_uring eventfd registration failed: %s", strerror(-rc));
        }
    } else {
        unsigned n = workers ? workers : DEFAULT_WORKERS;
        if (n > MAX_WORKERS)
            n = MAX_WORKERS;
        aio->threads = calloc(n, sizeof *aio->threads);
        if (!aio->threads) {
            qv_disk_aio_free(aio);
            return qv_disk_errf(errbuf, errlen, QV_ERR_NOMEM, "out of memory");
        }
        for (unsigned i = 0; i < n; i++) {
            if (pthread_create(&aio->threads[i], NULL, worker, aio) != 0) {
                qv_disk_aio_free(aio);
                return qv_disk_errf(errbuf, errlen, QV_ERR_NOMEM, "cannot start I/O workers");
            }
            aio->nthreads++;
        }
    }
    *out = aio;
    return 0;
}

int qv_disk_aio_fd(const struct qv_disk_aio *aio)
{
    return aio->efd;
}

static void note_inflight(struct qv_disk_aio *aio)
{
    aio->inflight++;
    stat_inc(&aio->stats.submitted);
    if (aio->inflight > aio->stats.max_inflight)
        stat_set(&aio->stats.max_inflight, aio->inflight);
}

void qv_disk_aio_commit(struct qv_disk_aio *aio)
{
    if (aio->ring_ok && aio->unsubmitted) {
        io_uring_submit(&aio->ring);
        aio->unsubmitted = 0;
    }
}

void qv_disk_aio_submit(struct qv_disk_aio *aio, struct qv_disk_aio_req *req)
{
    req->mapped_write = 0;
    req->bounce = NULL;
    req->result = 0;
    req->next = NULL;
    note_inflight(aio);
    if (aio->mode == QV_DISK_AIO_THREADS) {
        req->how = HOW_THREAD;
        pthread_mutex_lock(&aio->lock);
        if (aio->todo_tail)
            aio->todo_tail->next = req;
        else
            aio->todo_head = req;
        aio->todo_tail = req;
        pthread_cond_signal(&aio->work_cv);
        pthread_mutex_unlock(&aio->lock);
        return;
    }
    if (uring_prepare(aio, req)) {
        stat_inc(&aio->stats.uring);
        aio->uring_inflight++;
        if (++aio->unsubmitted >= SUBMIT_BATCH)
            qv_disk_aio_commit(aio);
        return;
    }
    req->how = HOW_SYNC;
    stat_inc(&aio->stats.sync_fallback);
    complete_now(aio, req, run_sync(aio->disk, req));
}

unsigned qv_disk_aio_reap(struct qv_disk_aio *aio, struct qv_disk_aio_req **out, unsigned max)
{
    if (aio->ring_ok) {
        qv_disk_aio_commit(aio);
        collect_uring(aio);
    }
    unsigned n = 0;
    pthread_mutex_lock(&aio->lock);
    while (n < max && aio->done_head) {
        struct qv_disk_aio_req *req = aio->done_head;
        aio->done_head = req->next;
        if (!aio->done_head)
            aio->done_tail = NULL;
        req->next = NULL;
        out[n++] = req;
    }
    pthread_mutex_unlock(&aio->lock);
    aio->inflight -= n;
    for (unsigned i = 0; i < n; i++)
        stat_inc(&aio->stats.completed);
    return n;
}

unsigned qv_disk_aio_inflight(const struct qv_disk_aio *aio)
{
    return aio->inflight;
}

void qv_disk_aio_drain(struct qv_disk_aio *aio)
{
    if (aio->ring_ok) {
        qv_disk_aio_commit(aio);
        while (aio->uring_inflight) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(&aio->ring, &cqe);
            if (rc < 0 && rc != -EINTR && rc != -EAGAIN)
                break; /* the ring itself failed: nothing more will complete */
            collect_uring(aio);
        }
    }
    pthread_mutex_lock(&aio->lock);
    while (aio->todo_head || aio->running)
        pthread_cond_wait(&aio->idle_cv, &aio->lock);
    pthread_mutex_unlock(&aio->lock);
}

void qv_disk_aio_get_stats(const struct qv_disk_aio *aio, struct qv_disk_aio_stats *out)
{
    const uint64_t *src = (const uint64_t *)(const void *)&aio->stats;
    uint64_t *dst = (uint64_t *)(void *)out;
    for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

const char *qv_disk_aio_backend(const struct qv_disk_aio *aio)
{
    return aio->mode == QV_DISK_AIO_NATIVE ? "io_uring" : "threads";
}

void qv_disk_aio_free(struct qv_disk_aio *aio)
{
    if (!aio)
        return;
    qv_disk_aio_drain(aio);
    pthread_mutex_lock(&aio->lock);
    aio->stop = true;
    pthread_cond_broadcast(&aio->work_cv);
    pthread_mutex_unlock(&aio->lock);
    for (unsigned i = 0; i < aio->nthreads; i++)
        pthread_join(aio->threads[i], NULL);
    free(aio->threads);
    if (aio->ring_ok)
        io_uring_queue_exit(&aio->ring);
    if (aio->efd >= 0)
        close(aio->efd);
    pthread_cond_destroy(&aio->work_cv);
    pthread_cond_destroy(&aio->idle_cv);
    pthread_mutex_destroy(&aio->lock);
    free(aio);
}
