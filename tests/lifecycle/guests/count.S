# Prints a line, then counts forever: the 64-bit counter at 0x200000 advances only while a
# vCPU runs (the pause tests read it from guest memory).
# qv-guest: mode=long load=0x100000
    .code64
    .include "qv_guest.inc"
    .text
    .globl _start
_start:
    PUTS64 msg
2:  incq 0x200000
    jmp 2b
msg:
    .asciz "counting\n"
