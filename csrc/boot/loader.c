/* Direct kernel boot front end: reads the files, picks the format by content, and holds the
 * steps both formats share (initrd placement, command line, GDT, page tables). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/loader.h"
#include "quantavirt/errors.h"

#define PAGE 4096ULL

int qv_boot_e820(struct qv_load_ctx *c, struct qv_e820_entry *e, size_t max)
{
    int n = qv_e820_build(c->layout, e, max);
    if (n < 0)
        return qv_fail(QV_ERR_INTERNAL, c->errbuf, c->errlen, "memory layout: no e820 map");
    return n;
}

/* Read exactly `len` bytes at `off` (pread loops over short reads and EINTR). */
static int read_full(int fd, uint8_t *dst, uint64_t len, const char *what, char *errbuf,
                     size_t errlen)
{
    uint64_t done = 0;
    while (done < len) {
        size_t chunk = (len - done) > (1u << 30) ? (1u << 30) : (size_t)(len - done);
        ssize_t r = pread(fd, dst + done, chunk, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return qv_fail(QV_ERR_IO, errbuf, errlen, "%s: read failed: %s", what,
                           strerror(errno));
        if (r == 0)
            return qv_fail(QV_ERR_IO, errbuf, errlen, "%s: file shrank while reading", what);
        done += (uint64_t)r;
    }
    return 0;
}

int qv_boot_place_initrd(struct qv_load_ctx *c, uint64_t floor, uint64_t limit_end)
{
    c->out->initrd_start = 0;
    c->out->initrd_size = 0;
    uint64_t size = c->initrd.size;
    if (!size)
        return 0;
    if (limit_end > c->window)
        limit_end = c->window;
    uint64_t addr = 0;
    if (size <= limit_end)
        addr = (limit_end - size) & ~(PAGE - 1);
    if (size > limit_end || addr < floor)
        return qv_fail(QV_ERR_NOMEM, c->errbuf, c->errlen,
                       "boot.initrd: %llu bytes do not fit between the kernel's end (0x%llx) "
                       "and 0x%llx; raise memory.size or use a smaller initrd",
                       (unsigned long long)size, (unsigned long long)floor,
                       (unsigned long long)limit_end);
    if (c->initrd.buf) {
        memcpy(c->mem + addr, c->initrd.buf, size);
    } else {
        int rc = read_full(c->initrd.fd, c->mem + addr, size, "boot.initrd", c->errbuf,
                           c->errlen);
        if (rc)
            return rc;
    }
    c->out->initrd_start = addr;
    c->out->initrd_size = size;
    return 0;
}

int qv_boot_write_cmdline(struct qv_load_ctx *c, uint64_t max_len)
{
    if (max_len > QV_BOOT_CMDLINE_MAX - 1)
        max_len = QV_BOOT_CMDLINE_MAX - 1;
    if (c->cmdline_len > max_len)
        return qv_fail(QV_ERR_INVAL, c->errbuf, c->errlen,
                       "boot.cmdline: %llu bytes long, the kernel accepts at most %llu",
                       (unsigned long long)c->cmdline_len, (unsigned long long)max_len);
    memset(c->mem + QV_BOOT_CMDLINE_ADDR, 0, c->cmdline_len + 1);
    memcpy(c->mem + QV_BOOT_CMDLINE_ADDR, c->cmdline, c->cmdline_len);
    c->out->cmdline_addr = QV_BOOT_CMDLINE_ADDR;
    return 0;
}

void qv_boot_write_gdt(struct qv_load_ctx *c)
{
    /* Flat descriptors: base 0, limit 0xfffff pages. The TSS is a busy 32-bit one of 0x68
     * bytes at 0, only so TR holds something valid in protected mode. */
    static const uint64_t gdt[] = {
        0,                     /* 0x00 null */
        0x00cf9b000000ffffULL, /* 0x08 32-bit code, read/execute */
        0x00af9b000000ffffULL, /* 0x10 64-bit code (L=1), Linux __BOOT_CS */
        0x00cf93000000ffffULL, /* 0x18 data, read/write, Linux __BOOT_DS */
        0x00008b0000000067ULL, /* 0x20 32-bit busy TSS */
    };
    for (size_t i = 0; i < sizeof(gdt) / sizeof(gdt[0]); i++)
        qv_wr64(c->mem + QV_BOOT_GDT_ADDR + 8 * i, gdt[i]);
    c->out->gdt_base = QV_BOOT_GDT_ADDR;
    c->out->gdt_limit = (uint16_t)(sizeof(gdt) - 1);
    c->out->tss_selector = QV_BOOT_SEL_TSS;
}

void qv_boot_write_page_tables(struct qv_load_ctx *c)
{
    /* PML4 -> one PDPT -> four page directories of 2 MiB pages: identity map of 4 GiB. */
    uint8_t *pml4 = c->mem + QV_BOOT_PML4_ADDR;
    uint8_t *pdpt = pml4 + PAGE;
    memset(pml4, 0, 6 * PAGE);
    qv_wr64(pml4, (QV_BOOT_PML4_ADDR + PAGE) | 0x3); /* present, writable */
    for (uint64_t i = 0; i < 4; i++) {
        uint64_t pd_addr = QV_BOOT_PML4_ADDR + (2 + i) * PAGE;
        qv_wr64(pdpt + 8 * i, pd_addr | 0x3);
        for (uint64_t j = 0; j < 512; j++)
            qv_wr64(c->mem + pd_addr + 8 * j, ((i << 30) + (j << 21)) | 0x83); /* PS */
    }
}

static int load(struct qv_load_ctx *c)
{
    memset(c->out, 0, sizeof(*c->out));
    if (qv_bzimage_detect(c->kernel, c->kernel_size))
        return qv_bzimage_load(c);
    if (qv_elf_detect(c->kernel, c->kernel_size))
        return qv_pvh_load(c);
    return qv_fail(QV_ERR_INVAL, c->errbuf, c->errlen,
                   "boot.kernel: neither a bzImage (no \"HdrS\" setup header) nor an ELF "
                   "vmlinux with a PVH entry note");
}

static int init_ctx(struct qv_load_ctx *c, uint8_t *mem, size_t mem_size, const char *cmdline,
                    const struct qv_memory_layout *layout, struct qv_boot_cpu_state *out,
                    char *errbuf, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->errbuf = errbuf;
    c->errlen = errlen;
    if (errbuf && errlen)
        errbuf[0] = 0;
    if (!mem || !out)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "boot: no guest memory or state given");
    int rc = qv_layout_validate(layout, errbuf, errlen);
    if (rc)
        return rc;
    if (mem_size < layout->low_ram_end)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                       "boot: guest memory buffer (%zu bytes) is smaller than the layout's "
                       "RAM below the MMIO hole (%llu bytes)",
                       mem_size, (unsigned long long)layout->low_ram_end);
    c->mem = mem;
    c->window = layout->low_ram_end;
    c->layout = layout;
    c->cmdline = cmdline ? cmdline : "";
    c->cmdline_len = strlen(c->cmdline);
    c->out = out;
    c->initrd.fd = -1;
    return 0;
}

