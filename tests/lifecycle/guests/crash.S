# Prints a line, loads an empty IDT and executes an undefined instruction: #UD cannot be
# delivered, so the vCPU triple-faults (or the backend reports what it cannot emulate).
# qv-guest: mode=long load=0x100000
    .code64
    .include "qv_guest.inc"
    .text
    .globl _start
_start:
    PUTS64 msg
2:  lidt idtr(%rip)
    ud2
3:  jmp 3b
msg:
    .asciz "crashing\n"
    .balign 8
idtr:
    .word 0
    .quad 0
