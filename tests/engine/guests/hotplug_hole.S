# Probes the memory.max_size hot-add range from inside the guest: maps the 2 MiB at 4 GiB (the
# range's start for a VM whose RAM ends below 3 GiB), reads it, writes it, reads it again, and
# does the same at the top of RAM. Reports each read on port 0xf8 and exits with 0. The range
# is reserved, not RAM: the reads must come back as an unclaimed access (all ones), the write
# must not stick; RAM must keep what was written.
# qv-guest: mode=long load=0x100000
    .code64
    .text
    .globl _start
    .set PDPT, 0x2000            # the runner's page tables (engine.identity_page_tables)
    .set NEWPD, 0x8000
    .set HOLE, 0x100000000
    .set RAMTOP, 0x7fff000       # last page of the 128 MiB the test gives
_start:
    mov $NEWPD, %rdi             # a page directory for 4..5 GiB
    xor %eax, %eax
    mov $512, %ecx
    rep stosq
    mov $HOLE | 0x83, %rax       # present, writable, 2 MiB page
    mov %rax, NEWPD
    movq $NEWPD | 0x3, PDPT + 4 * 8
    mov %cr3, %rax
    mov %rax, %cr3               # flush the TLB

    mov $HOLE, %rbx
    mov $0xf8, %dx
    mov (%rbx), %eax
    out %eax, %dx
    movl $0x12345678, (%rbx)
    mov (%rbx), %eax
    out %eax, %dx

    mov $RAMTOP, %rbx
    movl $0x12345678, (%rbx)
    mov (%rbx), %eax
    out %eax, %dx

    xor %eax, %eax
    mov $0xf4, %dx
    out %eax, %dx
1:  hlt
    jmp 1b
