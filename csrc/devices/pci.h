/* The PCI host bridge (00:00.0) and bus 0: configuration mechanism 1 at 0xcf8/0xcfc and ECAM
 * (memory-mapped configuration at the MCFG base), device slots, and the guest-programmed BARs.
 *
 * Functions plug in through struct qv_pci_function_ops (the virtio transport is one). The
 * bridge reads each function's BAR and memory-decode bit after every configuration write and
 * routes MMIO accesses inside a mapped BAR to it (the bus fallback, so BARs can move while
 * the VM runs); the map callback tells the engine about moves (ioeventfds follow the BAR). */
#ifndef QV_DEVICES_PCI_H
#define QV_DEVICES_PCI_H

#include <stdint.h>

#include "devices/bus.h"

#define QV_PCI_CONFIG_ADDRESS_PORT 0xcf8
#define QV_PCI_CONFIG_DATA_PORT 0xcfc
#define QV_PCI_MAX_SLOTS 32
#define QV_PCI_HOST_VENDOR 0x8086u
#define QV_PCI_HOST_DEVICE 0x29c0u

struct qv_pci_function_ops {
    /* Configuration space, offset < 256, size 1/2/4 naturally aligned. */
    uint32_t (*config_read)(void *dev, uint32_t offset, unsigned size);
    void (*config_write)(void *dev, uint32_t offset, unsigned size, uint32_t value);
    /* The one memory BAR (offset relative to its base; size 1/2/4/8). */
    uint64_t (*bar_read)(void *dev, uint64_t offset, unsigned size);
    void (*bar_write)(void *dev, uint64_t offset, unsigned size, uint64_t value);
    uint64_t (*bar_address)(void *dev);
    int (*memory_enabled)(void *dev);
};

/* The virtio-pci transport (struct qv_virtio_pci *) as a function on the bridge
 * (devices/virtio_pci.c). */
extern const struct qv_pci_function_ops qv_virtio_pci_function_ops;

/* A function's BAR was unmapped (old != 0) and/or mapped at new_addr (!= 0). Called with the
 * bridge's configuration lock held; must not call back into the bridge. */
typedef void (*qv_pci_map_fn)(void *opaque, unsigned slot, uint64_t old_addr, uint64_t new_addr);

struct qv_pci_host;

/* Registers 0xcf8-0xcff (under the 0xcf9 reset register) and the ECAM window
 * [ecam_base, +ecam_size) (bus 0 only is populated; 0 = no ECAM) on bus. */
int qv_pci_host_create(struct qv_bus *bus, uint64_t ecam_base, uint64_t ecam_size,
                       qv_pci_map_fn map, void *map_opaque, struct qv_pci_host **out);
/* Put a function in the next free slot (1..31): QV_ERR_NOMEM when full. */
int qv_pci_host_add(struct qv_pci_host *h, const struct qv_pci_function_ops *ops, void *dev,
                    uint64_t bar_size, unsigned *slot_out);
/* Configuration access as the guest sees it (bus/device/function); all ones when absent. */
uint32_t qv_pci_config_read(struct qv_pci_host *h, unsigned bus, unsigned dev, unsigned fn,
                            uint32_t offset, unsigned size);
void qv_pci_config_write(struct qv_pci_host *h, unsigned bus, unsigned dev, unsigned fn,
                         uint32_t offset, unsigned size, uint32_t value);
void qv_pci_host_destroy(struct qv_pci_host *h);

#endif
