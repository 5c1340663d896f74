/* virtio-balloon: inflate (pages the guest gives up), deflate (pages it takes back) and
 * memory statistics. PFNs are 4 KiB frame numbers; any PFN outside guest RAM is ignored and
 * counted, never dereferenced. */
#include "quantavirt/virtio_balloon.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BALLOON_QUEUE_SIZE 128u
#define BALLOON_IOV_CAP 16u
#define BALLOON_CONFIG_SIZE 8u /* num_pages, actual */
#define STAT_BYTES 10u         /* packed { le16 tag; le64 val; } */
#define PFN_CHUNK 256u

struct qv_virtio_balloon {
    struct qv_virtio_device dev; /* first */
    struct qv_virtio_balloon_options opts;
    uint32_t num_pages; /* target, written by the host */
    uint32_t actual;    /* written by the driver */
    struct iovec iov[BALLOON_IOV_CAP];
    struct iovec stats_iov[BALLOON_IOV_CAP];
    struct qv_vq_elem stats_elem; /* the driver's stats buffer, held until a refresh */
    int stats_held;
    int stats_wanted;  /* under the transport lock */
    int stats_request; /* set from any thread by qv_virtio_balloon_request_stats */
    struct qv_virtio_balloon_stats stats;
};

static struct qv_virtio_balloon *to_balloon(struct qv_virtio_device *dev)
{
    return (struct qv_virtio_balloon *)(void *)dev;
}

