# Long-mode entry (the runner gives identity page tables): print to COM1 and exit.
# qv-guest: mode=long load=0x100000
    .code64
    .include "qv_guest.inc"
    .text
    .globl _start
_start:
    PUTS64 msg
2:  mov %cr0, %rax          # report CR0.PG and EFER.LMA to prove the mode
    shr $31, %rax
    mov $0xf8, %dx
    out %eax, %dx
    mov $0xc0000080, %ecx
    rdmsr
    shr $10, %eax
    and $1, %eax
    mov $0xf8, %dx
    out %eax, %dx
    mov $0xf4, %dx
    mov $7, %eax
    out %eax, %dx
3:  hlt
    jmp 3b
msg:
    .asciz "hello from long mode\n"
