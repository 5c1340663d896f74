/* virtio-rng (section 5.4): one request queue whose writable buffers are filled with entropy. */
#ifndef QUANTAVIRT_VIRTIO_RNG_H
#define QUANTAVIRT_VIRTIO_RNG_H

#include <stddef.h>
#include <sys/types.h>

#include "quantavirt/virtio.h"

/* An entropy source: fill up to len bytes, return the count (> 0) or a negative QV error.
 * The default is getrandom(2); a QUAC 100 card plugs in here. */
typedef ssize_t (*qv_entropy_source)(void *opaque, void *buf, size_t len);

struct qv_virtio_rng;

/* source NULL -> getrandom(2). */
struct qv_virtio_rng *qv_virtio_rng_new(qv_entropy_source source, void *opaque);
struct qv_virtio_device *qv_virtio_rng_device(struct qv_virtio_rng *rng);
/* Bytes handed to the guest so far. */
uint64_t qv_virtio_rng_bytes(struct qv_virtio_rng *rng);
void qv_virtio_rng_free(struct qv_virtio_rng *rng);

#endif
