/* PCI host bridge and bus 0 (see pci.h). */
#include "devices/pci.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "quantavirt/errors.h"

#define CF8_ENABLE 0x80000000u
#define PCI_COMMAND 0x04

struct pci_slot {
    const struct qv_pci_function_ops *ops;
    void *dev;
    uint64_t bar_size;
    uint64_t mapped; /* current BAR base while memory decoding is on, else 0 */
};

struct qv_pci_host {
    /* Writers: configuration accesses (they may move BARs); readers: BAR accesses. */
    pthread_rwlock_t lock;
    pthread_mutex_t cf8_lock;
    uint32_t cf8;
    uint64_t ecam_base, ecam_size;
    uint8_t bridge_cfg[256];
    struct pci_slot slots[QV_PCI_MAX_SLOTS];
    qv_pci_map_fn map;
    void *map_opaque;
};

static uint32_t get_le(const uint8_t *p, unsigned size)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *p, unsigned size, uint64_t v)
{
    for (unsigned i = 0; i < size; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void bridge_init(struct qv_pci_host *h)
{
    uint8_t *c = h->bridge_cfg;
    put_le(c + 0x00, 2, QV_PCI_HOST_VENDOR);
    put_le(c + 0x02, 2, QV_PCI_HOST_DEVICE);
    put_le(c + 0x04, 2, 0x0006);     /* memory + bus master: the bridge always forwards */
    c[0x08] = 0;                     /* revision */
    put_le(c + 0x09, 3, 0x060000);   /* class: host bridge */
    c[0x0e] = 0x00;                  /* header type 0, single function */
}

static int access_ok(uint32_t offset, unsigned size)
{
    return (size == 1 || size == 2 || size == 4) && (offset & (size - 1)) == 0;
}

/* Re-read one function's decode state and tell the engine when its BAR moved. */
static void update_mapping(struct qv_pci_host *h, unsigned slot)
{
    struct pci_slot *s = &h->slots[slot];
    uint64_t addr = 0;
    if (s->ops->memory_enabled(s->dev)) {
        addr = s->ops->bar_address(s->dev);
        /* A BAR that wraps the address space decodes nothing. */
        if (addr + s->bar_size < addr)
            addr = 0;
    }
    if (addr == s->mapped)
        return;
    uint64_t old = s->mapped;
    s->mapped = addr;
    if (h->map)
        h->map(h->map_opaque, slot, old, addr);
}

static uint32_t config_read_locked(struct qv_pci_host *h, unsigned bus, unsigned dev,
                                   unsigned fn, uint32_t offset, unsigned size)
{
    /* all ones of the access width; widths above 4 bytes (invalid here) get 32 of them */
    uint32_t ones = size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
    if (!access_ok(offset, size) || bus != 0 || fn != 0 || dev >= QV_PCI_MAX_SLOTS ||
        offset >= 4096)
        return ones;
    if (dev == 0)
        return offset < 256 ? get_le(h->bridge_cfg + offset, size) : 0;
    const struct pci_slot *s = &h->slots[dev];
    if (!s->ops)
        return ones;
    /* No extended capabilities: the PCIe extended space reads as zeros. */
    return offset < 256 ? s->ops->config_read(s->dev, offset, size) : 0;
}

static void config_write_locked(struct qv_pci_host *h, unsigned bus, unsigned dev, unsigned fn,
                                uint32_t offset, unsigned size, uint32_t value)
{
    if (!access_ok(offset, size) || bus != 0 || fn != 0 || dev >= QV_PCI_MAX_SLOTS ||
        offset >= 256)
        return;
    if (dev == 0) {
        /* Only the command register is writable on the bridge; the rest is fixed. */
        if (offset >= PCI_COMMAND && offset + size <= PCI_COMMAND + 2)
            put_le(h->bridge_cfg + offset, size, value);
        return;
    }
    struct pci_slot *s = &h->slots[dev];
    if (!s->ops)
        return;
    s->ops->config_write(s->dev, offset, size, value);
    update_mapping(h, dev);
}

uint32_t qv_pci_config_read(struct qv_pci_host *h, unsigned bus, unsigned dev, unsigned fn,
                            uint32_t offset, unsigned size)
{
    pthread_rwlock_rdlock(&h->lock);
    uint32_t v = config_read_locked(h, bus, dev, fn, offset, size);
    pthread_rwlock_unlock(&h->lock);
    return v;
}

void qv_pci_config_write(struct qv_pci_host *h, unsigned bus, unsigned dev, unsigned fn,
                         uint32_t offset, unsigned size, uint32_t value)
{
    pthread_rwlock_wrlock(&h->lock);
    config_write_locked(h, bus, dev, fn, offset, size, value);
    pthread_rwlock_unlock(&h->lock);
}

/* 0xcf8 (address latch, dword only) and 0xcfc-0xcff (data for the latched register). */
static void cf8_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_pci_host *h = opaque;
    pthread_mutex_lock(&h->cf8_lock);
    uint32_t latch = h->cf8;
    if (off == 0 && len == 4) {
        if (is_write)
            h->cf8 = get_le(data, 4) & 0x80fffffcu;
        else
            put_le(data, 4, h->cf8);
        pthread_mutex_unlock(&h->cf8_lock);
        return;
    }
    pthread_mutex_unlock(&h->cf8_lock);
    if (off < 4 || !(latch & CF8_ENABLE) || (off & (len - 1))) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    unsigned bus = (latch >> 16) & 0xff, dev = (latch >> 11) & 0x1f, fn = (latch >> 8) & 7;
    uint32_t reg = (latch & 0xfc) + (uint32_t)(off - 4);
    if (is_write)
        qv_pci_config_write(h, bus, dev, fn, reg, len, get_le(data, len));
    else
        put_le(data, len, qv_pci_config_read(h, bus, dev, fn, reg, len));
}

static void ecam_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_pci_host *h = opaque;
    unsigned bus = (unsigned)(off >> 20), dev = (off >> 15) & 0x1f, fn = (off >> 12) & 7;
    uint32_t reg = off & 0xfff;
    if (len > 4) { /* 8-byte configuration accesses are not defined for PCI */
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    if (is_write)
        qv_pci_config_write(h, bus, dev, fn, reg, len, get_le(data, len));
    else
        put_le(data, len, qv_pci_config_read(h, bus, dev, fn, reg, len));
}

/* MMIO nobody else claimed: a mapped BAR, or not ours. */
static bool bar_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_pci_host *h = opaque;
    bool hit = false;
    pthread_rwlock_rdlock(&h->lock);
    for (unsigned i = 1; i < QV_PCI_MAX_SLOTS && !hit; i++) {
        struct pci_slot *s = &h->slots[i];
        if (!s->ops || !s->mapped || addr < s->mapped || addr - s->mapped >= s->bar_size ||
            len > s->bar_size - (addr - s->mapped))
            continue;
        hit = true;
        uint64_t off = addr - s->mapped;
        if (is_write) {
            uint64_t v = 0;
            for (uint32_t b = 0; b < len; b++)
                v |= (uint64_t)data[b] << (8 * b);
            s->ops->bar_write(s->dev, off, len, v);
        } else {
            put_le(data, len, s->ops->bar_read(s->dev, off, len));
        }
    }
    pthread_rwlock_unlock(&h->lock);
    return hit;
}

