# Every vCPU busy: the BSP (32-bit protected mode) starts each AP with INIT-SIPI-SIPI; each AP
# counts itself in at 0x7000 and spins; the BSP reports the AP count on port 0xf8 once all
# arrived and spins too. The host then inspects the running vCPU threads (affinity, cgroups)
# and stops the VM. The test writes the vCPU count at 0x7004.
# qv-guest: mode=prot32 load=0x100000
    .code32
    .include "qv_guest.inc"
    .text
    .globl _start

    .set COUNTER, 0x7000
    .set NCPUS, 0x7004

_start:
    mov NCPUS, %ebx
    movl $0, COUNTER
    START_APS32
wait_all:
    mov %ebx, %edx
    dec %edx                        # APs expected
1:  mov COUNTER, %eax
    cmp %edx, %eax
    je report
    pause
    jmp 1b
report:
    mov $0xf8, %dx
    out %eax, %dx
2:  pause
    jmp 2b


    .code16
trampoline:
    cli
    xor %ax, %ax
    mov %ax, %ds
    lock incl COUNTER
4:  pause
    jmp 4b
trampoline_end:
