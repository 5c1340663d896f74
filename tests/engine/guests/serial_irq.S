# Serial interrupts through the in-kernel PIC: the guest programs the 8259 (IRQ base 0x20,
# only IRQ 4 unmasked), routes the PIC through LAPIC LINT0 (ExtINT), enables the UART's
# THRE interrupt, then its receive interrupt with bytes the host typed waiting. The IRQ 4
# handler reports each IIR it sees and echoes received bytes; it acknowledges the PIC.
# Results: 0xA0|IIR per interrupt, 0xB00|byte per received byte. Exit 0 when "xy" arrived.
# qv-guest: mode=long load=0x100000
    .code64
    .include "qv_guest.inc"
    .text
    .globl _start

    .set COM1, 0x3f8
    .set LAPIC, 0xfee00000

_start:
    lea irq4(%rip), %rax
    lea idt+0x24*16(%rip), %rdi
    mov %ax, (%rdi)
    movw $0x08, 2(%rdi)
    movw $0x8e00, 4(%rdi)
    shr $16, %rax
    mov %ax, 6(%rdi)
    shr $16, %rax
    mov %eax, 8(%rdi)
    lidt idtr(%rip)

    mov $0x11, %al                  # ICW1: edge, cascade, ICW4
    out %al, $0x20
    mov $0x20, %al                  # ICW2: vectors 0x20..0x27
    out %al, $0x21
    mov $0x04, %al                  # ICW3: slave on IRQ 2
    out %al, $0x21
    mov $0x01, %al                  # ICW4: 8086 mode
    out %al, $0x21
    mov $0xef, %al                  # mask all but IRQ 4
    out %al, $0x21
    mov $0xff, %al
    out %al, $0xa1

    mov $LAPIC, %rbx
    movl $0x1ff, 0xf0(%rbx)         # software-enable the LAPIC
    movl $0x700, 0x350(%rbx)        # LINT0: ExtINT (the PIC's output)

    mov $COM1+4, %dx
    mov $0x08, %al                  # OUT2: the UART's interrupt line to the PIC
    out %al, %dx
    xor %r12, %r12                  # received byte count
    xor %r13, %r13                  # THRE interrupts seen
    sti
    mov $COM1+1, %dx
    mov $0x02, %al                  # IER: THRE
    out %al, %dx
1:  test %r13, %r13                 # wait for the THRE interrupt
    jz 1b
    mov $COM1+1, %dx
    mov $0x01, %al                  # IER: received data only
    out %al, %dx
2:  cmp $2, %r12
    jb 2b
    cli
    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
3:  hlt
    jmp 3b

irq4:
    push %rax
    push %rdx
4:  mov $COM1+2, %dx
    in %dx, %al
    test $1, %al                    # bit 0 set: nothing (more) pending
    jnz 6f
    and $0x0f, %eax
    or $0xa0, %eax
    REPORT %eax
    cmp $0xa2, %al
    jne 5f
    inc %r13                        # THRE (cleared by reading IIR)
    jmp 4b
5:  mov $COM1, %dx                  # RDA: read the byte
    in %dx, %al
    movzbl %al, %eax
    or $0xb00, %eax
    REPORT %eax
    inc %r12
    jmp 4b
6:  mov $0x20, %al                  # EOI to the PIC
    out %al, $0x20
    pop %rdx
    pop %rax
    iretq

    .balign 16
idtr:
    .word 256*16-1
    .quad idt
    .balign 16
idt:
    .fill 256*16, 1, 0
