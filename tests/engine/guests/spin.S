# Prints a line and then spins forever (for timeouts and stop).
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
2:  pause
    jmp 2b
msg:
    .asciz "spinning\n"
