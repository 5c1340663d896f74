/* ACPI tables for an x86 VM: RSDP, RSDT/XSDT, FADT (full, not hardware-reduced: PM1a event and
 * control blocks on I/O ports so a stock kernel can power off through \_S5, and a reset
 * register), FACS, MADT (one Local APIC per vCPU, the IOAPIC, interrupt source overrides),
 * MCFG (PCI ECAM) and a DSDT in generated AML (COM1, \_S5, the PCI host bridge).
 * All tables go into the BIOS area at QV_ACPI_BASE (reserved in the e820 map). */
#ifndef QUANTAVIRT_ACPI_H
#define QUANTAVIRT_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "quantavirt/layout.h"

#define QV_ACPI_BASE 0xe0000ULL
#define QV_ACPI_RSDP_ADDR QV_ACPI_BASE /* inside 0xe0000..0xfffff, where guests scan */
#define QV_ACPI_END 0x100000ULL
#define QV_ACPI_MAX_CPUS 256

/* Default I/O ports of the fixed ACPI hardware the engine emulates. */
#define QV_ACPI_PM1A_EVT_PORT 0x600  /* 4 bytes: PM1 status (2), PM1 enable (2) */
#define QV_ACPI_PM1A_CNT_PORT 0x604  /* 2 bytes: SLP_TYP bits 10..12, SLP_EN bit 13 */
#define QV_ACPI_RESET_PORT 0xcf9     /* reset register; writing QV_ACPI_RESET_VALUE resets */
#define QV_ACPI_RESET_VALUE 0x06
#define QV_ACPI_S5_SLP_TYP 5         /* the guest writes (5 << 10) | (1 << 13) to power off */
#define QV_ACPI_SCI_IRQ 9

struct qv_aml; /* the AML writer (quantavirt/aml.h) */

struct qv_acpi_config {
    uint32_t cpu_count;                    /* 1..QV_ACPI_MAX_CPUS */
    uint32_t apic_ids[QV_ACPI_MAX_CPUS];   /* APIC id of vCPU i (qv_cpuid_apic_id) */
    uint8_t ioapic_id;
    uint16_t pm1a_evt_port, pm1a_cnt_port; /* 0 = the defaults above */
    uint16_t reset_port;
    uint8_t reset_value;
    uint8_t s5_slp_typ;
    uint8_t sci_irq;
    uint8_t com1;                          /* 1: describe the 8250 at 0x3f8, IRQ 4 */
    uint8_t pci_host_bridge;               /* 1: \_SB.PCI0 with the ECAM bus range */
    uint8_t ecam;                          /* 1: MCFG from the layout's ECAM window */
    /* Hook for devices to add AML inside \_SB (after COM1 and PCI0); may be NULL. Return 0 or
     * a negative QV code. Not visible from Python. */
    int (*dsdt_hook)(struct qv_aml *aml, void *opaque);
    void *dsdt_hook_opaque;
};

/* Defaults: one vCPU with APIC id 0, default ports, COM1, PCI host bridge and MCFG on. */
void qv_acpi_config_init(struct qv_acpi_config *cfg, uint32_t cpu_count);

/* Legacy PCI interrupts: the DSDT's \_SB.PCI0._PRT sends pin (0 = INTA .. 3 = INTD) of bus-0
 * device `slot` to IOAPIC GSI 16..23 (the usual swizzle); the engine raises that GSI. */
#define QV_PCI_INTX_GSI_BASE 16u
#define QV_PCI_INTX_GSIS 8u
static inline uint32_t qv_pci_intx_gsi(uint32_t slot, uint32_t pin)
{
    return QV_PCI_INTX_GSI_BASE + (slot + pin) % QV_PCI_INTX_GSIS;
}

/* Write all tables at QV_ACPI_BASE in guest memory (mem[0] = GPA 0, mem_size bytes; must be
 * >= 1 MiB). Returns the number of bytes used from QV_ACPI_BASE, or a negative QV error code
 * with a message in errbuf (bad config, tables too large for the BIOS area). */
int qv_acpi_build(uint8_t *mem, size_t mem_size, const struct qv_memory_layout *layout,
                  const struct qv_acpi_config *cfg, char *errbuf, size_t errlen);

/* Sum of `len` bytes mod 256 (0 for a valid ACPI table). */
uint8_t qv_acpi_checksum(const uint8_t *p, size_t len);

#endif
