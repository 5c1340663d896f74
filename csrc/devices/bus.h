/* The device bus: port-I/O and MMIO ranges that devices register before the VM starts. The
 * vCPU run loop looks up the range of each PIO/MMIO exit and calls its handler on the vCPU
 * thread; a device serialises its own state (the bus itself is read-only once running). */
#ifndef QV_DEVICES_BUS_H
#define QV_DEVICES_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum qv_bus_space { QV_BUS_PIO = 0, QV_BUS_MMIO = 1 };

/* offset: from the range base; data: len bytes (1, 2, 4 or 8) little-endian; the handler
 * fills data on reads. */
typedef void (*qv_bus_handler)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
                               bool is_write);

struct qv_bus_range {
    uint64_t base;
    uint64_t size;
    qv_bus_handler handler;
    void *opaque;
    const char *name;
};

#define QV_BUS_MAX_RANGES 64

/* Handler for accesses no range claims (absolute address); returns true when it took the
 * access. The PCI host bridge uses it for BARs, whose addresses the guest moves at run time. */
typedef bool (*qv_bus_fallback)(void *opaque, uint64_t addr, uint8_t *data, uint32_t len,
                                bool is_write);

struct qv_bus {
    struct qv_bus_range ranges[2][QV_BUS_MAX_RANGES];
    int count[2];
    qv_bus_fallback fallback[2];
    void *fallback_opaque[2];
};

/* QV_ERR_EXIST when the range overlaps one already registered, QV_ERR_NOMEM when full. */
int qv_bus_register(struct qv_bus *bus, enum qv_bus_space space, uint64_t base, uint64_t size,
                    qv_bus_handler handler, void *opaque, const char *name);
/* Like qv_bus_register, but the range may overlap earlier ones, which keep precedence for
 * accesses that fit inside them: the PCI data port 0xcf8-0xcff around the 1-byte reset
 * register 0xcf9 (a dword at 0xcf8 is PCI, a byte at 0xcf9 is the reset register). */
int qv_bus_register_under(struct qv_bus *bus, enum qv_bus_space space, uint64_t base,
                          uint64_t size, qv_bus_handler handler, void *opaque, const char *name);
/* Set the handler for unclaimed accesses of one space (one per space). */
void qv_bus_set_fallback(struct qv_bus *bus, enum qv_bus_space space, qv_bus_fallback fn,
                         void *opaque);
/* True when a device took the access; false: unclaimed (reads then return all ones). */
bool qv_bus_dispatch(struct qv_bus *bus, enum qv_bus_space space, uint64_t addr, uint8_t *data,
                     uint32_t len, bool is_write);

#endif
