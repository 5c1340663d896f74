# Prints a line and then spins forever (for timeouts and stop).
# qv-guest: mode=long load=0x100000
    .code64
    .include "qv_guest.inc"
    .text
    .globl _start
_start:
    PUTS64 msg
2:  pause
    jmp 2b
msg:
    .asciz "spinning\n"
