/* The virtio 1.x modern PCI transport (section 4.1) as pure register logic: the engine routes
 * PCI configuration-space accesses and accesses to the device's memory BAR here and provides
 * two callbacks: one that delivers an interrupt (an MSI-X message, or the INTx level when
 * MSI-X is off), one that is told a queue was kicked (or NULL: the queue is processed inline).
 *
 * BAR 0 (64-bit memory, QV_VIRTIO_PCI_BAR_SIZE bytes) layout:
 *   0x0000 common configuration     0x1000 ISR status     0x2000 device configuration
 *   0x3000 notifications (queue q at 0x3000 + 4*q)
 *   0x4000 MSI-X table               0x5000 MSI-X PBA
 *
 * Thread safety: every entry point takes the transport's lock; callbacks are called with it
 * held and must not call back into the same transport. */
#ifndef QUANTAVIRT_VIRTIO_PCI_H
#define QUANTAVIRT_VIRTIO_PCI_H

#include <stdint.h>

#include "quantavirt/guest_memory.h"
#include "quantavirt/virtio.h"

#define QV_VIRTIO_PCI_VENDOR 0x1af4u
#define QV_VIRTIO_PCI_DEVICE_BASE 0x1040u
#define QV_VIRTIO_PCI_CONFIG_SIZE 256u
#define QV_VIRTIO_PCI_BAR_SIZE 0x8000u

#define QV_VIRTIO_PCI_COMMON_OFFSET 0x0000u
#define QV_VIRTIO_PCI_ISR_OFFSET 0x1000u
#define QV_VIRTIO_PCI_DEVICE_OFFSET 0x2000u
#define QV_VIRTIO_PCI_NOTIFY_OFFSET 0x3000u
#define QV_VIRTIO_PCI_NOTIFY_MULTIPLIER 4u
#define QV_VIRTIO_PCI_MSIX_TABLE_OFFSET 0x4000u
#define QV_VIRTIO_PCI_MSIX_PBA_OFFSET 0x5000u
#define QV_VIRTIO_PCI_REGION_SIZE 0x1000u

#define QV_VIRTIO_MSI_NO_VECTOR 0xffffu

/* virtio_pci_cap cfg_type values */
#define QV_VIRTIO_PCI_CAP_COMMON_CFG 1
#define QV_VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define QV_VIRTIO_PCI_CAP_ISR_CFG 3
#define QV_VIRTIO_PCI_CAP_DEVICE_CFG 4
#define QV_VIRTIO_PCI_CAP_PCI_CFG 5

struct qv_virtio_pci_callbacks {
    /* Deliver MSI-X vector `vector` as the message (addr, data): KVM_SIGNAL_MSI or an irqfd. */
    void (*msi)(void *opaque, uint16_t vector, uint64_t addr, uint32_t data);
    /* Set the INTx line (used only while MSI-X is disabled). May be NULL. */
    void (*intx)(void *opaque, int level);
    /* The driver kicked queue q. NULL: the transport processes the queue inline. Otherwise the
     * engine calls qv_virtio_pci_process_queue() (e.g. on its I/O thread). */
    void (*queue_notify)(void *opaque, unsigned int q);
    void *opaque;
};

struct qv_virtio_pci;

/* A transport for dev over guest memory mem; msix_vectors is the MSI-X table size
 * (1..64; typically num_queues + 1). NULL on bad arguments or out of memory. */
struct qv_virtio_pci *qv_virtio_pci_new(struct qv_virtio_device *dev,
                                        const struct qv_guest_memory *mem,
                                        uint16_t msix_vectors,
                                        const struct qv_virtio_pci_callbacks *cb);
void qv_virtio_pci_free(struct qv_virtio_pci *pci);

/* PCI configuration space (offset < 256, size 1, 2 or 4, naturally aligned; anything else
 * reads as 0 / is ignored). */
uint32_t qv_virtio_pci_config_read(struct qv_virtio_pci *pci, uint32_t offset, unsigned size);
void qv_virtio_pci_config_write(struct qv_virtio_pci *pci, uint32_t offset, unsigned size,
                                uint32_t value);

/* BAR 0 accesses (offset relative to the BAR, size 1, 2, 4 or 8). */
uint64_t qv_virtio_pci_bar_read(struct qv_virtio_pci *pci, uint64_t offset, unsigned size);
void qv_virtio_pci_bar_write(struct qv_virtio_pci *pci, uint64_t offset, unsigned size,
                             uint64_t value);

/* The guest-programmed BAR 0 base (0 while unassigned) and whether memory decoding is on. */
uint64_t qv_virtio_pci_bar_address(struct qv_virtio_pci *pci);
int qv_virtio_pci_memory_enabled(struct qv_virtio_pci *pci);

/* Process queue q now. Returns 0 or a monotonic deadline (ns) when the device deferred work
 * (rate limit): call again at or after that time. */
uint64_t qv_virtio_pci_process_queue(struct qv_virtio_pci *pci, unsigned int q);
/* The device's asynchronous requests finished (its completion fd fired): push them, signal,
 * and process the queues that waited for them. deadlines (num_queues entries, may be NULL)
 * receives the result of process_queue for each queue processed again. */
void qv_virtio_pci_complete(struct qv_virtio_pci *pci, uint64_t *deadlines);

/* The device configuration changed (e.g. a new balloon target or disk size): bump
 * config_generation and send the configuration-change interrupt. */
void qv_virtio_pci_config_changed(struct qv_virtio_pci *pci);

/* Current device status byte (for tests and monitoring). */
uint8_t qv_virtio_pci_status(struct qv_virtio_pci *pci);

#endif
