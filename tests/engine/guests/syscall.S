# Ring-3 round trip: the kernel part (CPL 0) sets up a GDT with user segments and a TSS, an
# IDT for #UD/#GP/#PF, EFER.SCE, STAR/LSTAR/SFMASK, then IRETQ to ring 3 with IOPL 3 (so the
# user part can use the report ports). User code reports its CPL, executes SYSCALL; the entry
# point reports the CPL it runs at and returns with SYSRETQ; back in user mode the CPL is
# reported again and the guest exits with 0. An exception reports 0xe00 + vector and the CPL
# of the interrupted code, then exits with 0x100 + vector.
# Results: 0x100|CPL (user), 0x200|CPL (syscall entry), 0x300|CPL (after sysret).
# qv-guest: mode=long load=0x100000
    .code64
    .include "qv_guest.inc"
    .text
    .globl _start

_start:
    # TSS descriptor at GDT+0x28: base = tss, limit 0x67, type 9 (64-bit TSS), present
    lea tss(%rip), %rax
    lea gdt+0x28(%rip), %rdi
    movw $0x67, (%rdi)
    mov %ax, 2(%rdi)
    shr $16, %rax
    mov %al, 4(%rdi)
    movb $0x89, 5(%rdi)
    movb $0, 6(%rdi)
    mov %ah, 7(%rdi)
    shr $16, %rax
    mov %eax, 8(%rdi)
    movl $0, 12(%rdi)
    lea kstack_top(%rip), %rax
    mov %rax, tss+4(%rip)              # RSP0

    lgdt gdtr(%rip)
    lea 1f(%rip), %rax
    pushq $0x08
    push %rax
    lretq
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x28, %ax
    ltr %ax

    SET_GATE64 6, exc6
    SET_GATE64 13, exc13
    SET_GATE64 14, exc14
    lidt idtr(%rip)

    mov $0xc0000080, %ecx              # EFER.SCE
    rdmsr
    or $1, %eax
    wrmsr
    mov $0xc0000081, %ecx              # STAR: kernel CS 0x08, SYSRET base 0x10 (CS 0x23, SS 0x1b)
    xor %eax, %eax
    mov $0x00100008, %edx
    wrmsr
    mov $0xc0000082, %ecx              # LSTAR
    lea syscall_entry(%rip), %rax
    mov %rax, %rdx
    shr $32, %rdx
    wrmsr
    mov $0xc0000084, %ecx              # SFMASK: clear IF, TF, DF on entry
    mov $0x700, %eax
    xor %edx, %edx
    wrmsr

    lea ustack_top(%rip), %rax
    pushq $0x1b                        # SS
    push %rax                          # RSP
    pushq $0x3002                      # RFLAGS: IOPL 3
    pushq $0x23                        # CS
    lea user(%rip), %rax
    push %rax
    iretq

user:
    mov %cs, %eax
    and $3, %eax
    or $0x100, %eax
    REPORT %eax
    syscall
    mov %cs, %eax
    and $3, %eax
    or $0x300, %eax
    REPORT %eax
    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
2:  jmp 2b

syscall_entry:
    mov %cs, %eax
    and $3, %eax
    or $0x200, %eax
    REPORT %eax
    sysretq

.macro EXC vec, errcode
exc\vec:
    .if \errcode
    add $8, %rsp
    .endif
    mov $0xe00+\vec, %eax
    REPORT %eax
    mov 8(%rsp), %rax                  # CS of the interrupted code
    and $3, %eax
    REPORT %eax
    mov $0x100+\vec, %eax
    mov $0xf4, %dx
    out %eax, %dx
3:  hlt
    jmp 3b
.endm
    EXC 6, 0
    EXC 13, 1
    EXC 14, 1

    .balign 16
gdt:
    .quad 0
    .quad 0x00af9a000000ffff           # 0x08 kernel code
    .quad 0x00cf92000000ffff           # 0x10 kernel data
    .quad 0x00cff2000000ffff           # 0x18 user data (0x1b)
    .quad 0x00affa000000ffff           # 0x20 user code (0x23)
    .quad 0, 0                         # 0x28 TSS (filled in)
gdt_end:
gdtr:
    .word gdt_end - gdt - 1
    .quad gdt
idtr:
    .word 256*16-1
    .quad idt
    .balign 16
tss:
    .fill 104, 1, 0
    .balign 16
idt:
    .fill 256*16, 1, 0
    .fill 4096, 1, 0
kstack_top:
    .fill 4096, 1, 0
ustack_top:
