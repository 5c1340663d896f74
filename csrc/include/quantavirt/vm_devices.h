/* PCI devices of a VM: virtio-blk, virtio-console, virtio-rng and virtio-balloon functions on
 * the VM's PCI bus 0 (host bridge at 00:00.0, functions from slot 1 in the order added).
 * Add them after qv_vm_create and before qv_vm_start. See docs/virtio.md ("In the engine"). */
#ifndef QUANTAVIRT_VM_DEVICES_H
#define QUANTAVIRT_VM_DEVICES_H

#include <stdint.h>

#include "quantavirt/disk.h"
#include "quantavirt/engine.h"
#include "quantavirt/virtio_balloon.h"
#include "quantavirt/virtio_blk.h"

enum qv_virtio_kind {
    QV_VIRTIO_KIND_BLK = 1,
    QV_VIRTIO_KIND_CONSOLE = 2,
    QV_VIRTIO_KIND_RNG = 3,
    QV_VIRTIO_KIND_BALLOON = 4,
};

struct qv_vm_virtio_info {
    int32_t kind;             /* enum qv_virtio_kind */
    uint32_t slot;            /* PCI device number on bus 0 */
    uint32_t status;          /* virtio device_status (0x40 = DEVICE_NEEDS_RESET) */
    uint32_t memory_enabled;  /* the guest turned memory decoding on */
    uint64_t bar;             /* BAR 0 base */
    uint32_t num_queues;
    uint32_t ioeventfd;       /* kicks arrive through KVM ioeventfds */
    uint64_t thread_kicks;    /* queue runs on the I/O thread */
    uint64_t exit_kicks;      /* notify writes that took the MMIO exit (ioeventfd missed) */
    uint64_t msis;            /* MSI-X messages sent */
    uint64_t irqfd_msis;      /* of those, through an irqfd (the rest: KVM_SIGNAL_MSI) */
};

/* The disk stays the caller's: close it only after qv_vm_destroy. *index_out: the device's
 * index for the calls below. */
int qv_vm_add_virtio_blk(struct qv_vm *vm, struct qv_disk *disk,
                         const struct qv_virtio_blk_options *opts, int *index_out);
/* The guest's hvc0: output to the VM's console fd and console log, input from
 * qv_vm_console_input. */
int qv_vm_add_virtio_console(struct qv_vm *vm);
int qv_vm_add_virtio_rng(struct qv_vm *vm);
int qv_vm_add_virtio_balloon(struct qv_vm *vm, int deflate_on_oom);
int qv_vm_virtio_info(struct qv_vm *vm, int index, struct qv_vm_virtio_info *out);
int qv_vm_virtio_blk_stats(struct qv_vm *vm, int index, struct qv_virtio_blk_stats *out);
/* Balloon target in bytes (rounded down to 4 KiB pages); QV_ERR_NODEV without a balloon. */
int qv_vm_balloon_set_target(struct qv_vm *vm, uint64_t bytes);
/* The driver's balloon size and the latest statistics; refresh asks the guest for new ones
 * (they arrive asynchronously). */
int qv_vm_balloon_info(struct qv_vm *vm, uint32_t *actual_pages,
                       struct qv_virtio_balloon_stats *stats, int refresh);

#endif