static void add(uint64_t *c, uint64_t v)
{
    __atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static void default_discard(void *opaque, uint64_t gpa, void *host, uint64_t len)
{
    (void)opaque;
    (void)gpa;
    /* private anonymous guest RAM: the pages are freed and read back as zeroes */
    madvise(host, (size_t)len, MADV_DONTNEED);
}

/* Discard one run of contiguous pages if it is entirely guest RAM, else count it as bad. */
static void release_run(struct qv_virtio_balloon *b, const struct qv_guest_memory *mem,
                        uint64_t first_pfn, uint64_t count)
{
    uint64_t gpa = first_pfn * QV_VIRTIO_BALLOON_PAGE_SIZE;
    uint64_t len = count * QV_VIRTIO_BALLOON_PAGE_SIZE;
    void *host = qv_guest_ptr(mem, gpa, len);
    if (!host) {
        /* retry page by page: only the pages outside RAM are bad */
        for (uint64_t i = 0; i < count; i++) {
            void *h = qv_guest_ptr(mem, gpa + i * QV_VIRTIO_BALLOON_PAGE_SIZE,
                                   QV_VIRTIO_BALLOON_PAGE_SIZE);
            if (h)
                b->opts.discard(b->opts.opaque, gpa + i * QV_VIRTIO_BALLOON_PAGE_SIZE, h,
                                QV_VIRTIO_BALLOON_PAGE_SIZE);
            else
                add(&b->stats.bad_pfns, 1);
        }
        return;
    }
    b->opts.discard(b->opts.opaque, gpa, host, len);
}

static void process_pfns(struct qv_virtio_balloon *b, unsigned q)
{
    struct qv_virtqueue *vq = &b->dev.queues[q];
    struct qv_vq_elem e = {.iov = b->iov, .iov_cap = BALLOON_IOV_CAP};
    for (;;) {
        if (qv_vq_pop(vq, &e) <= 0)
            return;
        uint64_t npfn = e.out_len / 4, done = 0;
        uint64_t run_start = 0, run_len = 0;
        while (done < npfn) {
            uint32_t chunk[PFN_CHUNK];
            uint64_t n = npfn - done < PFN_CHUNK ? npfn - done : PFN_CHUNK;
            qv_iov_to_buf(e.iov, e.out_num, done * 4, chunk, n * 4);
            for (uint64_t i = 0; i < n; i++) {
                uint64_t pfn = le32toh(chunk[i]);
                if (q != QV_VIRTIO_BALLOON_INFLATEQ)
                    continue; /* deflated pages fault back in on their own */
                if (run_len && pfn == run_start + run_len) {
                    run_len++;
                    continue;
                }
                if (run_len)
                    release_run(b, vq->mem, run_start, run_len);
                run_start = pfn;
                run_len = 1;
            }
            done += n;
        }
        if (run_len)
            release_run(b, vq->mem, run_start, run_len);
        add(q == QV_VIRTIO_BALLOON_INFLATEQ ? &b->stats.inflated_pages : &b->stats.deflated_pages,
            npfn);
        if (qv_vq_push(vq, e.head, 0) < 0)
            return;
    }
}

static void process_stats(struct qv_virtio_balloon *b)
{
    struct qv_virtqueue *vq = &b->dev.queues[QV_VIRTIO_BALLOON_STATSQ];
    if (b->stats_held && b->stats_wanted) {
        /* giving the buffer back asks the driver to refill it */
        b->stats_held = 0;
        b->stats_wanted = 0;
        if (qv_vq_push(vq, b->stats_elem.head, 0) < 0)
            return;
    }
    while (!b->stats_held) {
        b->stats_elem.iov = b->stats_iov;
        b->stats_elem.iov_cap = BALLOON_IOV_CAP;
        if (qv_vq_pop(vq, &b->stats_elem) <= 0)
            return;
        b->stats_held = 1;
        uint64_t n = b->stats_elem.out_len / STAT_BYTES;
        for (uint64_t i = 0; i < n && i < 64; i++) {
            uint8_t raw[STAT_BYTES];
            qv_iov_to_buf(b->stats_elem.iov, b->stats_elem.out_num, i * STAT_BYTES, raw,
                          STAT_BYTES);
            uint16_t tag;
            uint64_t val;
            memcpy(&tag, raw, 2);
            memcpy(&val, raw + 2, 8);
            tag = le16toh(tag);
            if (tag < QV_VIRTIO_BALLOON_S_NR)
                __atomic_store_n(&b->stats.value[tag], le64toh(val), __ATOMIC_RELAXED);
        }
        add(&b->stats.updates, 1);
        if (b->stats_wanted) { /* a request came while the driver was refilling */
            b->stats_held = 0;
            b->stats_wanted = 0;
            if (qv_vq_push(vq, b->stats_elem.head, 0) < 0)
                return;
        }
    }
}

static uint64_t balloon_process(struct qv_virtio_device *dev, unsigned int q)
{
    struct qv_virtio_balloon *b = to_balloon(dev);
    if (q == QV_VIRTIO_BALLOON_STATSQ) {
        if (__atomic_exchange_n(&b->stats_request, 0, __ATOMIC_ACQ_REL))
            b->stats_wanted = 1;
        process_stats(b);
    } else {
        process_pfns(b, q);
    }
    qv_virtio_device_signal(dev, q);
    return 0;
}

static uint64_t balloon_features(struct qv_virtio_device *dev)
{
    struct qv_virtio_balloon *b = to_balloon(dev);
    uint64_t f = 1ull << QV_VIRTIO_BALLOON_F_STATS_VQ;
    if (b->opts.deflate_on_oom)
        f |= 1ull << QV_VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
    return f;
}

static void balloon_read_config(struct qv_virtio_device *dev, uint32_t offset, void *buf,
                                uint32_t len)
{
    struct qv_virtio_balloon *b = to_balloon(dev);
    uint8_t cfg[BALLOON_CONFIG_SIZE];
    uint32_t target = htole32(__atomic_load_n(&b->num_pages, __ATOMIC_RELAXED));
    uint32_t actual = htole32(__atomic_load_n(&b->actual, __ATOMIC_RELAXED));
    memcpy(cfg, &target, 4);
    memcpy(cfg + 4, &actual, 4);
    memcpy(buf, cfg + offset, len);
}

static void balloon_write_config(struct qv_virtio_device *dev, uint32_t offset, const void *buf,
                                 uint32_t len)
{
    struct qv_virtio_balloon *b = to_balloon(dev);
    if (offset == 4 && len == 4) { /* only actual is the driver's to write */
        uint32_t v;
        memcpy(&v, buf, 4);
        __atomic_store_n(&b->actual, le32toh(v), __ATOMIC_RELAXED);
    }
}

static void balloon_reset(struct qv_virtio_device *dev)
{
    struct qv_virtio_balloon *b = to_balloon(dev);
    b->stats_held = 0;
    b->stats_wanted = 0;
    __atomic_store_n(&b->actual, 0, __ATOMIC_RELAXED);
}

static const struct qv_virtio_device_ops balloon_ops = {
    .features = balloon_features,
    .read_config = balloon_read_config,
    .write_config = balloon_write_config,
    .process_queue = balloon_process,
    .reset = balloon_reset,
};

struct qv_virtio_balloon *qv_virtio_balloon_new(const struct qv_virtio_balloon_options *opts)
{
    struct qv_virtio_balloon *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    if (opts)
        b->opts = *opts;
    if (!b->opts.discard)
        b->opts.discard = default_discard;
    for (unsigned i = 0; i < QV_VIRTIO_BALLOON_S_NR; i++)
        b->stats.value[i] = UINT64_MAX;
    b->dev.device_id = QV_VIRTIO_ID_BALLOON;
    b->dev.num_queues = 3;
    b->dev.queue_max_size = BALLOON_QUEUE_SIZE;
    b->dev.pci_class = 0x00ff00;
    b->dev.config_size = BALLOON_CONFIG_SIZE;
    b->dev.ops = &balloon_ops;
    return b;
}

struct qv_virtio_device *qv_virtio_balloon_device(struct qv_virtio_balloon *b)
{
    return &b->dev;
}

void qv_virtio_balloon_set_target(struct qv_virtio_balloon *b, uint32_t pages)
{
    __atomic_store_n(&b->num_pages, pages, __ATOMIC_RELAXED);
}

uint32_t qv_virtio_balloon_actual(struct qv_virtio_balloon *b)
{
    return __atomic_load_n(&b->actual, __ATOMIC_RELAXED);
}

void qv_virtio_balloon_request_stats(struct qv_virtio_balloon *b)
{
    __atomic_store_n(&b->stats_request, 1, __ATOMIC_RELEASE);
}

void qv_virtio_balloon_get_stats(struct qv_virtio_balloon *b, struct qv_virtio_balloon_stats *out)
{
    const uint64_t *src = (const uint64_t *)(const void *)&b->stats;
    uint64_t *dst = (uint64_t *)(void *)out;
    for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void qv_virtio_balloon_free(struct qv_virtio_balloon *b)
{
    free(b);
}
