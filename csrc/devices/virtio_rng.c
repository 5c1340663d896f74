/* virtio-rng: every writable buffer of a request is filled from the entropy source. */
#include "quantavirt/virtio_rng.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "quantavirt/errors.h"

#define RNG_QUEUE_SIZE 64u
#define RNG_IOV_CAP 16u
/* bytes served per request: a driver asking for megabytes gets them in several requests */
#define RNG_MAX_PER_REQUEST 65536u

struct qv_virtio_rng {
    struct qv_virtio_device dev; /* first */
    qv_entropy_source source;
    void *opaque;
    uint64_t bytes;
    struct iovec iov[RNG_IOV_CAP];
};

static ssize_t getrandom_source(void *opaque, void *buf, size_t len)
{
    (void)opaque;
    for (;;) {
        ssize_t n = getrandom(buf, len, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return QV_ERR_IO;
    }
}

/* fill [0, want) of the writable buffers; returns bytes written */
static uint32_t fill(struct qv_virtio_rng *rng, const struct iovec *iov, unsigned int n,
                     uint64_t want)
{
    uint64_t done = 0;
    for (unsigned int i = 0; i < n && done < want; i++) {
        size_t room = iov[i].iov_len;
        if (room > want - done)
            room = (size_t)(want - done);
        size_t got = 0;
        while (got < room) {
            ssize_t r = rng->source(rng->opaque, (uint8_t *)iov[i].iov_base + got, room - got);
            if (r <= 0 || (size_t)r > room - got)
                return (uint32_t)(done + got); /* the source ran dry or failed: short reply */
            got += (size_t)r;
        }
        done += got;
    }
    return (uint32_t)done;
}

static uint64_t rng_process(struct qv_virtio_device *dev, unsigned int q)
{
    struct qv_virtio_rng *rng = (struct qv_virtio_rng *)(void *)dev;
    struct qv_virtqueue *vq = &dev->queues[q];
    struct qv_vq_elem elem = {.iov = rng->iov, .iov_cap = RNG_IOV_CAP};
    qv_vq_disable_notify(vq);
    for (;;) {
        int r = qv_vq_pop(vq, &elem);
        if (r == 0 && qv_vq_enable_notify(vq)) {
            qv_vq_disable_notify(vq);
            continue;
        }
        if (r <= 0)
            break;
        uint64_t want = elem.in_len < RNG_MAX_PER_REQUEST ? elem.in_len : RNG_MAX_PER_REQUEST;
        uint32_t n = fill(rng, elem.iov + elem.out_num, elem.in_num, want);
        __atomic_fetch_add(&rng->bytes, n, __ATOMIC_RELAXED); /* read by other threads */
        if (qv_vq_push(vq, elem.head, n) < 0)
            break;
    }
    qv_virtio_device_signal(dev, q);
    return 0;
}

static const struct qv_virtio_device_ops rng_ops = {
    .process_queue = rng_process,
};

struct qv_virtio_rng *qv_virtio_rng_new(qv_entropy_source source, void *opaque)
{
    struct qv_virtio_rng *rng = calloc(1, sizeof *rng);
    if (!rng)
        return NULL;
    rng->source = source ? source : getrandom_source;
    rng->opaque = opaque;
    rng->dev.device_id = QV_VIRTIO_ID_RNG;
    rng->dev.num_queues = 1;
    rng->dev.queue_max_size = RNG_QUEUE_SIZE;
    rng->dev.pci_class = 0x00ff00; /* unclassified */
    rng->dev.config_size = 0;
    rng->dev.ops = &rng_ops;
    return rng;
}

struct qv_virtio_device *qv_virtio_rng_device(struct qv_virtio_rng *rng)
{
    return &rng->dev;
}

uint64_t qv_virtio_rng_bytes(struct qv_virtio_rng *rng)
{
    return __atomic_load_n(&rng->bytes, __ATOMIC_RELAXED);
}

void qv_virtio_rng_free(struct qv_virtio_rng *rng)
{
    free(rng);
}
