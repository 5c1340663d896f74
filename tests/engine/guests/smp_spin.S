# Every vCPU busy: the BSP (32-bit protected mode) starts each AP with INIT-SIPI-SIPI; each AP
# counts itself in at 0x7000 and spins; the BSP reports the AP count on port 0xf8 once all
# arrived and spins too. The host then inspects the running vCPU threads (affinity, cgroups)
# and stops the VM. The test writes the vCPU count at 0x7004.
# qv-guest: mode=prot32 load=0x100000
    .code32
    .text
    .globl _start

    .set LAPIC, 0xfee00000
    .set ICR_LO, LAPIC + 0x300
    .set ICR_HI, LAPIC + 0x310
    .set SVR, LAPIC + 0xf0
    .set COUNTER, 0x7000
    .set NCPUS, 0x7004

_start:
    mov NCPUS, %ebx
    movl $0, COUNTER
    mov $trampoline, %esi
    mov $0x8000, %edi
    mov $trampoline_end - trampoline, %ecx
    cld
    rep movsb
    movl $0x1ff, SVR                # software-enable the LAPIC, spurious vector 0xff
    mov $1, %ebp                    # APIC ID of the next AP
next_ap:
    cmp %ebx, %ebp
    jae wait_all
    mov %ebp, %eax
    shl $24, %eax
    mov %eax, ICR_HI
    movl $0x00004500, ICR_LO        # INIT
    call delay
    mov %ebp, %eax
    shl $24, %eax
    mov %eax, ICR_HI
    movl $0x00004608, ICR_LO        # SIPI, vector 0x08 -> 0x8000
    call delay
    inc %ebp
    jmp next_ap
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

delay:
    mov $2000, %ecx
3:  loop 3b
    ret

    .code16
trampoline:
    cli
    xor %ax, %ax
    mov %ax, %ds
    lock incl COUNTER
4:  pause
    jmp 4b
trampoline_end:
