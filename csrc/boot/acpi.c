/* ACPI table builder (see acpi.h). Tables are laid out one after another from QV_ACPI_BASE,
 * 16-byte aligned (the FACS 64-byte aligned), and checksummed last. */
#include "quantavirt/acpi.h"

#include "quantavirt/aml.h"
#include "boot/bytes.h"
#include "quantavirt/errors.h"

#define HDR_LEN 36
#define FADT_LEN 276 /* ACPI 6.3 FADT, revision 6 */
#define FACS_LEN 64
#define RSDP_LEN 36
#define MAX_TABLES 8

uint8_t qv_acpi_checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return sum;
}

void qv_acpi_config_init(struct qv_acpi_config *cfg, uint32_t cpu_count)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->cpu_count = cpu_count;
    for (uint32_t i = 0; i < QV_ACPI_MAX_CPUS; i++)
        cfg->apic_ids[i] = i;
    cfg->com1 = 1;
    cfg->pci_host_bridge = 1;
    cfg->ecam = 1;
}

struct builder {
    uint8_t *mem;
    uint64_t pos; /* next free guest physical address */
    char *errbuf;
    size_t errlen;
};

/* Reserve `len` bytes aligned to `align`; returns the address or 0 when the area is full. */
static uint64_t alloc(struct builder *b, uint64_t len, uint64_t align)
{
    uint64_t at = (b->pos + align - 1) & ~(align - 1);
    if (!qv_range_ok(at, len, QV_ACPI_END))
        return 0;
    b->pos = at + len;
    memset(b->mem + at, 0, len);
    return at;
}

static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev, const char *table_id)
{
    memcpy(t, sig, 4);
    qv_wr32(t + 4, len);
    t[8] = rev;
    memcpy(t + 10, "QVIRT ", 6);
    char id[8];
    memset(id, ' ', 8);
    memcpy(id, table_id, strlen(table_id) < 8 ? strlen(table_id) : 8);
    memcpy(t + 16, id, 8);
    qv_wr32(t + 24, 1); /* OEM revision */
    memcpy(t + 28, "QVRT", 4);
    qv_wr32(t + 32, 1); /* creator revision */
}

static void seal(uint8_t *t)
{
    uint32_t len = qv_rd32(t + 4);
    t[9] = 0;
    t[9] = (uint8_t)(0x100 - qv_acpi_checksum(t, len));
}

/* Generic Address Structure in system I/O space. */
static void gas_io(uint8_t *g, uint16_t port, uint8_t bits, uint8_t access)
{
    g[0] = 1; /* system I/O */
    g[1] = bits;
    g[2] = 0;
    g[3] = access; /* 1 byte, 2 word, 3 dword */
    qv_wr64(g + 4, port);
}

#define FAIL(code, ...) qv_fail(code, b->errbuf, b->errlen, __VA_ARGS__)

