/* The guest physical memory layout of an x86 VM: where RAM is, the legacy hole, the PCI MMIO
 * hole below 4 GiB with the ECAM window, the interrupt controllers. One layout is computed per
 * VM and shared by the e820 map (zero page and PVH memmap), the ACPI tables and the engine's
 * memory slots, so they can never disagree. */
#ifndef QUANTAVIRT_LAYOUT_H
#define QUANTAVIRT_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define QV_LAYOUT_LOW_RAM_END 0x9fc00ULL       /* conventional RAM ends here (640 KiB - EBDA) */
#define QV_LAYOUT_HIGH_MEM_START 0x100000ULL   /* 1 MiB */
#define QV_LAYOUT_MMIO_HOLE_START 0xc0000000ULL /* 3 GiB: PCI MMIO, ECAM, IOAPIC, LAPIC */
#define QV_LAYOUT_ECAM_BASE 0xe0000000ULL      /* PCI ECAM, 1 MiB per bus */
#define QV_LAYOUT_IOAPIC_BASE 0xfec00000ULL
#define QV_LAYOUT_LAPIC_BASE 0xfee00000ULL
#define QV_LAYOUT_4G 0x100000000ULL
#define QV_LAYOUT_MIN_RAM (16ULL << 20)       /* below this nothing useful boots */
#define QV_LAYOUT_HOTPLUG_ALIGN (1ULL << 30) /* hot-add range start: Linux memory blocks fit */

/* e820 entry types (ACPI address range types). */
#define QV_E820_RAM 1
#define QV_E820_RESERVED 2
#define QV_E820_ACPI 3
#define QV_E820_NVS 4
#define QV_E820_MAX_ENTRIES 128 /* what the Linux zero page holds */

struct qv_e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

struct qv_memory_layout {
    uint64_t ram_size;        /* total guest RAM in bytes */
    uint64_t mmio_hole_start; /* RAM below 4 GiB stops here; [start, 4 GiB) is for devices */
    uint64_t low_ram_end;     /* min(ram_size, mmio_hole_start): RAM [1 MiB, low_ram_end) */
    uint64_t high_ram_size;   /* RAM from 4 GiB up: ram_size - low_ram_end */
    uint64_t ecam_base;       /* PCI ECAM window (inside the hole); 0 = no ECAM */
    uint8_t ecam_bus_start;   /* buses covered by the ECAM window */
    uint8_t ecam_bus_end;
    uint16_t pci_segment;
    uint64_t ioapic_base;
    uint64_t lapic_base;
    /* Room for memory hot-add up to memory.max_size: [hotplug_base, +hotplug_size), above all
     * RAM, 1 GiB aligned. Not RAM in the e820 map and never given to a device; 0 = none. */
    uint64_t hotplug_base;
    uint64_t hotplug_size;
};

/* Fill a layout for `ram_size` bytes of RAM with the default hole (3 GiB) and an ECAM window
 * for buses 0..ecam_bus_end at QV_LAYOUT_ECAM_BASE. Returns 0, or QV_ERR_INVAL with a message
 * naming memory.size (too small, or so large the addresses overflow) in errbuf. */
int qv_layout_init(struct qv_memory_layout *layout, uint64_t ram_size, uint8_t ecam_bus_end,
                   char *errbuf, size_t errlen);

/* Reserve the hot-add range for a VM whose RAM may grow to max_size (>= ram_size; equal: no
 * range). Returns 0, or QV_ERR_INVAL naming memory.max_size. */
int qv_layout_set_hotplug(struct qv_memory_layout *layout, uint64_t max_size, char *errbuf,
                          size_t errlen);

/* Check a layout someone filled or changed by hand (hole placement, ECAM inside the hole). */
int qv_layout_validate(const struct qv_memory_layout *layout, char *errbuf, size_t errlen);

/* Size of the ECAM window (1 MiB per bus). */
uint64_t qv_layout_ecam_size(const struct qv_memory_layout *layout);

/* The e820 map of a layout, in ascending address order: RAM below 640K, the reserved legacy
 * hole (EBDA, VGA, BIOS area with the ACPI tables), RAM from 1 MiB, the reserved ECAM window,
 * RAM above 4 GiB. Returns the number of entries (<= max; never more than 8), or QV_ERR_INVAL
 * when `out` is too small or the layout is inconsistent. */
int qv_e820_build(const struct qv_memory_layout *layout, struct qv_e820_entry *out, size_t max);

#endif