int qv_pci_host_create(struct qv_bus *bus, uint64_t ecam_base, uint64_t ecam_size,
                       qv_pci_map_fn map, void *map_opaque, struct qv_pci_host **out)
{
    if (!bus || !out || (ecam_size && (ecam_size & 0xfffff)) || ecam_size > (256ull << 20))
        return QV_ERR_INVAL;
    struct qv_pci_host *h = calloc(1, sizeof(*h));
    if (!h)
        return QV_ERR_NOMEM;
    pthread_rwlock_init(&h->lock, NULL);
    pthread_mutex_init(&h->cf8_lock, NULL);
    h->ecam_base = ecam_base;
    h->ecam_size = ecam_size;
    h->map = map;
    h->map_opaque = map_opaque;
    bridge_init(h);
    int rc = qv_bus_register_under(bus, QV_BUS_PIO, QV_PCI_CONFIG_ADDRESS_PORT, 8, cf8_io, h,
                                   "pci-cf8");
    if (!rc && ecam_size)
        rc = qv_bus_register(bus, QV_BUS_MMIO, ecam_base, ecam_size, ecam_io, h, "pci-ecam");
    if (rc) {
        qv_pci_host_destroy(h);
        return rc;
    }
    qv_bus_set_fallback(bus, QV_BUS_MMIO, bar_io, h);
    *out = h;
    return QV_SUCCESS;
}

int qv_pci_host_add(struct qv_pci_host *h, const struct qv_pci_function_ops *ops, void *dev,
                    uint64_t bar_size, unsigned *slot_out)
{
    if (!h || !ops || !ops->config_read || !ops->config_write || !ops->bar_read ||
        !ops->bar_write || !ops->bar_address || !ops->memory_enabled || bar_size == 0)
        return QV_ERR_INVAL;
    pthread_rwlock_wrlock(&h->lock);
    int rc = QV_ERR_NOMEM;
    for (unsigned i = 1; i < QV_PCI_MAX_SLOTS; i++) {
        if (!h->slots[i].ops) {
            h->slots[i] = (struct pci_slot){.ops = ops, .dev = dev, .bar_size = bar_size};
            if (slot_out)
                *slot_out = i;
            rc = QV_SUCCESS;
            break;
        }
    }
    pthread_rwlock_unlock(&h->lock);
    return rc;
}

void qv_pci_host_destroy(struct qv_pci_host *h)
{
    if (!h)
        return;
    pthread_rwlock_destroy(&h->lock);
    pthread_mutex_destroy(&h->cf8_lock);
    free(h);
}
