/* virtio-blk device logic: request parsing and execution on a qv_disk, configuration space,
 * features, token-bucket rate limits and statistics.
 *
 * A request is: a 16-byte header { le32 type; le32 reserved; le64 sector } in the readable
 * part, data (readable for writes, writable for reads), and a 1-byte status as the last
 * writable byte. The framing across descriptors is not assumed (section 5.2.6.4). */
#include "quantavirt/virtio_blk.h"

#include <endian.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quantavirt/disk_aio.h"
#include "quantavirt/errors.h"

#define SECTOR 512u
/* requests in flight at once per device with an asynchronous engine (all queues together) */
#define ASYNC_SLOTS 128u
#define HDR_BYTES 16u
#define SEG_BYTES 16u

struct bucket {
    double rate;     /* units per second; 0 = unlimited */
    double tokens;   /* may go negative: a request larger than the burst leaves a debt */
    uint64_t last_ns;
};

/* One request from pop to push. Synchronously each queue uses its own; with an engine
 * (io threads / native) they come from a pool and live until the engine completes them. */
struct blk_req {
    struct qv_disk_aio_req aio; /* first: reaped requests convert back */
    struct iovec *iov;      /* iov_cap entries: the popped chain */
    struct iovec *data;     /* iov_cap entries: the data slice of a request */
    struct qv_vq_elem elem;
    unsigned int q;
    uint32_t type;          /* header fields, read once at pop (no double fetch) */
    uint64_t sector;
    uint64_t seq;           /* pop order over the device, for flush ordering */
    int charged;            /* the rate limits were already paid */
    int submitted;          /* in the engine */
    struct blk_req *next_free;
};

struct blk_queue {
    struct blk_req sync;    /* the request of the synchronous path */
    struct blk_req *held;   /* popped, not started: rate-limited, or a flush waiting for the
                               writes before it */
    int stalled;            /* no free request: completions process the queue again */
};

struct qv_virtio_blk {
    struct qv_virtio_device dev; /* first: the transport hands us &dev */
    struct qv_disk *disk;
    int readonly;
    int discard;
    uint32_t seg_max;
    unsigned int iov_cap;
    char serial[QV_VIRTIO_BLK_ID_BYTES];
    uint8_t config[QV_VIRTIO_BLK_CONFIG_SIZE];
    struct bucket bytes, ops;
    uint64_t (*clock_ns)(void *opaque);
    void *clock_opaque;
    struct blk_queue *q;
    struct qv_virtio_blk_stats stats;
    struct qv_disk_aio *aio;   /* NULL: requests run inline in process_queue */
    struct blk_req *slots;     /* ASYNC_SLOTS, with aio */
    struct blk_req *free_slots;
    uint64_t next_seq;
};

static struct qv_virtio_blk *to_blk(struct qv_virtio_device *dev)
{
    return (struct qv_virtio_blk *)(void *)dev;
}