static int build_dsdt(struct builder *b, const struct qv_memory_layout *l,
                      const struct qv_acpi_config *cfg, uint64_t *addr)
{
    uint64_t at = (b->pos + 15) & ~15ULL;
    if (at + HDR_LEN >= QV_ACPI_END)
        return FAIL(QV_ERR_NOMEM, "acpi: no room for the DSDT");
    struct qv_aml a;
    qv_aml_init(&a, b->mem + at + HDR_LEN, QV_ACPI_END - at - HDR_LEN);

    qv_aml_scope_begin(&a, "\\_SB");
    if (cfg->com1) {
        qv_aml_device_begin(&a, "COM1");
        qv_aml_name(&a, "_HID");
        qv_aml_eisaid(&a, "PNP0501");
        qv_aml_name(&a, "_UID");
        qv_aml_integer(&a, 1);
        qv_aml_method_begin(&a, "_STA", 0, 0);
        qv_aml_return(&a);
        qv_aml_integer(&a, 0x0f); /* present, enabled, shown, functioning */
        qv_aml_end(&a);
        struct qv_res r = {0};
        qv_res_io(&r, 0x3f8, 0x3f8, 0x01, 0x08);
        qv_res_irq(&r, 1u << 4);
        qv_res_end(&r);
        qv_aml_name(&a, "_CRS");
        qv_aml_buffer(&a, r.buf, r.len);
        qv_aml_end(&a);
    }
    if (cfg->pci_host_bridge) {
        qv_aml_device_begin(&a, "PCI0");
        qv_aml_name(&a, "_HID");
        qv_aml_eisaid(&a, "PNP0A08"); /* PCI Express root bridge */
        qv_aml_name(&a, "_CID");
        qv_aml_eisaid(&a, "PNP0A03"); /* compatible with a PCI root bridge */
        qv_aml_name(&a, "_SEG");
        qv_aml_integer(&a, l->pci_segment);
        qv_aml_name(&a, "_BBN");
        qv_aml_integer(&a, l->ecam_bus_start);
        qv_aml_name(&a, "_UID");
        qv_aml_integer(&a, 0);
        struct qv_res r = {0};
        qv_res_word_bus(&r, l->ecam_base ? l->ecam_bus_start : 0,
                        l->ecam_base ? l->ecam_bus_end : 0xff);
        qv_res_io(&r, 0xcf8, 0xcf8, 0x01, 0x08); /* legacy configuration mechanism #1 */
        qv_res_word_io(&r, 0x0000, 0x0cf7);
        qv_res_word_io(&r, 0x0d00, 0xffff);
        /* 32-bit MMIO window: the hole up to the ECAM window (or the IOAPIC). */
        uint64_t win_end = l->ecam_base ? l->ecam_base : l->ioapic_base;
        qv_res_dword_mem(&r, (uint32_t)l->mmio_hole_start, (uint32_t)(win_end - 1));
        qv_res_end(&r);
        qv_aml_name(&a, "_CRS");
        qv_aml_buffer(&a, r.buf, r.len);
        /* INTx routing (ACPI 6.x 6.2.13): {device << 16 | 0xffff, pin, Zero (no link
         * device: the last field is a GSI), GSI} for devices 1..31, pins INTA..INTD. */
        qv_aml_name(&a, "_PRT");
        qv_aml_package_begin(&a, 31 * 4);
        for (uint32_t dev = 1; dev < 32; dev++)
            for (uint32_t pin = 0; pin < 4; pin++) {
                qv_aml_package_begin(&a, 4);
                qv_aml_integer(&a, dev << 16 | 0xffff);
                qv_aml_integer(&a, pin);
                qv_aml_integer(&a, 0);
                qv_aml_integer(&a, qv_pci_intx_gsi(dev, pin));
                qv_aml_end(&a);
            }
        qv_aml_end(&a);
        qv_aml_end(&a);
    }
    if (cfg->ecam && l->ecam_base) {
        /* Motherboard resource holding the ECAM window: Linux checks MCFG against these. */
        qv_aml_device_begin(&a, "RES0");
        qv_aml_name(&a, "_HID");
        qv_aml_eisaid(&a, "PNP0C02");
        qv_aml_name(&a, "_UID");
        qv_aml_integer(&a, 0);
        struct qv_res r = {0};
        qv_res_mem32_fixed(&r, (uint32_t)l->ecam_base, (uint32_t)qv_layout_ecam_size(l));
        qv_res_end(&r);
        qv_aml_name(&a, "_CRS");
        qv_aml_buffer(&a, r.buf, r.len);
        qv_aml_end(&a);
    }
    if (cfg->dsdt_hook) {
        int rc = cfg->dsdt_hook(&a, cfg->dsdt_hook_opaque);
        if (rc)
            return FAIL(rc, "acpi: the DSDT device hook failed (%d)", rc);
    }
    qv_aml_end(&a);

    /* \_S0 (working) and \_S5 (soft off): SLP_TYPa, SLP_TYPb, reserved, reserved. ACPICA
     * looks \_S0 up when it leaves a sleep state. */
    qv_aml_name(&a, "\\_S0");
    qv_aml_package_begin(&a, 4);
    for (int i = 0; i < 4; i++)
        qv_aml_integer(&a, 0);
    qv_aml_end(&a);

    uint8_t slp = cfg->s5_slp_typ ? cfg->s5_slp_typ : QV_ACPI_S5_SLP_TYP;
    qv_aml_name(&a, "\\_S5");
    qv_aml_package_begin(&a, 4);
    qv_aml_integer(&a, slp);
    qv_aml_integer(&a, slp);
    qv_aml_integer(&a, 0);
    qv_aml_integer(&a, 0);
    qv_aml_end(&a);

    int n = qv_aml_finish(&a);
    if (n < 0)
        return FAIL(n, "acpi: generating the DSDT failed (%s)",
                    n == QV_ERR_NOMEM ? "no room in the BIOS area" : "bad AML");
    uint64_t len = HDR_LEN + (uint64_t)n;
    b->pos = at + len; /* the writer was bounded by QV_ACPI_END, so this fits */
    header(b->mem + at, "DSDT", (uint32_t)len, 2, "QVDSDT");
    seal(b->mem + at);
    *addr = at;
    return 0;
}

