# Prints a line, then powers off through the ACPI PM1a control register (SLP_TYP S5 | SLP_EN),
# as Linux does on `poweroff`.
# qv-guest: mode=long load=0x100000
    .code64
    .include "qv_guest.inc"
    .text
    .globl _start
_start:
    PUTS64 msg
2:  mov $0x604, %dx
    mov $(5 << 10) | (1 << 13), %ax
    out %ax, %dx
3:  hlt
    jmp 3b
msg:
    .asciz "powering off\n"