static uint64_t monotonic_ns(void *opaque)
{
    (void)opaque;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void stat_add(uint64_t *counter, uint64_t v)
{
    __atomic_fetch_add(counter, v, __ATOMIC_RELAXED); /* read concurrently by get_stats */
}

/* ---- token buckets: burst = one second of rate ---- */

static void bucket_init(struct bucket *b, uint64_t rate, uint64_t now)
{
    b->rate = (double)rate;
    b->tokens = (double)rate;
    b->last_ns = now;
}

static void bucket_refill(struct bucket *b, uint64_t now)
{
    if (now > b->last_ns) {
        b->tokens += (double)(now - b->last_ns) * b->rate / 1e9;
        if (b->tokens > b->rate)
            b->tokens = b->rate;
    }
    b->last_ns = now;
}

/* 0 when cost may be spent now, else ns to wait. A cost above the burst needs a full bucket. */
static uint64_t bucket_wait(const struct bucket *b, double cost)
{
    if (b->rate == 0)
        return 0;
    double need = cost < b->rate ? cost : b->rate;
    if (b->tokens >= need)
        return 0;
    double ns = (need - b->tokens) * 1e9 / b->rate;
    return ns < 1 ? 1 : (uint64_t)ns + 1;
}

/* ---- configuration space ---- */

static void build_config(struct qv_virtio_blk *blk)
{
    uint8_t *c = blk->config;
    memset(c, 0, sizeof blk->config);
    uint64_t capacity = htole64(blk->disk->size / SECTOR);
    memcpy(c + 0, &capacity, 8);
    uint32_t v32 = htole32(blk->seg_max);
    memcpy(c + 12, &v32, 4);
    v32 = htole32(SECTOR);
    memcpy(c + 20, &v32, 4); /* blk_size */
    uint16_t nq = htole16(blk->dev.num_queues);
    memcpy(c + 34, &nq, 2);
    v32 = htole32(QV_VIRTIO_BLK_MAX_DISCARD_SECTORS);
    memcpy(c + 36, &v32, 4); /* max_discard_sectors */
    memcpy(c + 48, &v32, 4); /* max_write_zeroes_sectors */
    v32 = htole32(QV_VIRTIO_BLK_MAX_DISCARD_SEG);
    memcpy(c + 40, &v32, 4); /* max_discard_seg */
    memcpy(c + 52, &v32, 4); /* max_write_zeroes_seg */
    v32 = htole32(1);
    memcpy(c + 44, &v32, 4); /* discard_sector_alignment (sectors) */
}

static void blk_read_config(struct qv_virtio_device *dev, uint32_t offset, void *buf,
                            uint32_t len)
{
    memcpy(buf, to_blk(dev)->config + offset, len); /* the transport checked the range */
}

static uint64_t blk_features(struct qv_virtio_device *dev)
{
    struct qv_virtio_blk *blk = to_blk(dev);
    uint64_t f = (1ull << QV_VIRTIO_BLK_F_SEG_MAX) | (1ull << QV_VIRTIO_BLK_F_BLK_SIZE) |
                 (1ull << QV_VIRTIO_BLK_F_FLUSH);
    if (blk->readonly)
        f |= 1ull << QV_VIRTIO_BLK_F_RO;
    else
        f |= 1ull << QV_VIRTIO_BLK_F_WRITE_ZEROES;
    if (blk->discard && !blk->readonly)
        f |= 1ull << QV_VIRTIO_BLK_F_DISCARD;
    if (dev->num_queues > 1)
        f |= 1ull << QV_VIRTIO_BLK_F_MQ;
    return f;
}

/* ---- request execution ---- */

/* [sector*512, +bytes) inside the disk, overflow-safe */
static int range_ok(const struct qv_virtio_blk *blk, uint64_t sector, uint64_t bytes)
{
    if (sector > UINT64_MAX / SECTOR)
        return 0;
    uint64_t off = sector * SECTOR;
    return off <= blk->disk->size && bytes <= blk->disk->size - off;
}

static uint64_t rw_len(const struct blk_req *r, int write)
{
    return write ? r->elem.out_len - HDR_BYTES : r->elem.in_len - 1;
}

/* Check an IN/OUT request and slice its data into r->data; the slice count, or -1 (IOERR). */
static int rw_prepare(struct qv_virtio_blk *blk, struct blk_req *r, int write)
{
    struct qv_vq_elem *e = &r->elem;
    const struct iovec *src = write ? e->iov : e->iov + e->out_num;
    unsigned int nsrc = write ? e->out_num : e->in_num;
    uint64_t len = rw_len(r, write);
    if (write && blk->readonly)
        return -1;
    if (len % SECTOR || !range_ok(blk, r->sector, len))
        return -1;
    return qv_iov_slice(src, nsrc, write ? HDR_BYTES : 0, len, r->data, blk->iov_cap);
}

static void count_rw(struct qv_virtio_blk *blk, int write, uint64_t len)
{
    if (write) {
        stat_add(&blk->stats.wr_ops, 1);
        stat_add(&blk->stats.wr_bytes, len);
    } else {
        stat_add(&blk->stats.rd_ops, 1);
        stat_add(&blk->stats.rd_bytes, len);
    }
}

static uint8_t do_rw(struct qv_virtio_blk *blk, struct blk_req *r, int write)
{
    int n = rw_prepare(blk, r, write);
    if (n < 0)
        return QV_VIRTIO_BLK_S_IOERR;
    uint64_t off = r->sector * SECTOR;
    int rc = write ? blk->disk->ops->writev(blk->disk, off, r->data, n)
                   : blk->disk->ops->readv(blk->disk, off, r->data, n);
    if (rc != 0)
        return QV_VIRTIO_BLK_S_IOERR;
    count_rw(blk, write, rw_len(r, write));
    return QV_VIRTIO_BLK_S_OK;
}

static int zero_fallback(struct qv_disk *disk, uint64_t off, uint64_t len)
{
    static const uint8_t zeroes[65536];
    while (len > 0) {
        size_t chunk = len < sizeof zeroes ? (size_t)len : sizeof zeroes;
        struct iovec iov = {.iov_base = (void *)zeroes, .iov_len = chunk};
        int rc = disk->ops->writev(disk, off, &iov, 1);
        if (rc != 0)
            return rc;
        off += chunk;
        len -= chunk;
    }
    return 0;
}

/* DISCARD and WRITE_ZEROES: an array of { le64 sector; le32 num_sectors; le32 flags }. */
static uint8_t do_ranges(struct qv_virtio_blk *blk, struct blk_req *r, uint32_t type)
{
    struct qv_vq_elem *e = &r->elem;
    int discard = type == QV_VIRTIO_BLK_T_DISCARD;
    if (discard && !blk->discard)
        return QV_VIRTIO_BLK_S_UNSUPP;
    if (blk->readonly)
        return QV_VIRTIO_BLK_S_IOERR;
    uint64_t bytes = e->out_len - HDR_BYTES;
    if (bytes == 0 || bytes % SEG_BYTES)
        return QV_VIRTIO_BLK_S_IOERR;
    uint64_t nseg = bytes / SEG_BYTES;
    if (nseg > QV_VIRTIO_BLK_MAX_DISCARD_SEG)
        return QV_VIRTIO_BLK_S_IOERR;
    struct {
        uint64_t sector;
        uint32_t num, flags;
    } seg[QV_VIRTIO_BLK_MAX_DISCARD_SEG];
    /* check every segment before changing anything */
    for (uint64_t i = 0; i < nseg; i++) {
        uint8_t raw[SEG_BYTES];
        if (qv_iov_to_buf(e->iov, e->out_num, HDR_BYTES + i * SEG_BYTES, raw, SEG_BYTES) !=
            SEG_BYTES)
            return QV_VIRTIO_BLK_S_IOERR;
        memcpy(&seg[i].sector, raw, 8);
        memcpy(&seg[i].num, raw + 8, 4);
        memcpy(&seg[i].flags, raw + 12, 4);
        seg[i].sector = le64toh(seg[i].sector);
        seg[i].num = le32toh(seg[i].num);
        seg[i].flags = le32toh(seg[i].flags);
        /* bit 0 is "unmap": meaningful for WRITE_ZEROES only; other bits are reserved */
        if ((seg[i].flags & ~1u) || (discard && (seg[i].flags & 1u)))
            return QV_VIRTIO_BLK_S_UNSUPP;
        if (seg[i].num > QV_VIRTIO_BLK_MAX_DISCARD_SECTORS ||
            !range_ok(blk, seg[i].sector, (uint64_t)seg[i].num * SECTOR))
            return QV_VIRTIO_BLK_S_IOERR;
    }
    for (uint64_t i = 0; i < nseg; i++) {
        uint64_t off = seg[i].sector * SECTOR, len = (uint64_t)seg[i].num * SECTOR;
        int rc;
        if (discard)
            rc = blk->disk->ops->discard(blk->disk, off, len);
        else if (blk->disk->ops->write_zeroes)
            rc = blk->disk->ops->write_zeroes(blk->disk, off, len);
        else
            rc = zero_fallback(blk->disk, off, len);
        if (rc != 0)
            return QV_VIRTIO_BLK_S_IOERR;
    }
    stat_add(discard ? &blk->stats.discard_ops : &blk->stats.write_zeroes_ops, 1);
    return QV_VIRTIO_BLK_S_OK;
}

static void count_status(struct qv_virtio_blk *blk, uint8_t status)
{
    if (status == QV_VIRTIO_BLK_S_IOERR)
        stat_add(&blk->stats.io_errors, 1);
    else if (status == QV_VIRTIO_BLK_S_UNSUPP)
        stat_add(&blk->stats.unsupported, 1);
}

/* Store the status byte; returns the used length (data + status for a good IN). */
static uint32_t finish(struct blk_req *r, uint8_t status, uint64_t written)
{
    struct qv_vq_elem *e = &r->elem;
    qv_iov_from_buf(e->iov + e->out_num, e->in_num, e->in_len - 1, &status, 1);
    return written > UINT32_MAX ? UINT32_MAX : (uint32_t)written;
}

/* Execute the popped request; returns the bytes written into the writable part. */
static uint32_t execute(struct qv_virtio_blk *blk, struct blk_req *r)
{
    struct qv_vq_elem *e = &r->elem;
    uint32_t type = r->type;
    uint8_t status;
    uint64_t written = 1; /* the status byte */
    switch (type) {
    case QV_VIRTIO_BLK_T_IN:
        status = do_rw(blk, r, 0);
        if (status == QV_VIRTIO_BLK_S_OK)
            written = e->in_len;
        break;
    case QV_VIRTIO_BLK_T_OUT:
        status = do_rw(blk, r, 1);
        break;
    case QV_VIRTIO_BLK_T_FLUSH:
        status = QV_VIRTIO_BLK_S_OK;
        if (blk->disk->ops->flush && blk->disk->ops->flush(blk->disk) != 0)
            status = QV_VIRTIO_BLK_S_IOERR;
        stat_add(&blk->stats.flush_ops, 1);
        break;
    case QV_VIRTIO_BLK_T_GET_ID: {
        uint64_t room = e->in_len - 1;
        size_t n = room < QV_VIRTIO_BLK_ID_BYTES ? (size_t)room : QV_VIRTIO_BLK_ID_BYTES;
        written += qv_iov_from_buf(e->iov + e->out_num, e->in_num, 0, blk->serial, n);
        status = QV_VIRTIO_BLK_S_OK;
        stat_add(&blk->stats.get_id_ops, 1);
        break;
    }
    case QV_VIRTIO_BLK_T_DISCARD:
    case QV_VIRTIO_BLK_T_WRITE_ZEROES:
        status = do_ranges(blk, r, type);
        break;
    default:
        status = QV_VIRTIO_BLK_S_UNSUPP;
        break;
    }
    count_status(blk, status);
    return finish(r, status, written);
}

/* ---- the asynchronous engine ---- */

static struct blk_req *take_req(struct qv_virtio_blk *blk, struct blk_queue *bq)
{
    if (!blk->aio)
        return &bq->sync;
    struct blk_req *r = blk->free_slots;
    if (r)
        blk->free_slots = r->next_free;
    return r;
}

static void give_req(struct qv_virtio_blk *blk, struct blk_req *r)
{
    if (!blk->aio)
        return;
    r->submitted = 0;
    r->next_free = blk->free_slots;
    blk->free_slots = r;
}

/* A flush completes after every write popped before it: true while one is still running. */
static int earlier_writes_running(const struct qv_virtio_blk *blk, uint64_t seq)
{
    for (unsigned i = 0; i < ASYNC_SLOTS; i++) {
        const struct blk_req *r = &blk->slots[i];
        if (r->submitted && r->type == QV_VIRTIO_BLK_T_OUT && r->seq < seq)
            return 1;
    }
    return 0;
}

/* Hand IN / OUT / FLUSH to the engine; 0 when the request is to run inline (everything else,
 * and requests that fail their checks: execute() answers them with IOERR). */
static int start_async(struct qv_virtio_blk *blk, struct blk_req *r)
{
    if (r->type == QV_VIRTIO_BLK_T_FLUSH) {
        r->aio.op = QV_DISK_AIO_FLUSH;
        r->aio.iov = NULL;
        r->aio.iovcnt = 0;
    } else if (r->type == QV_VIRTIO_BLK_T_IN || r->type == QV_VIRTIO_BLK_T_OUT) {
        int write = r->type == QV_VIRTIO_BLK_T_OUT;
        int n = rw_prepare(blk, r, write);
        if (n < 0)
            return 0;
        r->aio.op = write ? QV_DISK_AIO_WRITE : QV_DISK_AIO_READ;
        r->aio.offset = r->sector * SECTOR;
        r->aio.iov = r->data;
        r->aio.iovcnt = n;
    } else {
        return 0;
    }
    r->submitted = 1;
    qv_disk_aio_submit(blk->aio, &r->aio);
    return 1;
}

/* Finished engine requests -> used ring. Returns the queues to process again (bit q). */
static uint64_t blk_complete(struct qv_virtio_device *dev)
{
    struct qv_virtio_blk *blk = to_blk(dev);
    if (!blk->aio)
        return 0;
    uint64_t touched = 0, again = 0;
    struct qv_disk_aio_req *done[32];
    unsigned n;
    while ((n = qv_disk_aio_reap(blk->aio, done, 32)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            struct blk_req *r = (struct blk_req *)(void *)done[i];
            uint8_t status = done[i]->result == 0 ? QV_VIRTIO_BLK_S_OK : QV_VIRTIO_BLK_S_IOERR;
            uint64_t written = 1;
            if (r->type == QV_VIRTIO_BLK_T_FLUSH) {
                stat_add(&blk->stats.flush_ops, 1);
            } else if (status == QV_VIRTIO_BLK_S_OK) {
                int write = r->type == QV_VIRTIO_BLK_T_OUT;
                count_rw(blk, write, rw_len(r, write));
                if (!write)
                    written = r->elem.in_len;
            }
            count_status(blk, status);
            r->submitted = 0;
            uint32_t used = finish(r, status, written);
            qv_vq_push(&dev->queues[r->q], r->elem.head, used); /* fails only if broken */
            touched |= 1ull << r->q;
            give_req(blk, r);
        }
    }
    for (unsigned q = 0; q < dev->num_queues; q++) {
        if (touched >> q & 1)
            qv_virtio_device_signal(dev, q);
        struct blk_queue *bq = &blk->q[q];
        if (bq->stalled || (bq->held && bq->held->type == QV_VIRTIO_BLK_T_FLUSH)) {
            bq->stalled = 0;
            again |= 1ull << q;
        }
    }
    return again;
}

static uint64_t process(struct qv_virtio_blk *blk, unsigned int q)
{
    struct qv_virtio_device *dev = &blk->dev;
    struct qv_virtqueue *vq = &dev->queues[q];
    struct blk_queue *bq = &blk->q[q];
    int limited = blk->bytes.rate != 0 || blk->ops.rate != 0;
    qv_vq_disable_notify(vq);
    for (;;) {
        struct blk_req *r = bq->held;
        if (!r) {
            r = take_req(blk, bq);
            if (!r) {
                /* every request is in flight: the next completion comes back here */
                bq->stalled = 1;
                qv_virtio_device_signal(dev, q);
                return 0;
            }
            r->elem.iov = r->iov;
            r->elem.iov_cap = blk->iov_cap;
            int rc = qv_vq_pop(vq, &r->elem);
            if (rc == 0 && qv_vq_enable_notify(vq)) {
                /* buffers arrived while notifications were off: go on */
                give_req(blk, r);
                qv_vq_disable_notify(vq);
                continue;
            }
            if (rc <= 0) {
                give_req(blk, r);
                qv_virtio_device_signal(dev, q);
                return 0; /* empty, or broken (the transport reports it) */
            }
            uint8_t hdr[HDR_BYTES];
            /* a request without a header or a status byte is a driver bug: stop the device */
            if (r->elem.in_len < 1 ||
                qv_iov_to_buf(r->elem.iov, r->elem.out_num, 0, hdr, HDR_BYTES) != HDR_BYTES) {
                give_req(blk, r);
                qv_vq_set_broken(vq, QV_VQ_ERR_DEVICE);
                qv_virtio_device_signal(dev, q);
                return 0;
            }
            memcpy(&r->type, hdr, 4);
            memcpy(&r->sector, hdr + 8, 8);
            r->type = le32toh(r->type);
            r->sector = le64toh(r->sector);
            r->q = q;
            r->seq = blk->next_seq++;
            r->charged = 0;
        }
        struct qv_vq_elem *e = &r->elem;
        if (limited && !r->charged) {
            uint64_t now = blk->clock_ns(blk->clock_opaque);
            bucket_refill(&blk->bytes, now);
            bucket_refill(&blk->ops, now);
            double bytes = 0;
            if (r->type == QV_VIRTIO_BLK_T_IN)
                bytes = (double)(e->in_len - 1);
            else if (r->type == QV_VIRTIO_BLK_T_OUT)
                bytes = (double)(e->out_len - HDR_BYTES);
            uint64_t wb = bucket_wait(&blk->bytes, bytes), wo = bucket_wait(&blk->ops, 1);
            if (wb || wo) {
                /* hold the request and ask to be called back when tokens allow */
                bq->held = r;
                stat_add(&blk->stats.throttled, 1);
                qv_virtio_device_signal(dev, q);
                return now + (wb > wo ? wb : wo);
            }
            if (blk->bytes.rate != 0)
                blk->bytes.tokens -= bytes;
            if (blk->ops.rate != 0)
                blk->ops.tokens -= 1;
            r->charged = 1;
        }
        if (blk->aio && r->type == QV_VIRTIO_BLK_T_FLUSH && earlier_writes_running(blk, r->seq)) {
            bq->held = r; /* blk_complete brings the queue back here */
            qv_virtio_device_signal(dev, q);
            return 0;
        }
        bq->held = NULL;
        if (blk->aio && start_async(blk, r))
            continue;
        uint32_t written = execute(blk, r);
        int pushed = qv_vq_push(vq, e->head, written);
        give_req(blk, r);
        if (pushed < 0)
            return 0;
    }
}

static uint64_t blk_process(struct qv_virtio_device *dev, unsigned int q)
{
    struct qv_virtio_blk *blk = to_blk(dev);
    uint64_t deadline = process(blk, q);
    if (blk->aio)
        qv_disk_aio_commit(blk->aio);
    return deadline;
}

/* Wait for the engine (guest buffers must not be written after the reset), drop the rest. */
static void drop_inflight(struct qv_virtio_blk *blk)
{
    if (!blk->aio)
        return;
    qv_disk_aio_drain(blk->aio);
    struct qv_disk_aio_req *done[32];
    unsigned n;
    while ((n = qv_disk_aio_reap(blk->aio, done, 32)) > 0)
        for (unsigned i = 0; i < n; i++)
            give_req(blk, (struct blk_req *)(void *)done[i]);
}

static void blk_reset(struct qv_virtio_device *dev)
{
    struct qv_virtio_blk *blk = to_blk(dev);
    drop_inflight(blk);
    for (unsigned i = 0; i < dev->num_queues; i++) {
        if (blk->q[i].held)
            give_req(blk, blk->q[i].held);
        blk->q[i].held = NULL;
        blk->q[i].stalled = 0;
    }
}

static const struct qv_virtio_device_ops blk_ops = {
    .features = blk_features,
    .read_config = blk_read_config,
    .process_queue = blk_process,
    .reset = blk_reset,
    .complete = blk_complete,
};

static int alloc_req(struct blk_req *r, unsigned int iov_cap)
{
    r->iov = calloc(iov_cap, sizeof(struct iovec));
    r->data = calloc(iov_cap, sizeof(struct iovec));
    return r->iov && r->data ? 0 : -1;
}

int qv_virtio_blk_create(struct qv_disk *disk, const struct qv_virtio_blk_options *opts,
                         struct qv_virtio_blk **out, char *errbuf, size_t errlen)
{
    static const struct qv_virtio_blk_options defaults;
    if (!opts)
        opts = &defaults;
    uint16_t nq = opts->num_queues ? opts->num_queues : 1;
    uint16_t qsize = opts->queue_size ? opts->queue_size : 256;
    uint32_t seg_max = opts->seg_max ? opts->seg_max : 126;
    if (errlen)
        errbuf[0] = 0;
    if (!out || !disk || !disk->ops || !disk->ops->readv || !disk->ops->writev ||
        nq > QV_VIRTIO_MAX_QUEUES || (qsize & (qsize - 1)) || qsize > QV_VQ_MAX_SIZE ||
        seg_max > 4096 || (opts->serial && strlen(opts->serial) > QV_VIRTIO_BLK_ID_BYTES) ||
        opts->io_mode > QV_VIRTIO_BLK_IO_NATIVE) {
        if (errlen)
            snprintf(errbuf, errlen, "invalid virtio-blk options");
        return QV_ERR_INVAL;
    }
    struct qv_virtio_blk *blk = calloc(1, sizeof *blk);
    if (!blk)
        return QV_ERR_NOMEM;
    blk->q = calloc(nq, sizeof *blk->q);
    if (!blk->q) {
        free(blk);
        return QV_ERR_NOMEM;
    }
    blk->dev.num_queues = nq;
    blk->iov_cap = seg_max + 2; /* + header and status */
    for (unsigned i = 0; i < nq; i++) {
        if (alloc_req(&blk->q[i].sync, blk->iov_cap)) {
            qv_virtio_blk_free(blk);
            return QV_ERR_NOMEM;
        }
    }
    if (opts->io_mode != QV_VIRTIO_BLK_IO_INLINE) {
        int mode = opts->io_mode == QV_VIRTIO_BLK_IO_NATIVE ? QV_DISK_AIO_NATIVE
                                                            : QV_DISK_AIO_THREADS;
        int rc = qv_disk_aio_new(disk, mode, opts->io_workers, &blk->aio, errbuf, errlen);
        if (rc) {
            qv_virtio_blk_free(blk);
            return rc;
        }
        blk->slots = calloc(ASYNC_SLOTS, sizeof *blk->slots);
        if (!blk->slots) {
            qv_virtio_blk_free(blk);
            return QV_ERR_NOMEM;
        }
        for (unsigned i = ASYNC_SLOTS; i-- > 0;) {
            if (alloc_req(&blk->slots[i], blk->iov_cap)) {
                qv_virtio_blk_free(blk);
                return QV_ERR_NOMEM;
            }
            blk->slots[i].next_free = blk->free_slots;
            blk->free_slots = &blk->slots[i];
        }
    }
    blk->disk = disk;
    blk->readonly = opts->readonly || disk->readonly;
    blk->discard = opts->discard && disk->ops->discard;
    blk->seg_max = seg_max;
    if (opts->serial)
        memcpy(blk->serial, opts->serial, strlen(opts->serial));
    blk->clock_ns = opts->clock_ns ? opts->clock_ns : monotonic_ns;
    blk->clock_opaque = opts->clock_opaque;
    uint64_t now = blk->clock_ns(blk->clock_opaque);
    bucket_init(&blk->bytes, opts->io_limit, now);
    bucket_init(&blk->ops, opts->iops_limit, now);
    blk->dev.device_id = QV_VIRTIO_ID_BLOCK;
    blk->dev.queue_max_size = qsize;
    blk->dev.pci_class = 0x018000; /* mass storage, other */
    blk->dev.config_size = QV_VIRTIO_BLK_CONFIG_SIZE;
    blk->dev.ops = &blk_ops;
    build_config(blk);
    *out = blk;
    return QV_SUCCESS;
}

struct qv_virtio_blk *qv_virtio_blk_new(struct qv_disk *disk,
                                        const struct qv_virtio_blk_options *opts)
{
    struct qv_virtio_blk *blk = NULL;
    char err[8];
    return qv_virtio_blk_create(disk, opts, &blk, err, sizeof err) == QV_SUCCESS ? blk : NULL;
}

struct qv_virtio_device *qv_virtio_blk_device(struct qv_virtio_blk *blk)
{
    return &blk->dev;
}

int qv_virtio_blk_completion_fd(const struct qv_virtio_blk *blk)
{
    return blk->aio ? qv_disk_aio_fd(blk->aio) : -1;
}

void qv_virtio_blk_drain(struct qv_virtio_blk *blk)
{
    if (blk->aio)
        qv_disk_aio_drain(blk->aio);
}

const char *qv_virtio_blk_io_backend(const struct qv_virtio_blk *blk)
{
    return blk->aio ? qv_disk_aio_backend(blk->aio) : "inline";
}

void qv_virtio_blk_get_stats(struct qv_virtio_blk *blk, struct qv_virtio_blk_stats *out)
{
    const uint64_t *src = (const uint64_t *)(const void *)&blk->stats;
    uint64_t *dst = (uint64_t *)(void *)out;
    size_t counters = offsetof(struct qv_virtio_blk_stats, aio_submitted) / sizeof(uint64_t);
    for (size_t i = 0; i < counters; i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    out->aio_submitted = out->aio_uring = out->aio_bounced = out->aio_sync_fallback = 0;
    out->aio_max_inflight = 0;
    if (blk->aio) {
        struct qv_disk_aio_stats a;
        qv_disk_aio_get_stats(blk->aio, &a);
        out->aio_submitted = a.submitted;
        out->aio_uring = a.uring;
        out->aio_bounced = a.bounced;
        out->aio_sync_fallback = a.sync_fallback;
        out->aio_max_inflight = a.max_inflight;
    }
}

void qv_virtio_blk_free(struct qv_virtio_blk *blk)
{
    if (!blk)
        return;
    qv_disk_aio_free(blk->aio); /* drains: nothing touches guest memory afterwards */
    if (blk->slots) {
        for (unsigned i = 0; i < ASYNC_SLOTS; i++) {
            free(blk->slots[i].iov);
            free(blk->slots[i].data);
        }
        free(blk->slots);
    }
    for (unsigned i = 0; i < blk->dev.num_queues; i++) {
        free(blk->q[i].sync.iov);
        free(blk->q[i].sync.data);
    }
    free(blk->q);
    free(blk);
}
