/* Turning a loader's qv_boot_cpu_state into KVM register state. No ioctl here: the engine
 * does KVM_GET_SREGS, calls qv_boot_kvm_sregs/qv_boot_kvm_regs, then KVM_SET_SREGS/REGS.
 * The segment caches are decoded from the GDT the loader wrote in guest memory, so what KVM
 * holds and what the guest would reload can never differ. */
#ifndef QUANTAVIRT_BOOT_KVM_H
#define QUANTAVIRT_BOOT_KVM_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "quantavirt/boot.h"

/* Decode GDT entry `selector` from guest memory into a KVM segment. Returns 0, or QV_ERR_INVAL
 * when the selector lies outside the GDT or guest memory. */
int qv_boot_decode_segment(const uint8_t *mem, size_t mem_size,
                           const struct qv_boot_cpu_state *st, uint16_t selector,
                           struct kvm_segment *seg);

/* Fill segments, descriptor tables and control registers of `sregs` (other fields, such as
 * the APIC base, are kept as KVM_GET_SREGS returned them). Returns 0 or QV_ERR_INVAL. */
int qv_boot_kvm_sregs(const uint8_t *mem, size_t mem_size, const struct qv_boot_cpu_state *st,
                      struct kvm_sregs *sregs);

/* Zero `regs` and set rip, rsp, rsi, rbx and rflags. */
void qv_boot_kvm_regs(const struct qv_boot_cpu_state *st, struct kvm_regs *regs);

#endif
