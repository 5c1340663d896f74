/* bzImage loader: the Linux x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit
 * entry. Only the protected-mode payload is loaded; the real-mode setup code never runs, so
 * the loader fills the zero page (boot_params) that setup would have built. */
#include "boot/loader.h"
#include "quantavirt/acpi.h"
#include "quantavirt/errors.h"

/* Setup header fields: offsets in the file, which are also their offsets in boot_params. */
#define SH_SETUP_SECTS 0x1f1
#define SH_SYSSIZE 0x1f4
#define SH_VID_MODE 0x1fa
#define SH_BOOT_FLAG 0x1fe
#define SH_JUMP 0x200
#define SH_HEADER 0x202
#define SH_VERSION 0x206
#define SH_TYPE_OF_LOADER 0x210
#define SH_LOADFLAGS 0x211
#define SH_CODE32_START 0x214
#define SH_RAMDISK_IMAGE 0x218
#define SH_RAMDISK_SIZE 0x21c
#define SH_CMD_LINE_PTR 0x228
#define SH_INITRD_ADDR_MAX 0x22c
#define SH_KERNEL_ALIGNMENT 0x230
#define SH_RELOCATABLE 0x234
#define SH_XLOADFLAGS 0x236
#define SH_CMDLINE_SIZE 0x238
#define SH_PREF_ADDRESS 0x258
#define SH_INIT_SIZE 0x260
#define SH_MIN_END 0x264  /* a 2.12+ header reaches at least past init_size */
#define SH_MAX_END 0x290  /* boot_params fields that are not the header start here */

/* Other boot_params fields. */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_E820_TABLE 0x2d0
#define BP_SIZE 4096

#define LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x0001
#define ENTRY64_OFFSET 0x200 /* startup_64 is 0x200 bytes into the protected-mode payload */

bool qv_bzimage_detect(const uint8_t *img, uint64_t size)
{
    return img && size >= SH_HEADER + 4 && qv_rd16(img + SH_BOOT_FLAG) == 0xaa55 &&
           memcmp(img + SH_HEADER, "HdrS", 4) == 0;
}

#define INVAL(...) qv_fail(QV_ERR_INVAL, c->errbuf, c->errlen, "boot.kernel: " __VA_ARGS__)

