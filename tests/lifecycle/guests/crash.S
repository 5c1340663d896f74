# Prints a line, loads an empty IDT and executes an undefined instruction: #UD cannot be
# delivered, so the vCPU triple-faults (or the backend reports what it cannot emulate).
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
2:  lidt idtr(%rip)
    ud2
3:  jmp 3b
msg:
    .asciz "crashing\n"
    .balign 8
idtr:
    .word 0
    .quad 0
