/* qv_boot_cpu_state -> struct kvm_sregs / kvm_regs (see quantavirt/boot_kvm.h). */
#include "quantavirt/boot_kvm.h"

#include <string.h>

#include "boot/bytes.h"
#include "quantavirt/errors.h"

int qv_boot_decode_segment(const uint8_t *mem, size_t mem_size,
                           const struct qv_boot_cpu_state *st, uint16_t selector,
                           struct kvm_segment *seg)
{
    uint64_t index = selector & ~7u;
    if (!mem || !st || !seg || (selector & 4) || index == 0 ||
        index + 7 > st->gdt_limit || !qv_range_ok(st->gdt_base + index, 8, mem_size))
        return QV_ERR_INVAL;
    uint64_t d = qv_rd64(mem + st->gdt_base + index);
    uint32_t limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));
    bool g = (d >> 55) & 1;
    memset(seg, 0, sizeof(*seg));
    seg->base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
    seg->limit = g ? (limit << 12) | 0xfff : limit;
    seg->selector = selector;
    seg->type = (d >> 40) & 0xf;
    seg->s = (d >> 44) & 1;
    seg->dpl = (d >> 45) & 3;
    seg->present = (d >> 47) & 1;
    seg->avl = (d >> 52) & 1;
    seg->l = (d >> 53) & 1;
    seg->db = (d >> 54) & 1;
    seg->g = g;
    seg->unusable = !seg->present;
    return 0;
}

int qv_boot_kvm_sregs(const uint8_t *mem, size_t mem_size, const struct qv_boot_cpu_state *st,
                      struct kvm_sregs *sregs)
{
    if (!sregs)
        return QV_ERR_INVAL;
    struct kvm_segment code, data, tss;
    int rc = qv_boot_decode_segment(mem, mem_size, st, st->code_selector, &code);
    if (!rc)
        rc = qv_boot_decode_segment(mem, mem_size, st, st->data_selector, &data);
    if (!rc)
        rc = qv_boot_decode_segment(mem, mem_size, st, st->tss_selector, &tss);
    if (rc)
        return rc;
    sregs->cs = code;
    sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
    sregs->tr = tss;
    /* No LDT: a null, unusable selector with the system-segment type KVM expects. */
    memset(&sregs->ldt, 0, sizeof(sregs->ldt));
    sregs->ldt.type = 2;
    sregs->ldt.unusable = 1;
    sregs->gdt.base = st->gdt_base;
    sregs->gdt.limit = st->gdt_limit;
    sregs->idt.base = 0;
    sregs->idt.limit = 0;
    sregs->cr0 = st->cr0;
    sregs->cr3 = st->cr3;
    sregs->cr4 = st->cr4;
    sregs->efer = st->efer;
    return 0;
}

void qv_boot_kvm_regs(const struct qv_boot_cpu_state *st, struct kvm_regs *regs)
{
    memset(regs, 0, sizeof(*regs));
    regs->rip = st->rip;
    regs->rsp = st->rsp;
    regs->rsi = st->rsi;
    regs->rbx = st->rbx;
    regs->rflags = st->rflags ? st->rflags : 0x2;
}
