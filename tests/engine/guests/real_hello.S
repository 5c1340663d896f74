# Real-mode entry: print to COM1, report a result, exit through the debug-exit port.
# qv-guest: mode=real load=0x10000
    .code16
    .text
    .globl _start
_start:
    mov %cs, %ax
    mov %ax, %ds
    lea msg, %si
1:  lodsb
    test %al, %al
    jz 2f
    mov $0x3f8, %dx
    out %al, %dx
    jmp 1b
2:  mov $0xf8, %dx
    mov $0x12345678, %eax
    out %eax, %dx
    mov $0xf4, %dx
    mov $42, %al
    out %al, %dx
3:  hlt
    jmp 3b
msg:
    .asciz "hello from real mode\n"
