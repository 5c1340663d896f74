/* Entry of the freestanding virtio test guest: 64-bit long mode with the first 4 GiB
 * identity-mapped (quantavirt.engine.load_flat "long"), stack set by the host. Sets up an
 * IDT whose vector 0x40-0x41 stubs call the C interrupt handler, then calls guest_main. */
    .code64
    .section .text.start, "ax"
    .globl _start
_start:
    cli
    lea idt(%rip), %rdi
    lea irq_stub40(%rip), %rax
    mov $0x40, %ecx
    call set_gate
    lea idt(%rip), %rdi
    lea irq_stub41(%rip), %rax
    mov $0x41, %ecx
    call set_gate
    lidt idt_ptr(%rip)
    call guest_main
    /* guest_main returned its exit status in eax: debug-exit port */
    outl %eax, $0xf4
1:  hlt
    jmp 1b

/* rdi = idt, rax = handler, ecx = vector: 64-bit interrupt gate, selector 0x08 */
set_gate:
    shl $4, %rcx
    add %rcx, %rdi
    mov %ax, (%rdi)
    movw $0x08, 2(%rdi)
    movw $0x8e00, 4(%rdi)
    shr $16, %rax
    mov %ax, 6(%rdi)
    shr $16, %rax
    mov %eax, 8(%rdi)
    movl $0, 12(%rdi)
    ret

    .macro stub vec
irq_stub\vec:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    mov $0x\vec, %edi
    call guest_irq
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    iretq
    .endm
    stub 40
    stub 41

    .section .data
    .balign 16
idt_ptr:
    .word 256 * 16 - 1
    .quad idt
    .section .bss
    .balign 16
idt:
    .skip 256 * 16
