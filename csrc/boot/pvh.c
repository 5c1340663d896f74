/* ELF vmlinux loader through the PVH entry (the Xen "HVM direct boot" ABI, also used by
 * QEMU, Firecracker and Cloud Hypervisor): the kernel advertises a 32-bit entry point in a
 * XEN_ELFNOTE_PHYS32_ENTRY note; it starts in flat protected mode with %ebx pointing at an
 * hvm_start_info. Loading the uncompressed vmlinux skips the bzImage decompressor. */
#include "boot/loader.h"
#include "quantavirt/acpi.h"
#include "quantavirt/errors.h"

#define ELF_CLASS64 2
#define ELF_DATA_LE 1
#define ET_EXEC 2
#define EM_X86_64 62
#define PT_LOAD 1
#define PT_NOTE 4
#define EHDR_SIZE 64
#define PHDR_SIZE 56
#define MAX_PHDRS 128
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* hvm_start_info (version 1) and the records it points to. */
#define HVM_START_MAGIC 0x336ec578u
#define SI_SIZE 56
#define SI_MODLIST_OFF 0x40 /* modlist entry right after start_info, 32 bytes */
#define SI_MEMMAP_OFF 0x80  /* memmap entries (24 bytes each) after that */

struct phdr {
    uint32_t type;
    uint64_t offset, paddr, filesz, memsz;
};

bool qv_elf_detect(const uint8_t *img, uint64_t size)
{
    return img && size >= 4 && memcmp(img, "\177ELF", 4) == 0;
}

#define INVAL(...) qv_fail(QV_ERR_INVAL, c->errbuf, c->errlen, "boot.kernel: " __VA_ARGS__)

static uint64_t align4(uint64_t v) { return (v + 3) & ~3ULL; }

/* Walk the notes of one PT_NOTE segment; *entry is set when the PVH note is found.
 * Returns 0 or an error for a malformed note. */
static int scan_notes(struct qv_load_ctx *c, const struct phdr *ph, uint64_t *entry)
{
    const uint8_t *k = c->kernel;
    if (!qv_range_ok(ph->offset, ph->filesz, c->kernel_size))
        return INVAL("PT_NOTE segment (offset 0x%llx, size 0x%llx) lies outside the file",
                     (unsigned long long)ph->offset, (unsigned long long)ph->filesz);
    uint64_t pos = 0;
    const uint64_t end = ph->filesz;
    while (end - pos >= 12) {
        const uint8_t *n = k + ph->offset + pos;
        uint64_t namesz = qv_rd32(n), descsz = qv_rd32(n + 4);
        uint32_t type = qv_rd32(n + 8);
        uint64_t name_at = pos + 12;
        if (!qv_range_ok(name_at, align4(namesz), end))
            return INVAL("ELF note name size %llu runs past its PT_NOTE segment",
                         (unsigned long long)namesz);
        uint64_t desc_at = name_at + align4(namesz);
        if (!qv_range_ok(desc_at, descsz, end))
            return INVAL("ELF note descriptor size %llu runs past its PT_NOTE segment",
                         (unsigned long long)descsz);
        const uint8_t *name = k + ph->offset + name_at;
        if (namesz == 4 && memcmp(name, "Xen", 4) == 0 && type == XEN_ELFNOTE_PHYS32_ENTRY) {
            const uint8_t *d = k + ph->offset + desc_at;
            if (descsz == 4)
                *entry = qv_rd32(d);
            else if (descsz == 8)
                *entry = qv_rd64(d);
            else
                return INVAL("PVH entry note has a %llu-byte descriptor (expected 4 or 8)",
                             (unsigned long long)descsz);
        }
        /* The last descriptor may end unpadded at the segment's end. */
        uint64_t next = desc_at + align4(descsz);
        pos = next < end ? next : end;
    }
    return 0;
}

