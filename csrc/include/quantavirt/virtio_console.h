/* virtio-console (section 5.3) with a single port (no MULTIPORT): queue 0 is the receiveq
 * (host -> guest input), queue 1 the transmitq (guest output, the guest's hvc0). */
#ifndef QUANTAVIRT_VIRTIO_CONSOLE_H
#define QUANTAVIRT_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "quantavirt/virtio.h"

#define QV_VIRTIO_CONSOLE_F_EMERG_WRITE 2
#define QV_VIRTIO_CONSOLE_RX 0
#define QV_VIRTIO_CONSOLE_TX 1

struct qv_virtio_console_options {
    /* Guest output goes to the callback (may be NULL), out_fd and log_fd (-1: none). */
    void (*output)(void *opaque, const void *buf, size_t len);
    int out_fd;
    int log_fd;
    /* Input: non-blocking, returns bytes copied into buf (0: nothing now, < 0: closed).
     * Pulled whenever the receive queue is processed: the engine calls
     * qv_virtio_pci_process_queue(pci, QV_VIRTIO_CONSOLE_RX) when input becomes readable. */
    ssize_t (*input)(void *opaque, void *buf, size_t len);
    void *opaque;
    uint16_t cols, rows;
};

struct qv_virtio_console;

struct qv_virtio_console *qv_virtio_console_new(const struct qv_virtio_console_options *opts);
struct qv_virtio_device *qv_virtio_console_device(struct qv_virtio_console *con);
void qv_virtio_console_free(struct qv_virtio_console *con);

#endif
