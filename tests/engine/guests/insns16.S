# The completion fallback in real mode: 16-bit ModRM addressing (bx+si+disp8, bp+disp16 with
# its SS default, direct disp16), the 0x66/0x67 prefixes, int3 through the IVT, and the
# CS-relative RIP arithmetic. Results on port 0xf8, debug exit 0 at the end.
# qv-guest: mode=real load=0x10000
    .code16
    .include "qv_guest.inc"
    .text
    .globl _start

_start:
    cli
    mov %cs, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0xfff0, %sp
    # IVT vector 3 -> bp_handler (segment = CS)
    xor %ax, %ax
    mov %ax, %es
    movw $bp_handler, %es:12
    mov %cs, %ax
    mov %ax, %es:14
    mov %ax, %es

    # int3: handler counts in %di and records the return IP in %bp
    xor %di, %di
    int3
after_int3:
    REPORT16 %edi                               # 1
    xor %eax, %eax
    cmp $after_int3, %bp
    sete %al
    REPORT16 %eax                               # 1

    # popcnt r16, r/m16 with 16-bit addressing
    mov $0xf00f, %ax
    popcnt %ax, %cx
    movzx %cx, %ecx
    REPORT16 %ecx                               # 8
    mov $data, %bx
    mov $2, %si
    popcnt 2(%bx,%si), %dx                    # data+4: 0x0707 -> 6
    movzx %dx, %edx
    REPORT16 %edx                               # 6
    popcnt data, %ax                          # direct disp16: 0x0001 -> 1
    movzx %ax, %eax
    REPORT16 %eax                               # 1
    # bp-based: the default segment is SS (= DS here), disp16
    mov $data, %bp
    popcnt 0x100(%bp), %ax                    # data+0x100: 0x00ff -> 8 ... via SS
    movzx %ax, %eax
    REPORT16 %eax                               # 8
    # operand-size prefix: 32-bit popcnt in real mode
    mov $0xffff0000, %eax
    popcnt %eax, %ebx
    REPORT16 %ebx                               # 16
    # address-size prefix: 32-bit addressing with SIB in real mode
    xor %ecx, %ecx
    mov $data, %esi
    popcnt 6(%esi,%ecx,4), %eax               # dword at data+6: 0x00008001 -> 2
    movzx %ax, %eax
    REPORT16 %eax                               # 2

    # stac/clac are valid at CPL 0 in real mode
    stac
    pushfl
    popl %eax
    shr $18, %eax
    and $1, %eax
    REPORT16 %eax                               # 1
    clac
    pushfl
    popl %eax
    shr $18, %eax
    and $1, %eax
    REPORT16 %eax                               # 0

    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
1:  hlt
    jmp 1b

bp_handler:
    inc %di
    mov %sp, %bx
    mov (%bx), %bp                            # the IP the int3 pushed
    iret

    .balign 16
data:
    .word 0x0001, 0x0000, 0x0707, 0x8001
    .fill 0x100 - 8, 1, 0
    .word 0x00ff
