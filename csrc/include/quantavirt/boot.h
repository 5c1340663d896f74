/* The boot interface between loaders (csrc/boot/: bzImage, PVH, ACPI, e820) and the engine
 * (csrc/kvm/). A loader writes everything it needs into guest memory and describes the
 * vCPU state the boot processor must start in; the engine applies that state with
 * KVM_SET_SREGS / KVM_SET_REGS and runs. Loaders never touch /dev/kvm, so they are tested as
 * pure functions over a memory buffer.
 *
 * Guest memory convention: `mem` holds guest RAM in order. Its first
 * min(mem_size, layout->low_ram_end) bytes are guest physical 0.. (mem[0] = GPA 0); bytes
 * beyond layout->low_ram_end (if any) are the RAM above 4 GiB, which loaders never write.
 * The fixed addresses below are where the loaders put their structures (docs/boot.md). */
#ifndef QUANTAVIRT_BOOT_H
#define QUANTAVIRT_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "quantavirt/layout.h"

enum qv_boot_mode {
    QV_BOOT_REAL16 = 0,  /* real mode: cs:ip from `entry` (cs = entry >> 4 & 0xf000) */
    QV_BOOT_PROT32 = 1,  /* flat 32-bit protected mode, paging off (PVH entry) */
    QV_BOOT_LONG64 = 2,  /* 64-bit long mode, identity-mapped page tables at cr3 */
};

/* Initial state of the boot vCPU. Segment descriptors are flat (base 0, limit 4 GiB); the
 * selectors index the GDT the loader wrote at gdt_base. */
struct qv_boot_cpu_state {
    uint32_t mode;          /* enum qv_boot_mode */
    uint64_t rip;
    uint64_t rsp;
    uint64_t rsi;           /* Linux 64-bit boot protocol: boot_params (zero page) address */
    uint64_t rbx;           /* PVH: hvm_start_info address */
    uint64_t rflags;
    uint64_t cr0, cr3, cr4, efer;
    uint64_t gdt_base;
    uint16_t gdt_limit;
    uint16_t code_selector; /* 0x10 for Linux' __BOOT_CS */
    uint16_t data_selector; /* 0x18 for Linux' __BOOT_DS */
    /* Added by the loaders (kept after the original fields): */
    uint16_t tss_selector;  /* 0x20: 32-bit busy TSS, base 0, limit 0x67 (PVH asks for one) */
    uint64_t kernel_start;  /* guest physical range the kernel image occupies */
    uint64_t kernel_end;    /* (bzImage: load address + init_size) */
    uint64_t initrd_start;  /* 0 when there is no initrd */
    uint64_t initrd_size;
    uint64_t cmdline_addr;
    uint32_t kernel_format; /* enum qv_kernel_format */
};

enum qv_kernel_format {
    QV_KERNEL_BZIMAGE = 1,  /* Linux x86 boot protocol, 64-bit entry */
    QV_KERNEL_PVH = 2,      /* ELF with a XEN_ELFNOTE_PHYS32_ENTRY note */
};

/* Fixed guest physical addresses (all below 640 KiB, except the kernel and initrd). */
#define QV_BOOT_GDT_ADDR 0x500ULL
#define QV_BOOT_PML4_ADDR 0x1000ULL        /* PDPT at +0x1000, 4 PDs at +0x2000..+0x5fff */
#define QV_BOOT_ZERO_PAGE_ADDR 0x7000ULL   /* Linux boot_params */
#define QV_BOOT_START_INFO_ADDR 0x8000ULL  /* PVH hvm_start_info, then modlist, memmap */
#define QV_BOOT_STACK_TOP 0x20000ULL       /* initial rsp; the stack grows down */
#define QV_BOOT_CMDLINE_ADDR 0x20000ULL
#define QV_BOOT_CMDLINE_MAX 0x10000ULL     /* bytes, terminating NUL included */
#define QV_BOOT_KERNEL_MIN_ADDR 0x100000ULL /* nothing of the kernel may go below 1 MiB */
#define QV_BOOT_IDENTITY_MAP_SIZE 0x100000000ULL /* the 64-bit entry's page tables map 4 GiB */

/* GDT selectors the loaders provide (same GDT for both entry modes). */
#define QV_BOOT_SEL_CODE32 0x08
#define QV_BOOT_SEL_CODE64 0x10 /* Linux __BOOT_CS */
#define QV_BOOT_SEL_DATA 0x18   /* Linux __BOOT_DS */
#define QV_BOOT_SEL_TSS 0x20

/* Load a kernel for direct boot: a bzImage (64-bit boot protocol) or an ELF vmlinux with a
 * PVH entry note, chosen by the file's contents. Writes the kernel, the initrd (placed as high
 * as allowed below 4 GiB; NULL or "" for none), the command line (NULL for empty), the e820
 * map from `layout`, the zero page or hvm_start_info, the GDT and (64-bit entry) the page
 * tables, and fills `out` with the boot vCPU's state. Both boot_params.acpi_rsdp_addr and
 * hvm_start_info.rsdp_paddr point to QV_ACPI_RSDP_ADDR: build the tables with qv_acpi_build.
 * Every byte of both files is untrusted. Returns 0, or a negative QV error code with
 * "CONFIG.PATH: message" in errbuf (boot.kernel, boot.initrd or boot.cmdline):
 * QV_ERR_NOENT (file missing), QV_ERR_PERM, QV_ERR_INVAL (not a loadable kernel, hostile
 * header, a kernel that does not fit in guest RAM, command line too long), QV_ERR_NOMEM (the
 * initrd does not fit between the kernel and its address limit), QV_ERR_IO. */
int qv_boot_load_kernel(uint8_t *mem, size_t mem_size, const char *kernel_path,
                        const char *initrd_path, const char *cmdline,
                        const struct qv_memory_layout *layout, struct qv_boot_cpu_state *out,
                        char *errbuf, size_t errlen);

/* The same from images already in memory (kernel bytes, initrd bytes or NULL/0). Used by the
 * file variant and by tests; `kernel` is read-only and never trusted. */
int qv_boot_load_kernel_image(uint8_t *mem, size_t mem_size, const uint8_t *kernel,
                              size_t kernel_size, const uint8_t *initrd, size_t initrd_size,
                              const char *cmdline, const struct qv_memory_layout *layout,
                              struct qv_boot_cpu_state *out, char *errbuf, size_t errlen);

#endif
