# SMP bring-up through the in-kernel LAPIC: the BSP (32-bit protected mode, paging off) copies
# a real-mode trampoline to 0x8000 and sends INIT-SIPI-SIPI (vector 0x08) to each AP in turn;
# each AP runs the trampoline in real mode, increments a counter at 0x7000 with a locked add,
# adds popcnt(0x0f0f) = 8 to a sum at 0x7008, and halts. The BSP reports the AP count it saw on port 0xf8 and exits with 0 (all arrived)
# or 1 (timeout). The test writes the vCPU count at 0x7004.
# qv-guest: mode=prot32 load=0x100000
    .code32
    .include "qv_guest.inc"
    .text
    .globl _start

    .set COUNTER, 0x7000
    .set NCPUS, 0x7004
    .set POPSUM, 0x7008

_start:
    mov NCPUS, %ebx
    movl $0, COUNTER
    movl $0, POPSUM
    START_APS32
wait_all:
    mov %ebx, %edx
    dec %edx                        # APs expected
    mov $2000000, %ecx
1:  mov COUNTER, %eax
    cmp %edx, %eax
    je done
    pause
    loop 1b
done:
    mov COUNTER, %eax
    mov $0xf8, %dx
    out %eax, %dx
    mov POPSUM, %eax
    out %eax, %dx
    mov %ebx, %edx
    dec %edx
    xor %eax, %eax
    cmp %edx, COUNTER
    setne %al
    mov $0xf4, %dx
    out %eax, %dx
2:  hlt
    jmp 2b


    .code16
trampoline:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov $0x0f0f, %ax
    popcnt %ax, %cx                 # an AP's emulation failure is completed on its own thread
    lock addw %cx, POPSUM
    lock incl COUNTER
4:  hlt
    jmp 4b
trampoline_end:
