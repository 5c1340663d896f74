/* The interface between a virtio device model (blk, rng, console, ...) and its transport
 * (virtio_pci.h). A device fills a struct qv_virtio_device; the transport owns the feature
 * negotiation, the status machine and the queue registers, configures dev->queues[] and calls
 * process_queue when the driver kicks a queue. The device reports completions back through
 * qv_virtio_device_signal(), which the transport turns into an MSI-X message or INTx. */
#ifndef QUANTAVIRT_VIRTIO_H
#define QUANTAVIRT_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "quantavirt/virtqueue.h"

/* Device IDs (section 5) */
#define QV_VIRTIO_ID_NET 1
#define QV_VIRTIO_ID_BLOCK 2
#define QV_VIRTIO_ID_CONSOLE 3
#define QV_VIRTIO_ID_RNG 4
#define QV_VIRTIO_ID_BALLOON 5

/* Device status bits (section 2.1) */
#define QV_VIRTIO_STATUS_ACKNOWLEDGE 0x01u
#define QV_VIRTIO_STATUS_DRIVER 0x02u
#define QV_VIRTIO_STATUS_DRIVER_OK 0x04u
#define QV_VIRTIO_STATUS_FEATURES_OK 0x08u
#define QV_VIRTIO_STATUS_NEEDS_RESET 0x40u
#define QV_VIRTIO_STATUS_FAILED 0x80u

#define QV_VIRTIO_MAX_QUEUES 64u

struct qv_virtio_device;

struct qv_virtio_device_ops {
    /* Device-specific features; the transport adds VERSION_1, INDIRECT_DESC, EVENT_IDX. */
    uint64_t (*features)(struct qv_virtio_device *dev);
    /* Called when the driver sets FEATURES_OK with a subset of the offered features;
     * return 0 to accept or a negative code to refuse (FEATURES_OK then stays clear). */
    int (*set_features)(struct qv_virtio_device *dev, uint64_t features);
    /* Device configuration space: [offset, offset+len) is inside config_size. */
    void (*read_config)(struct qv_virtio_device *dev, uint32_t offset, void *buf, uint32_t len);
    void (*write_config)(struct qv_virtio_device *dev, uint32_t offset, const void *buf,
                         uint32_t len);
    /* Process queue q (the driver kicked it, or a deferral expired). Return 0, or the
     * monotonic time in ns when the device wants to be called again (rate limits). */
    uint64_t (*process_queue)(struct qv_virtio_device *dev, unsigned int q);
    /* Device reset: drop all in-flight state (waiting for requests still running). */
    void (*reset)(struct qv_virtio_device *dev);
    /* Optional, for devices with asynchronous requests: push finished ones to the used rings
     * and signal; return the queues (bit q) the transport should process again. */
    uint64_t (*complete)(struct qv_virtio_device *dev);
};

struct qv_virtio_device {
    uint16_t device_id;
    uint16_t num_queues;      /* <= QV_VIRTIO_MAX_QUEUES */
    uint16_t queue_max_size;  /* power of 2, <= QV_VQ_MAX_SIZE */
    uint32_t pci_class;       /* PCI class code (class << 16 | subclass << 8 | prog-if) */
    uint32_t config_size;     /* bytes of device configuration */
    const struct qv_virtio_device_ops *ops;
    struct qv_virtqueue queues[QV_VIRTIO_MAX_QUEUES];
    uint64_t features;        /* negotiated (valid once FEATURES_OK is set) */
    /* set by the transport */
    void (*signal)(void *transport, unsigned int q);
    void (*config_changed)(void *transport);
    void *transport;
};

/* Called by a device after pushing to queue q: interrupts the driver if it asked for it. */
static inline void qv_virtio_device_signal(struct qv_virtio_device *dev, unsigned int q)
{
    if (dev->signal)
        dev->signal(dev->transport, q);
}

/* Called by a device whose configuration changed (e.g. disk resize). */
static inline void qv_virtio_device_config_changed(struct qv_virtio_device *dev)
{
    if (dev->config_changed)
        dev->config_changed(dev->transport);
}

static inline bool qv_virtio_has_feature(const struct qv_virtio_device *dev, unsigned int bit)
{
    return bit < 64 && ((dev->features >> bit) & 1);
}

#endif
