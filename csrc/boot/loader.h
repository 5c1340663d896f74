/* Internal interface between the kernel-loading front end (loader.c) and the two format
 * loaders (bzimage.c, pvh.c). */
#ifndef QV_BOOT_LOADER_H
#define QV_BOOT_LOADER_H

#include <stdbool.h>

#include "boot/bytes.h"
#include "quantavirt/boot.h"

struct qv_initrd_src {
    const uint8_t *buf; /* in-memory image, or NULL to read `size` bytes from fd */
    int fd;
    uint64_t size;      /* 0: no initrd */
};

struct qv_load_ctx {
    uint8_t *mem;
    uint64_t window; /* bytes of mem that are guest physical 0.. (RAM below the MMIO hole) */
    const struct qv_memory_layout *layout;
    const uint8_t *kernel; /* untrusted */
    uint64_t kernel_size;
    const char *cmdline;   /* never NULL */
    uint64_t cmdline_len;  /* without the NUL */
    struct qv_initrd_src initrd;
    struct qv_boot_cpu_state *out;
    char *errbuf;
    size_t errlen;
};

bool qv_bzimage_detect(const uint8_t *img, uint64_t size);
bool qv_elf_detect(const uint8_t *img, uint64_t size);
int qv_bzimage_load(struct qv_load_ctx *c);
int qv_pvh_load(struct qv_load_ctx *c);

/* Shared steps, in loader.c. */
/* Copy the initrd to the highest 4 KiB aligned address with its end <= limit_end, and not
 * below `floor` (the end of the kernel). Sets out->initrd_start/size. */
int qv_boot_place_initrd(struct qv_load_ctx *c, uint64_t floor, uint64_t limit_end);
/* Write the command line at QV_BOOT_CMDLINE_ADDR; max_len is the kernel's limit without NUL. */
int qv_boot_write_cmdline(struct qv_load_ctx *c, uint64_t max_len);
void qv_boot_write_gdt(struct qv_load_ctx *c);
void qv_boot_write_page_tables(struct qv_load_ctx *c);
/* The layout's e820 map (never fails for a validated layout). */
int qv_boot_e820(struct qv_load_ctx *c, struct qv_e820_entry *e, size_t max);

#endif
