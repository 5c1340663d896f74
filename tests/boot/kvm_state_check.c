/* Loads a kernel, converts the boot state to KVM register structs and prints them, so
 * test_kvm_state.py can check the segment caches against the GDT in guest memory. Built by
 * that test against the C sources (no /dev/kvm involved). */
#include <stdio.h>
#include <stdlib.h>

#include "quantavirt/boot_kvm.h"

static void show(const char *name, const struct kvm_segment *s)
{
    printf("%s base=%llx limit=%x sel=%x type=%x present=%u dpl=%u db=%u s=%u l=%u g=%u "
           "unusable=%u\n",
           name, (unsigned long long)s->base, s->limit, s->selector, s->type, s->present,
           s->dpl, s->db, s->s, s->l, s->g, s->unusable);
}

int main(int argc, char **argv)
{
    struct qv_memory_layout layout;
    char err[512];
    if (argc != 2 || qv_layout_init(&layout, 128u << 20, 0, err, sizeof(err)) != 0)
        return 2;
    uint8_t *mem = calloc(1, layout.low_ram_end);
    struct qv_boot_cpu_state st;
    if (!mem || qv_boot_load_kernel(mem, layout.low_ram_end, argv[1], NULL, "", &layout, &st,
                                    err, sizeof(err)) != 0) {
        fprintf(stderr, "load: %s\n", err);
        return 3;
    }
    struct kvm_sregs sregs = {0};
    struct kvm_regs regs;
    if (qv_boot_kvm_sregs(mem, layout.low_ram_end, &st, &sregs) != 0)
        return 4;
    qv_boot_kvm_regs(&st, &regs);
    show("cs", &sregs.cs);
    show("ds", &sregs.ds);
    show("ss", &sregs.ss);
    show("tr", &sregs.tr);
    show("ldt", &sregs.ldt);
    printf("gdt base=%llx limit=%x\n", (unsigned long long)sregs.gdt.base, sregs.gdt.limit);
    printf("cr0=%llx cr3=%llx cr4=%llx efer=%llx\n", (unsigned long long)sregs.cr0,
           (unsigned long long)sregs.cr3, (unsigned long long)sregs.cr4,
           (unsigned long long)sregs.efer);
    printf("rip=%llx rsp=%llx rsi=%llx rbx=%llx rflags=%llx\n", (unsigned long long)regs.rip,
           (unsigned long long)regs.rsp, (unsigned long long)regs.rsi,
           (unsigned long long)regs.rbx, (unsigned long long)regs.rflags);
    /* A selector outside the GDT, a null one and an LDT one are refused. */
    struct kvm_segment seg;
    printf("bad=%d,%d,%d\n", qv_boot_decode_segment(mem, layout.low_ram_end, &st, 0x28, &seg),
           qv_boot_decode_segment(mem, layout.low_ram_end, &st, 0, &seg),
           qv_boot_decode_segment(mem, layout.low_ram_end, &st, 0x1c, &seg));
    free(mem);
    return 0;
}
