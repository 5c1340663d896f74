# The ACPI power button as a guest sees it: routes the SCI (IRQ 9, on the slave 8259 at vector
# 0x29) to a handler, enables PWRBTN_EN in PM1_EN, says "armed" and halts with interrupts on.
# The handler reports PM1_STS through the result port (0xf8), clears PWRBTN_STS, reports
# PM1_STS again, acknowledges the interrupt and powers the VM off through \_S5 (PM1a_CNT).
# qv-guest: mode=long load=0x100000
    .code64
    .include "qv_guest.inc"
    .text
    .globl _start
_start:
    # 8259 pair: ICW1..ICW4, master at vector 0x20, slave at 0x28, cascade on IRQ 2.
    mov $0x11, %al
    out %al, $0x20
    out %al, $0xa0
    mov $0x20, %al
    out %al, $0x21
    mov $0x28, %al
    out %al, $0xa1
    mov $0x04, %al
    out %al, $0x21
    mov $0x02, %al
    out %al, $0xa1
    mov $0x01, %al
    out %al, $0x21
    out %al, $0xa1
    mov $0xfb, %al          # master: only the cascade (IRQ 2)
    out %al, $0x21
    mov $0xfd, %al          # slave: only IRQ 9
    out %al, $0xa1
    # 64-bit interrupt gate for vector 0x29.
    SET_GATE64 0x29, handler
    lidt idtr(%rip)
    # PM1_EN.PWRBTN_EN
    mov $0x602, %dx
    mov $0x100, %ax
    outw %ax, %dx
    lea armed(%rip), %rsi
    call puts
    sti
1:  hlt
    jmp 1b

handler:
    mov $0x600, %dx
    inw %dx, %ax
    movzwl %ax, %eax
    mov $0xf8, %dx
    outl %eax, %dx
    mov $0x600, %dx          # write 1 to clear PWRBTN_STS
    mov $0x100, %ax
    outw %ax, %dx
    inw %dx, %ax
    movzwl %ax, %eax
    mov $0xf8, %dx
    outl %eax, %dx
    mov $0x20, %al           # EOI to slave and master
    out %al, $0xa0
    out %al, $0x20
    lea pressed(%rip), %rsi
    call puts
    mov $0x604, %dx          # SLP_TYP = S5, SLP_EN
    mov $((5 << 10) | (1 << 13)), %ax
    outw %ax, %dx
2:  hlt
    jmp 2b

puts:
    lodsb
    test %al, %al
    jz 3f
    mov $0x3f8, %dx
    out %al, %dx
    jmp puts
3:  ret

armed:
    .asciz "armed\n"
pressed:
    .asciz "power button\n"
    .balign 16
idtr:
    .word 256 * 16 - 1
    .quad idt
    .balign 16
idt:
    .space 256 * 16
