/* The boot interface between loaders (csrc/boot/: bzImage, PVH, ACPI, e820) and the engine
 * (csrc/kvm/). A loader writes everything it needs into guest memory and describes the
 * vCPU state the boot processor must start in; the engine applies that state with
 * KVM_SET_SREGS / KVM_SET_REGS and runs. Loaders never touch /dev/kvm, so they are tested as
 * pure functions over a memory buffer. */
#ifndef QUANTAVIRT_BOOT_H
#define QUANTAVIRT_BOOT_H

#include <stddef.h>
#include <stdint.h>

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
};

#endif