int qv_pvh_load(struct qv_load_ctx *c)
{
    const uint8_t *k = c->kernel;
    const uint64_t size = c->kernel_size;
    if (size < EHDR_SIZE)
        return INVAL("truncated ELF file (%llu bytes)", (unsigned long long)size);
    if (k[4] != ELF_CLASS64 || k[5] != ELF_DATA_LE)
        return INVAL("only little-endian 64-bit ELF kernels are supported");
    if (qv_rd16(k + 16) != ET_EXEC || qv_rd16(k + 18) != EM_X86_64)
        return INVAL("ELF file is not an x86-64 executable");
    uint64_t phoff = qv_rd64(k + 32);
    uint64_t phentsize = qv_rd16(k + 54), phnum = qv_rd16(k + 56);
    if (phentsize != PHDR_SIZE || phnum == 0 || phnum > MAX_PHDRS)
        return INVAL("ELF program header table has %llu entries of %llu bytes",
                     (unsigned long long)phnum, (unsigned long long)phentsize);
    if (!qv_range_ok(phoff, phnum * PHDR_SIZE, size))
        return INVAL("ELF program header table lies outside the file (truncated?)");

    struct phdr ph[MAX_PHDRS];
    uint64_t entry = UINT64_MAX;
    for (uint64_t i = 0; i < phnum; i++) {
        const uint8_t *p = k + phoff + i * PHDR_SIZE;
        ph[i] = (struct phdr){qv_rd32(p), qv_rd64(p + 8), qv_rd64(p + 24), qv_rd64(p + 32),
                              qv_rd64(p + 40)};
        if (ph[i].type == PT_NOTE) {
            int rc = scan_notes(c, &ph[i], &entry);
            if (rc)
                return rc;
        }
    }
    if (entry == UINT64_MAX)
        return INVAL("ELF file has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); use a bzImage "
                     "or a vmlinux built with CONFIG_PVH");

    /* Check every PT_LOAD before writing anything. */
    uint64_t kernel_start = UINT64_MAX, kernel_end = 0;
    bool entry_ok = false;
    for (uint64_t i = 0; i < phnum; i++) {
        const struct phdr *s = &ph[i];
        if (s->type != PT_LOAD || s->memsz == 0)
            continue;
        if (s->filesz > s->memsz)
            return INVAL("PT_LOAD segment %llu has filesz > memsz", (unsigned long long)i);
        if (!qv_range_ok(s->offset, s->filesz, size))
            return INVAL("PT_LOAD segment %llu lies outside the file (truncated?)",
                         (unsigned long long)i);
        if (s->paddr < QV_BOOT_KERNEL_MIN_ADDR)
            return INVAL("PT_LOAD segment %llu at 0x%llx would overwrite the boot tables below "
                         "1 MiB",
                         (unsigned long long)i, (unsigned long long)s->paddr);
        if (!qv_range_ok(s->paddr, s->memsz, c->window))
            return INVAL("PT_LOAD segment %llu (0x%llx, %llu bytes) lies outside guest RAM "
                         "below 0x%llx; raise memory.size if the kernel is genuine",
                         (unsigned long long)i, (unsigned long long)s->paddr,
                         (unsigned long long)s->memsz, (unsigned long long)c->window);
        for (uint64_t j = 0; j < i; j++) {
            const struct phdr *o = &ph[j];
            if (o->type == PT_LOAD && o->memsz && s->paddr < o->paddr + o->memsz &&
                o->paddr < s->paddr + s->memsz)
                return INVAL("PT_LOAD segments %llu and %llu overlap", (unsigned long long)j,
                             (unsigned long long)i);
        }
        if (entry >= s->paddr && entry - s->paddr < s->filesz)
            entry_ok = true;
        if (s->paddr < kernel_start)
            kernel_start = s->paddr;
        if (s->paddr + s->memsz > kernel_end)
            kernel_end = s->paddr + s->memsz;
    }
    if (kernel_end == 0)
        return INVAL("ELF file has no loadable segment");
    if (!entry_ok)
        return INVAL("PVH entry 0x%llx is not inside a loaded segment",
                     (unsigned long long)entry);

    int rc = qv_boot_write_cmdline(c, QV_BOOT_CMDLINE_MAX - 1);
    if (rc)
        return rc;
    rc = qv_boot_place_initrd(c, kernel_end, c->window);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < phnum; i++) {
        const struct phdr *s = &ph[i];
        if (s->type != PT_LOAD || s->memsz == 0)
            continue;
        memcpy(c->mem + s->paddr, k + s->offset, s->filesz);
        memset(c->mem + s->paddr + s->filesz, 0, s->memsz - s->filesz); /* .bss */
    }

    struct qv_e820_entry e820[QV_E820_MAX_ENTRIES];
    int n = qv_boot_e820(c, e820, QV_E820_MAX_ENTRIES);
    if (n < 0)
        return n;
    uint8_t *si = c->mem + QV_BOOT_START_INFO_ADDR;
    memset(si, 0, 4096);
    qv_wr32(si + 0, HVM_START_MAGIC);
    qv_wr32(si + 4, 1); /* version 1: has the memmap fields */
    qv_wr32(si + 8, 0); /* flags */
    if (c->out->initrd_size) {
        uint8_t *mod = si + SI_MODLIST_OFF;
        qv_wr64(mod + 0, c->out->initrd_start);
        qv_wr64(mod + 8, c->out->initrd_size);
        qv_wr32(si + 12, 1);
        qv_wr64(si + 16, QV_BOOT_START_INFO_ADDR + SI_MODLIST_OFF);
    }
    qv_wr64(si + 24, QV_BOOT_CMDLINE_ADDR);
    qv_wr64(si + 32, QV_ACPI_RSDP_ADDR);
    qv_wr64(si + 40, QV_BOOT_START_INFO_ADDR + SI_MEMMAP_OFF);
    qv_wr32(si + 48, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t *e = si + SI_MEMMAP_OFF + 24 * i;
        qv_wr64(e, e820[i].addr);
        qv_wr64(e + 8, e820[i].size);
        qv_wr32(e + 16, e820[i].type);
    }

    qv_boot_write_gdt(c);

    struct qv_boot_cpu_state *st = c->out;
    st->kernel_format = QV_KERNEL_PVH;
    st->mode = QV_BOOT_PROT32;
    st->rip = entry;
    st->rbx = QV_BOOT_START_INFO_ADDR;
    st->rsp = QV_BOOT_STACK_TOP;
    st->rflags = 0x2;
    st->cr0 = 0x11; /* ET | PE, paging off */
    st->code_selector = QV_BOOT_SEL_CODE32;
    st->data_selector = QV_BOOT_SEL_DATA;
    st->kernel_start = kernel_start;
    st->kernel_end = kernel_end;
    return 0;
}