int qv_boot_load_kernel_image(uint8_t *mem, size_t mem_size, const uint8_t *kernel,
                              size_t kernel_size, const uint8_t *initrd, size_t initrd_size,
                              const char *cmdline, const struct qv_memory_layout *layout,
                              struct qv_boot_cpu_state *out, char *errbuf, size_t errlen)
{
    struct qv_load_ctx c;
    int rc = init_ctx(&c, mem, mem_size, cmdline, layout, out, errbuf, errlen);
    if (rc)
        return rc;
    if (!kernel)
        kernel_size = 0;
    if (!initrd)
        initrd_size = 0;
    c.kernel = kernel;
    c.kernel_size = kernel_size;
    c.initrd.buf = initrd;
    c.initrd.size = initrd_size;
    return load(&c);
}

/* Open a boot file; maps errno to the QV code users expect for that config path. */
static int open_input(const char *path, const char *what, int *fd_out, uint64_t *size_out,
                      char *errbuf, size_t errlen)
{
    if (!path || !*path)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "%s: no path given", what);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        int code = (e == ENOENT || e == ENOTDIR) ? QV_ERR_NOENT
                   : (e == EACCES || e == EPERM) ? QV_ERR_PERM
                                                 : QV_ERR_IO;
        return qv_fail(code, errbuf, errlen, "%s: cannot open %s: %s", what, path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "%s: %s is not a regular file", what,
                       path);
    }
    *fd_out = fd;
    *size_out = (uint64_t)st.st_size;
    return 0;
}

int qv_boot_load_kernel(uint8_t *mem, size_t mem_size, const char *kernel_path,
                        const char *initrd_path, const char *cmdline,
                        const struct qv_memory_layout *layout, struct qv_boot_cpu_state *out,
                        char *errbuf, size_t errlen)
{
    struct qv_load_ctx c;
    int rc = init_ctx(&c, mem, mem_size, cmdline, layout, out, errbuf, errlen);
    if (rc)
        return rc;
    int kfd = -1;
    uint64_t ksize = 0;
    rc = open_input(kernel_path, "boot.kernel", &kfd, &ksize, errbuf, errlen);
    if (rc)
        return rc;
    uint8_t *kbuf = NULL;
    if (ksize > c.window) {
        rc = qv_fail(QV_ERR_INVAL, errbuf, errlen,
                     "boot.kernel: %s (%llu bytes) is larger than guest RAM below 4 GiB",
                     kernel_path, (unsigned long long)ksize);
        goto out;
    }
    kbuf = malloc(ksize ? ksize : 1);
    if (!kbuf) {
        rc = qv_fail(QV_ERR_NOMEM, errbuf, errlen, "boot.kernel: no memory to read %s",
                     kernel_path);
        goto out;
    }
    rc = read_full(kfd, kbuf, ksize, "boot.kernel", errbuf, errlen);
    if (rc)
        goto out;
    c.kernel = kbuf;
    c.kernel_size = ksize;
    if (initrd_path && *initrd_path) {
        rc = open_input(initrd_path, "boot.initrd", &c.initrd.fd, &c.initrd.size, errbuf,
                        errlen);
        if (rc)
            goto out;
        if (!c.initrd.size) {
            rc = qv_fail(QV_ERR_INVAL, errbuf, errlen, "boot.initrd: %s is empty",
                         initrd_path);
            goto out;
        }
    }
    rc = load(&c);
out:
    if (c.initrd.fd >= 0)
        close(c.initrd.fd);
    free(kbuf);
    close(kfd);
    return rc;
}
