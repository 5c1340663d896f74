# Prints a line, then powers off through the ACPI PM1a control register (SLP_TYP S5 | SLP_EN),
# as Linux does on `poweroff`.
# qv-guest: mode=long load=0x100000
    .code64
    .text
    .globl _start
_start:
    lea msg(%rip), %rsi
1:  lodsb
    test %al, %al
    jz 2f
    mov $0x3f8, %dx
    out %al, %dx
    jmp 1b
2:  mov $0x604, %dx
    mov $(5 << 10) | (1 << 13), %ax
    out %ax, %dx
3:  hlt
    jmp 3b
msg:
    .asciz "powering off\n"
