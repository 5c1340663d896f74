/* Guest physical memory layout and the e820 map derived from it (see layout.h). */
#include "quantavirt/layout.h"

#include "boot/bytes.h"
#include "quantavirt/errors.h"

/* Guest RAM we can describe: 4 TiB is the schema's maximum; beyond it addresses get silly. */
#define QV_LAYOUT_MAX_RAM (4ULL << 40)

uint64_t qv_layout_ecam_size(const struct qv_memory_layout *l)
{
    if (!l->ecam_base || l->ecam_bus_end < l->ecam_bus_start)
        return 0;
    return ((uint64_t)l->ecam_bus_end - l->ecam_bus_start + 1) << 20;
}

int qv_layout_validate(const struct qv_memory_layout *l, char *errbuf, size_t errlen)
{
    if (!l)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "memory layout: missing");
    if (l->ram_size < QV_LAYOUT_MIN_RAM || l->ram_size > QV_LAYOUT_MAX_RAM)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                       "memory.size: %llu bytes is outside 16 MiB..4 TiB",
                       (unsigned long long)l->ram_size);
    if (l->mmio_hole_start < QV_LAYOUT_MIN_RAM || l->mmio_hole_start >= QV_LAYOUT_4G ||
        (l->mmio_hole_start & 0xfffff))
        return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                       "memory layout: MMIO hole start 0x%llx must be 1 MiB aligned, "
                       "between 16 MiB and 4 GiB",
                       (unsigned long long)l->mmio_hole_start);
    uint64_t low = l->ram_size < l->mmio_hole_start ? l->ram_size : l->mmio_hole_start;
    if (l->low_ram_end != low || l->high_ram_size != l->ram_size - low)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                       "memory layout: low/high RAM split does not match the size and hole");
    if (l->ecam_base) {
        uint64_t sz = qv_layout_ecam_size(l);
        if (!sz || (l->ecam_base & 0xfffff) || l->ecam_base < l->mmio_hole_start ||
            !qv_range_ok(l->ecam_base, sz, QV_LAYOUT_IOAPIC_BASE))
            return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                           "memory layout: ECAM window 0x%llx (buses %u..%u) must be 1 MiB "
                           "aligned inside the MMIO hole, below the IOAPIC",
                           (unsigned long long)l->ecam_base, l->ecam_bus_start, l->ecam_bus_end);
    }
    if (l->ioapic_base < l->mmio_hole_start || l->ioapic_base >= QV_LAYOUT_4G ||
        l->lapic_base < l->mmio_hole_start || l->lapic_base >= QV_LAYOUT_4G)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                       "memory layout: IOAPIC/LAPIC must lie inside the MMIO hole");
    if (l->hotplug_size) {
        /* Above every RAM byte and every device (all devices live below 4 GiB), so a guest
         * that later finds memory there finds nothing else in the way. */
        uint64_t ram_top = QV_LAYOUT_4G + l->high_ram_size;
        if (l->hotplug_base < ram_top || (l->hotplug_base & (QV_LAYOUT_HOTPLUG_ALIGN - 1)) ||
            (l->hotplug_size & 0xfff) || l->hotplug_size > QV_LAYOUT_MAX_RAM ||
            l->hotplug_base > QV_LAYOUT_MAX_RAM * 2)
            return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                           "memory.max_size: hot-add range 0x%llx+0x%llx must be 1 GiB aligned "
                           "above all RAM, in 4 KiB units",
                           (unsigned long long)l->hotplug_base,
                           (unsigned long long)l->hotplug_size);
    } else if (l->hotplug_base) {
        return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                       "memory.max_size: hot-add base set without a size");
    }
    return 0;
}

int qv_layout_set_hotplug(struct qv_memory_layout *l, uint64_t max_size, char *errbuf,
                          size_t errlen)
{
    if (!l)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "memory layout: missing");
    if (max_size < l->ram_size || max_size > QV_LAYOUT_MAX_RAM || (max_size & 0xfff))
        return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                       "memory.max_size: %llu bytes must be a 4 KiB multiple between "
                       "memory.size (%llu) and 4 TiB",
                       (unsigned long long)max_size, (unsigned long long)l->ram_size);
    l->hotplug_size = max_size - l->ram_size;
    l->hotplug_base = 0;
    if (l->hotplug_size) {
        uint64_t top = QV_LAYOUT_4G + l->high_ram_size; /* <= 8 TiB: no overflow below */
        l->hotplug_base = (top + QV_LAYOUT_HOTPLUG_ALIGN - 1) & ~(QV_LAYOUT_HOTPLUG_ALIGN - 1);
    }
    return qv_layout_validate(l, errbuf, errlen);
}

int qv_layout_init(struct qv_memory_layout *l, uint64_t ram_size, uint8_t ecam_bus_end,
                   char *errbuf, size_t errlen)
{
    if (!l)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "memory layout: missing");
    memset(l, 0, sizeof(*l));
    l->ram_size = ram_size;
    l->mmio_hole_start = QV_LAYOUT_MMIO_HOLE_START;
    l->low_ram_end = ram_size < l->mmio_hole_start ? ram_size : l->mmio_hole_start;
    l->high_ram_size = ram_size - l->low_ram_end;
    l->ecam_base = QV_LAYOUT_ECAM_BASE;
    l->ecam_bus_start = 0;
    l->ecam_bus_end = ecam_bus_end;
    l->pci_segment = 0;
    l->ioapic_base = QV_LAYOUT_IOAPIC_BASE;
    l->lapic_base = QV_LAYOUT_LAPIC_BASE;
    return qv_layout_validate(l, errbuf, errlen);
}

int qv_e820_build(const struct qv_memory_layout *l, struct qv_e820_entry *out, size_t max)
{
    if (!out || qv_layout_validate(l, NULL, 0) != 0)
        return QV_ERR_INVAL;
    struct qv_e820_entry e[6];
    size_t n = 0;
    e[n++] = (struct qv_e820_entry){0, QV_LAYOUT_LOW_RAM_END, QV_E820_RAM};
    /* EBDA, VGA window and BIOS area; the ACPI tables live at 0xe0000 inside it. */
    e[n++] = (struct qv_e820_entry){QV_LAYOUT_LOW_RAM_END,
                                    QV_LAYOUT_HIGH_MEM_START - QV_LAYOUT_LOW_RAM_END,
                                    QV_E820_RESERVED};
    e[n++] = (struct qv_e820_entry){QV_LAYOUT_HIGH_MEM_START,
                                    l->low_ram_end - QV_LAYOUT_HIGH_MEM_START, QV_E820_RAM};
    /* Linux only trusts an MCFG window that firmware also reserves. */
    if (l->ecam_base)
        e[n++] = (struct qv_e820_entry){l->ecam_base, qv_layout_ecam_size(l), QV_E820_RESERVED};
    if (l->high_ram_size)
        e[n++] = (struct qv_e820_entry){QV_LAYOUT_4G, l->high_ram_size, QV_E820_RAM};
    if (n > max)
        return QV_ERR_INVAL;
    memcpy(out, e, n * sizeof(e[0]));
    return (int)n;
}
