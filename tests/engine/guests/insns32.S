# The completion fallback in 32-bit protected mode (paging off): int3 through a 32-bit IDT,
# popcnt with SIB addressing, ldmxcsr/stmxcsr, and the 32-bit (non-REX) FXSAVE/FXRSTOR format
# through their SIB forms. Results on port 0xf8, debug exit 0 at the end.
# qv-guest: mode=prot32 load=0x100000
    .code32
    .include "qv_guest.inc"
    .text
    .globl _start

_start:
    # IDT gate 3 -> bp_handler (32-bit interrupt gate, selector 0x18 = the runner's code32)
    mov $bp_handler, %eax
    mov $idt+3*8, %edi
    mov %ax, (%edi)
    movw $0x18, 2(%edi)
    movw $0x8e00, 4(%edi)
    shr $16, %eax
    mov %ax, 6(%edi)
    lidt idtr
    mov %cr4, %eax
    or $0x600, %eax
    mov %eax, %cr4

    xor %edi, %edi
    int3
after_int3:
    REPORT32 %edi                               # 1
    xor %eax, %eax
    cmp $after_int3, %ebp
    sete %al
    REPORT32 %eax                               # 1

    mov $table, %esi
    mov $2, %ecx
    popcnt (%esi,%ecx,4), %eax                # table[2] = 0xff00ff00 -> 16
    REPORT32 %eax                               # 16
    popcnt table+4, %ebx                      # disp32 only: 0x7 -> 3
    REPORT32 %ebx                               # 3

    movl $0x3f80, mx
    ldmxcsr mx
    stmxcsr mx2
    REPORT32 mx2                                # 0x3f80

    # FXRSTOR an image with MXCSR = 0x1f00 | masks and XMM7 = pattern, FXSAVE it back.
    movl $0x1f80, fx_in+24
    movl $0x0badf00d, fx_in+160+7*16
    xor %ecx, %ecx
    fxrstor fx_in(,%ecx,1)
    fxsave fx_out(,%ecx,8)
    REPORT32 fx_out+24                          # 0x1f80
    REPORT32 fx_out+160+7*16                    # 0x0badf00d

    fwait
    mov $0x9b, %eax
    REPORT32 %eax                               # 0x9b

    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
1:  hlt
    jmp 1b

bp_handler:
    # Return by hand: kvm_pvm cannot execute a 32-bit IRET (it ends KVM_RUN with an emulation
    # failure on "cf"); same privilege and flat segments make pop + popf + jmp equivalent.
    inc %edi
    pop %ebp                                  # EIP pushed by the trap
    add $4, %esp                              # CS
    popf
    jmp *%ebp

    .balign 8
idtr:
    .word 256*8-1
    .long idt
table:
    .long 0, 7, 0xff00ff00
mx: .long 0
mx2: .long 0
    .balign 16
fx_in:
    .fill 512, 1, 0
fx_out:
    .fill 512, 1, 0
idt:
    .fill 256*8, 1, 0