static int build_madt(struct builder *b, const struct qv_memory_layout *l,
                      const struct qv_acpi_config *cfg, uint64_t *addr)
{
    uint64_t len = HDR_LEN + 8;
    for (uint32_t i = 0; i < cfg->cpu_count; i++)
        len += cfg->apic_ids[i] < 0xff ? 8 : 16;
    len += 12 + 2 * 10 + 6; /* IOAPIC, two overrides, LAPIC NMI */
    uint64_t at = alloc(b, len, 16);
    if (!at)
        return FAIL(QV_ERR_NOMEM, "acpi: no room for the MADT");
    uint8_t *t = b->mem + at;
    header(t, "APIC", (uint32_t)len, 5, "QVMADT");
    qv_wr32(t + 36, (uint32_t)l->lapic_base);
    qv_wr32(t + 40, 1); /* PCAT_COMPAT: dual 8259s present */
    uint8_t *e = t + 44;
    for (uint32_t i = 0; i < cfg->cpu_count; i++) {
        uint32_t id = cfg->apic_ids[i];
        if (id < 0xff) { /* Processor Local APIC */
            e[0] = 0;
            e[1] = 8;
            e[2] = (uint8_t)i; /* ACPI processor UID */
            e[3] = (uint8_t)id;
            qv_wr32(e + 4, 1); /* enabled */
            e += 8;
        } else { /* Processor Local x2APIC, for ids an 8-bit field cannot hold */
            e[0] = 9;
            e[1] = 16;
            qv_wr16(e + 2, 0);
            qv_wr32(e + 4, id);
            qv_wr32(e + 8, 1);
            qv_wr32(e + 12, i);
            e += 16;
        }
    }
    e[0] = 1; /* I/O APIC */
    e[1] = 12;
    e[2] = cfg->ioapic_id;
    e[3] = 0;
    qv_wr32(e + 4, (uint32_t)l->ioapic_base);
    qv_wr32(e + 8, 0); /* GSI base */
    e += 12;
    /* Interrupt source overrides: the PIT's IRQ0 is wired to IOAPIC pin 2; the SCI is
     * level-triggered, active high. */
    const struct { uint8_t irq; uint32_t gsi; uint16_t flags; } iso[2] = {
        {0, 2, 0},
        {cfg->sci_irq ? cfg->sci_irq : QV_ACPI_SCI_IRQ,
         cfg->sci_irq ? cfg->sci_irq : QV_ACPI_SCI_IRQ, 0x000d},
    };
    for (int i = 0; i < 2; i++) {
        e[0] = 2;
        e[1] = 10;
        e[2] = 0; /* ISA bus */
        e[3] = iso[i].irq;
        qv_wr32(e + 4, iso[i].gsi);
        qv_wr16(e + 8, iso[i].flags);
        e += 10;
    }
    e[0] = 4; /* Local APIC NMI on LINT1 of every processor */
    e[1] = 6;
    e[2] = 0xff;
    qv_wr16(e + 3, 0);
    e[5] = 1;
    seal(t);
    *addr = at;
    return 0;
}

static int build_mcfg(struct builder *b, const struct qv_memory_layout *l, uint64_t *addr)
{
    uint64_t len = HDR_LEN + 8 + 16;
    uint64_t at = alloc(b, len, 16);
    if (!at)
        return FAIL(QV_ERR_NOMEM, "acpi: no room for the MCFG");
    uint8_t *t = b->mem + at;
    header(t, "MCFG", (uint32_t)len, 1, "QVMCFG");
    uint8_t *e = t + 44;
    qv_wr64(e, l->ecam_base);
    qv_wr16(e + 8, l->pci_segment);
    e[10] = l->ecam_bus_start;
    e[11] = l->ecam_bus_end;
    seal(t);
    *addr = at;
    return 0;
}

static int build_fadt(struct builder *b, const struct qv_acpi_config *cfg, uint64_t facs,
                      uint64_t dsdt, uint64_t *addr)
{
    uint64_t at = alloc(b, FADT_LEN, 16);
    if (!at)
        return FAIL(QV_ERR_NOMEM, "acpi: no room for the FADT");
    uint8_t *t = b->mem + at;
    uint16_t evt = cfg->pm1a_evt_port ? cfg->pm1a_evt_port : QV_ACPI_PM1A_EVT_PORT;
    uint16_t cnt = cfg->pm1a_cnt_port ? cfg->pm1a_cnt_port : QV_ACPI_PM1A_CNT_PORT;
    uint16_t reset = cfg->reset_port ? cfg->reset_port : QV_ACPI_RESET_PORT;
    uint8_t reset_value = cfg->reset_port ? cfg->reset_value : QV_ACPI_RESET_VALUE;
    header(t, "FACP", FADT_LEN, 6, "QVFADT");
    qv_wr32(t + 36, (uint32_t)facs);
    qv_wr32(t + 40, (uint32_t)dsdt);
    qv_wr16(t + 46, cfg->sci_irq ? cfg->sci_irq : QV_ACPI_SCI_IRQ);
    qv_wr32(t + 48, 0); /* no SMI command port: the platform is always in ACPI mode */
    qv_wr32(t + 56, evt);
    qv_wr32(t + 64, cnt);
    t[88] = 4; /* PM1_EVT_LEN */
    t[89] = 2; /* PM1_CNT_LEN */
    qv_wr16(t + 96, 101);  /* P_LVL2_LAT > 100: C2 not supported */
    qv_wr16(t + 98, 1001); /* P_LVL3_LAT > 1000: C3 not supported */
    qv_wr16(t + 109, 0x0007); /* IAPC_BOOT_ARCH: legacy devices, 8042, no VGA */
    /* Flags: WBINVD, PROC_C1, SLP_BUTTON (no sleep button), RESET_REG_SUP. PWR_BUTTON (bit 4)
     * stays clear: the power button is the fixed feature in PM1 (PWRBTN_STS/EN) that the
     * engine presses for a graceful stop; with the bit set Linux never enables it. */
    qv_wr32(t + 112, (1u << 0) | (1u << 2) | (1u << 5) | (1u << 10));
    gas_io(t + 116, reset, 8, 1);
    t[128] = reset_value;
    t[131] = 3; /* FADT minor version: ACPI 6.3 */
    qv_wr64(t + 132, facs);
    qv_wr64(t + 140, dsdt);
    gas_io(t + 148, evt, 32, 2);
    gas_io(t + 172, cnt, 16, 2);
    memcpy(t + 268, "QVIRTKVM", 8); /* hypervisor vendor identity */
    seal(t);
    *addr = at;
    return 0;
}

int qv_acpi_build(uint8_t *mem, size_t mem_size, const struct qv_memory_layout *layout,
                  const struct qv_acpi_config *cfg, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = 0;
    if (!mem || !cfg || mem_size < QV_ACPI_END)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "acpi: guest memory must cover 1 MiB");
    int rc = qv_layout_validate(layout, errbuf, errlen);
    if (rc)
        return rc;
    if (cfg->cpu_count < 1 || cfg->cpu_count > QV_ACPI_MAX_CPUS)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "cpu.count: %u is outside 1..%d",
                       cfg->cpu_count, QV_ACPI_MAX_CPUS);
    for (uint32_t i = 0; i < cfg->cpu_count; i++)
        for (uint32_t j = 0; j < i; j++)
            if (cfg->apic_ids[i] == cfg->apic_ids[j])
                return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                               "acpi: vCPUs %u and %u share APIC id %u", j, i,
                               cfg->apic_ids[i]);
    if (cfg->ecam && !layout->ecam_base)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "acpi: MCFG asked for but no ECAM window");
    uint8_t slp = cfg->s5_slp_typ ? cfg->s5_slp_typ : QV_ACPI_S5_SLP_TYP;
    if (slp > 7)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "acpi: SLP_TYP %u is not 3 bits", slp);

    struct builder bld = {mem, QV_ACPI_BASE, errbuf, errlen};
    struct builder *b = &bld;
    memset(mem + QV_ACPI_BASE, 0, QV_ACPI_END - QV_ACPI_BASE);
    uint64_t rsdp = alloc(b, RSDP_LEN, 16);
    uint64_t facs = alloc(b, FACS_LEN, 64);
    if (rsdp != QV_ACPI_RSDP_ADDR || !facs)
        return FAIL(QV_ERR_INTERNAL, "acpi: RSDP/FACS placement");
    memcpy(mem + facs, "FACS", 4);
    qv_wr32(mem + facs + 4, FACS_LEN);
    mem[facs + 32] = 2; /* version; the FACS has no checksum */

    uint64_t dsdt = 0, fadt = 0, madt = 0, mcfg = 0;
    if ((rc = build_dsdt(b, layout, cfg, &dsdt)) || (rc = build_fadt(b, cfg, facs, dsdt, &fadt)) ||
        (rc = build_madt(b, layout, cfg, &madt)) ||
        (cfg->ecam && (rc = build_mcfg(b, layout, &mcfg))))
        return rc;
    uint64_t tables[MAX_TABLES];
    size_t nt = 0;
    tables[nt++] = fadt;
    tables[nt++] = madt;
    if (mcfg)
        tables[nt++] = mcfg;

    uint64_t rsdt = alloc(b, HDR_LEN + 4 * nt, 16);
    uint64_t xsdt = alloc(b, HDR_LEN + 8 * nt, 16);
    if (!rsdt || !xsdt)
        return FAIL(QV_ERR_NOMEM, "acpi: no room for the RSDT/XSDT");
    header(mem + rsdt, "RSDT", (uint32_t)(HDR_LEN + 4 * nt), 1, "QVRSDT");
    header(mem + xsdt, "XSDT", (uint32_t)(HDR_LEN + 8 * nt), 1, "QVXSDT");
    for (size_t i = 0; i < nt; i++) {
        qv_wr32(mem + rsdt + HDR_LEN + 4 * i, (uint32_t)tables[i]);
        qv_wr64(mem + xsdt + HDR_LEN + 8 * i, tables[i]);
    }
    seal(mem + rsdt);
    seal(mem + xsdt);

    uint8_t *r = mem + rsdp;
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, "QVIRT ", 6);
    r[15] = 2; /* ACPI 2.0+: has the XSDT */
    qv_wr32(r + 16, (uint32_t)rsdt);
    qv_wr32(r + 20, RSDP_LEN);
    qv_wr64(r + 24, xsdt);
    r[8] = (uint8_t)(0x100 - qv_acpi_checksum(r, 20));
    r[32] = (uint8_t)(0x100 - qv_acpi_checksum(r, RSDP_LEN));
    return (int)(b->pos - QV_ACPI_BASE);
}
