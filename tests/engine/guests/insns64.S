# Each instruction the completion fallback handles, executed in 64-bit mode with its result
# reported on the result port (0xf8) in a fixed order; debug exit 0 at the end, or the vector
# number + 0x100 when an unexpected exception arrives. The test compares the list.
# qv-guest: mode=long load=0x100000
    .code64
    .include "qv_guest.inc"
    .text
    .globl _start

_start:
    SET_GATE64 3, bp_handler
    SET_GATE64 6, bad_vector6
    SET_GATE64 13, bad_vector13
    SET_GATE64 14, bad_vector14
    lidt idtr(%rip)
    mov %cr4, %rax
    or $0x600, %rax              # OSFXSR | OSXMMEXCPT
    mov %rax, %cr4
    mov %cr0, %rax
    and $~0xc, %rax              # EM = TS = 0
    or $0x22, %rax               # MP, NE
    mov %rax, %cr0

    # 1. int3: the #BP handler runs once and returns after the int3.
    xor %r15, %r15
    int3
after_int3:
    REPORT %r15d                             # 1
    lea after_int3(%rip), %rax
    cmp %rax, %r14
    sete %al
    movzbl %al, %eax
    REPORT %eax                              # 1

    # 2. stac / clac flip RFLAGS.AC.
    stac
    pushfq
    pop %rax
    shr $18, %rax
    and $1, %eax
    REPORT %eax                              # 1
    clac
    pushfq
    pop %rax
    shr $18, %rax
    and $1, %eax
    REPORT %eax                              # 0

    # 3. popcnt: 64-, 32-, 16-bit registers, memory (RIP-relative and SIB), ZF.
    mov $0xf0f0f0f0f0f0f0f0, %rax
    popcnt %rax, %rbx
    REPORT %ebx                              # 32
    mov $-1, %rcx
    mov $7, %eax
    popcnt %eax, %ecx
    mov %rcx, %rax
    shr $32, %rax
    REPORT %eax                              # 0 (32-bit write zero-extends)
    REPORT %ecx                              # 3
    mov $-1, %rdx
    mov $0x00ff, %ax
    popcnt %ax, %dx
    REPORT %edx                              # 0xffff0008 (16-bit write keeps the rest)
    popcnt qword64(%rip), %r9
    REPORT %r9d                              # 17
    lea table(%rip), %rsi
    mov $1, %rcx
    popcnt 8(%rsi,%rcx,8), %r10
    REPORT %r10d                             # 5 (table[2] = 0x1f)
    mov $5, %rax
    xor %rbx, %rbx
    popcnt %rbx, %rax
    setz %cl
    movzbl %cl, %ecx
    REPORT %ecx                              # 1 (ZF)
    REPORT %eax                              # 0

    # 4. fwait with no pending x87 exception is a no-op.
    fwait
    mov $0x9b, %eax
    REPORT %eax                              # 0x9b

    # 5. ldmxcsr / stmxcsr round trip (RC = toward zero, all exceptions masked).
    movl $0x7f80, mx_in(%rip)
    ldmxcsr mx_in(%rip)
    stmxcsr mx_out(%rip)
    REPORT mx_out(%rip)                      # 0x7f80
    fxsave64 fx_out(%rip)
    REPORT fx_out+24(%rip)                   # 0x7f80 (seen by FXSAVE too)

    # 6. fxrstor an image with XMM0 = pattern and MXCSR = 0x1fa0; fxsave it back; compare.
    lea fx_in(%rip), %rdi
    movl $0x1fa0, 24(%rdi)
    movl $0x11223344, 160(%rdi)
    movl $0x55667788, 164(%rdi)
    movl $0xdeadbeef, 172(%rdi)
    movl $0xcafef00d, 160+15*16(%rdi)        # XMM15
    xor %ecx, %ecx
    fxrstor64 (%rdi,%rcx,1)                  # the SIB forms are the ones kvm_pvm refuses
    lea fx_out(%rip), %rsi
    fxsave64 (%rsi,%rcx,8)
    REPORT 24(%rsi)                          # 0x1fa0
    REPORT 160(%rsi)                         # 0x11223344
    REPORT 172(%rsi)                         # 0xdeadbeef
    REPORT 160+15*16(%rsi)                   # 0xcafef00d

    # 7. cmpxchg16b: equal (stores, ZF=1), then unequal (loads, ZF=0).
    lea dq(%rip), %rdi
    movq $1, (%rdi)
    movq $2, 8(%rdi)
    mov $1, %rax
    mov $2, %rdx
    mov $3, %rbx
    mov $4, %rcx
    lock cmpxchg16b (%rdi)
    setz %al
    movzbl %al, %eax
    REPORT %eax                              # 1
    REPORT (%rdi)                            # 3
    REPORT 8(%rdi)                           # 4
    mov $9, %rax
    mov $9, %rdx
    cmpxchg16b (%rdi)
    setz %cl
    movzbl %cl, %ecx
    REPORT %ecx                              # 0
    REPORT %eax                              # 3
    REPORT %edx                              # 4

    # 8. cmpxchg8b (no REX.W; kvm_pvm executes it itself, checked for the result only).
    movl $10, (%rdi)
    movl $20, 4(%rdi)
    mov $10, %eax
    mov $20, %edx
    mov $30, %ebx
    mov $40, %ecx
    cmpxchg8b (%rdi)
    setz %al
    movzbl %al, %eax
    REPORT %eax                              # 1
    REPORT (%rdi)                            # 30
    REPORT 4(%rdi)                           # 40

    # 9. xgetbv with CR4.OSXSAVE set (when the vCPU allows it) reads XCR0 (x87 bit set).
    mov %cr4, %rax
    or $0x40000, %rax
    mov %rax, %cr4
    xor %ecx, %ecx
    xgetbv
    and $1, %eax
    REPORT %eax                              # 1

    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
1:  hlt
    jmp 1b

bp_handler:
    inc %r15
    mov (%rsp), %r14
    iretq

.macro BAD vec
bad_vector\vec:
    mov $0x100+\vec, %eax
    mov $0xf4, %dx
    out %eax, %dx
    hlt
.endm
    BAD 6
    BAD 13
    BAD 14

    .balign 16
idtr:
    .word 256*16-1
    .quad idt
    .balign 8
qword64:
    .quad 0x000000000001ffff
table:
    .quad 0, 0, 0x1f
mx_in:
    .long 0
mx_out:
    .long 0
    .balign 16
dq:
    .quad 0, 0
    .balign 16
fx_in:
    .fill 512, 1, 0
fx_out:
    .fill 512, 1, 0
    .balign 16
idt:
    .fill 256*16, 1, 0