int qv_bzimage_load(struct qv_load_ctx *c)
{
    const uint8_t *k = c->kernel;
    const uint64_t size = c->kernel_size;

    /* The header ends at 0x202 + the jump's displacement byte. */
    uint64_t hdr_end = SH_HEADER + (uint64_t)k[SH_JUMP + 1];
    if (hdr_end < SH_MIN_END || hdr_end > SH_MAX_END)
        return INVAL("bzImage setup header length 0x%llx is not that of a 2.12+ header",
                     (unsigned long long)hdr_end);
    if (size < hdr_end)
        return INVAL("truncated bzImage: %llu bytes, the setup header alone needs %llu",
                     (unsigned long long)size, (unsigned long long)hdr_end);
    uint16_t version = qv_rd16(k + SH_VERSION);
    if (version < 0x020c)
        return INVAL("boot protocol %u.%02u is too old; the 64-bit entry needs 2.12 or later",
                     version >> 8, version & 0xff);
    if (!(k[SH_LOADFLAGS] & LOADED_HIGH))
        return INVAL("a zImage (loaded below 1 MiB) is not supported; need a bzImage");
    if (!(qv_rd16(k + SH_XLOADFLAGS) & XLF_KERNEL_64))
        return INVAL("the kernel has no 64-bit entry point (XLF_KERNEL_64 not set)");

    uint64_t setup_sects = k[SH_SETUP_SECTS] ? k[SH_SETUP_SECTS] : 4;
    uint64_t setup_size = (setup_sects + 1) * 512;
    if (setup_size >= size)
        return INVAL("setup_sects %llu puts the payload at %llu, past the end of the %llu-byte "
                     "file (truncated or corrupt)",
                     (unsigned long long)setup_sects, (unsigned long long)setup_size,
                     (unsigned long long)size);
    uint64_t payload_size = size - setup_size;
    uint64_t syssize_bytes = (uint64_t)qv_rd32(k + SH_SYSSIZE) * 16;
    if (syssize_bytes == 0 || syssize_bytes > payload_size)
        return INVAL("syssize says the payload is %llu bytes but the file holds %llu "
                     "(truncated or corrupt)",
                     (unsigned long long)syssize_bytes, (unsigned long long)payload_size);

    uint64_t init_size = qv_rd32(k + SH_INIT_SIZE);
    if (init_size < payload_size)
        return INVAL("init_size %llu is smaller than the %llu-byte payload",
                     (unsigned long long)init_size, (unsigned long long)payload_size);
    uint64_t pref = qv_rd64(k + SH_PREF_ADDRESS);
    uint64_t load = pref;
    if (k[SH_RELOCATABLE]) {
        uint64_t align = qv_rd32(k + SH_KERNEL_ALIGNMENT);
        if (align < 4096 || align > (1ULL << 30) || (align & (align - 1)))
            return INVAL("kernel_alignment 0x%llx is not a power of two in 4 KiB..1 GiB",
                         (unsigned long long)align);
        if (load < QV_BOOT_KERNEL_MIN_ADDR)
            load = QV_BOOT_KERNEL_MIN_ADDR;
        if (load > QV_BOOT_IDENTITY_MAP_SIZE)
            return INVAL("pref_address 0x%llx is above 4 GiB", (unsigned long long)pref);
        load = (load + align - 1) & ~(align - 1);
    } else if (load < QV_BOOT_KERNEL_MIN_ADDR) {
        return INVAL("non-relocatable kernel wants to load at 0x%llx, below 1 MiB",
                     (unsigned long long)load);
    }
    if (!qv_range_ok(load, init_size, QV_BOOT_IDENTITY_MAP_SIZE))
        return INVAL("load address 0x%llx + init_size 0x%llx ends above 4 GiB",
                     (unsigned long long)load, (unsigned long long)init_size);
    uint64_t kernel_end = load + init_size;
    if (kernel_end > c->window)
        return INVAL("the kernel needs guest memory up to 0x%llx but RAM below the MMIO hole "
                     "ends at 0x%llx; raise memory.size",
                     (unsigned long long)kernel_end, (unsigned long long)c->window);

    uint64_t cmdline_max = qv_rd32(k + SH_CMDLINE_SIZE);
    int rc = qv_boot_write_cmdline(c, cmdline_max);
    if (rc)
        return rc;
    /* initrd_addr_max is the highest address the initrd may occupy (inclusive). */
    rc = qv_boot_place_initrd(c, kernel_end, (uint64_t)qv_rd32(k + SH_INITRD_ADDR_MAX) + 1);
    if (rc)
        return rc;

    memcpy(c->mem + load, k + setup_size, payload_size);

    uint8_t *bp = c->mem + QV_BOOT_ZERO_PAGE_ADDR;
    memset(bp, 0, BP_SIZE);
    memcpy(bp + SH_SETUP_SECTS, k + SH_SETUP_SECTS, hdr_end - SH_SETUP_SECTS);
    qv_wr16(bp + SH_VID_MODE, 0xffff); /* "normal" text mode; we set no video mode */
    qv_wr8(bp + SH_TYPE_OF_LOADER, 0xff); /* undefined boot loader */
    qv_wr8(bp + SH_LOADFLAGS, (uint8_t)(k[SH_LOADFLAGS] | LOADED_HIGH));
    qv_wr32(bp + SH_CODE32_START, (uint32_t)load);
    qv_wr32(bp + SH_RAMDISK_IMAGE, (uint32_t)c->out->initrd_start);
    qv_wr32(bp + SH_RAMDISK_SIZE, (uint32_t)c->out->initrd_size);
    qv_wr32(bp + SH_CMD_LINE_PTR, (uint32_t)QV_BOOT_CMDLINE_ADDR);
    qv_wr64(bp + BP_ACPI_RSDP_ADDR, QV_ACPI_RSDP_ADDR);

    struct qv_e820_entry e820[QV_E820_MAX_ENTRIES];
    int n = qv_boot_e820(c, e820, QV_E820_MAX_ENTRIES);
    if (n < 0)
        return n;
    qv_wr8(bp + BP_E820_ENTRIES, (uint8_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t *e = bp + BP_E820_TABLE + 20 * i;
        qv_wr64(e, e820[i].addr);
        qv_wr64(e + 8, e820[i].size);
        qv_wr32(e + 16, e820[i].type);
    }

    qv_boot_write_gdt(c);
    qv_boot_write_page_tables(c);

    struct qv_boot_cpu_state *s = c->out;
    s->kernel_format = QV_KERNEL_BZIMAGE;
    s->mode = QV_BOOT_LONG64;
    s->rip = load + ENTRY64_OFFSET;
    s->rsi = QV_BOOT_ZERO_PAGE_ADDR;
    s->rsp = QV_BOOT_STACK_TOP;
    s->rflags = 0x2;
    s->cr0 = 0x80000033ULL; /* PG | NE | ET | MP | PE */
    s->cr3 = QV_BOOT_PML4_ADDR;
    s->cr4 = 0x20;          /* PAE */
    s->efer = 0x500;        /* LME | LMA */
    s->code_selector = QV_BOOT_SEL_CODE64;
    s->data_selector = QV_BOOT_SEL_DATA;
    s->kernel_start = load;
    s->kernel_end = kernel_end;
    return 0;
}
