# Port and MMIO exits to the device bus: the MMIO test device (ID, scratch register, a byte
# write inside a dword), unclaimed MMIO and ports (all ones), the CMOS RTC, the 8250's scratch
# and loopback registers, serial input typed by the host, then a reset through the i8042.
# qv-guest: mode=long load=0x100000
    .code64
    .include "qv_guest.inc"
    .text
    .globl _start

.macro CMOS reg
    mov $\reg, %al
    out %al, $0x70
    in $0x71, %al
    movzbl %al, %eax
.endm

    .set TESTDEV, 0xd0000000
    .set COM1, 0x3f8

_start:
    mov $TESTDEV, %rbx
    mov (%rbx), %eax
    REPORT %eax                     # 0x44545651 "QVTD"
    movl $0x11223344, 0x10(%rbx)
    mov 0x10(%rbx), %eax
    REPORT %eax                     # 0x11223344
    movb $0xaa, 0x11(%rbx)
    mov 0x10(%rbx), %eax
    REPORT %eax                     # 0x1122aa44
    mov $0xd8000000, %rbx
    mov (%rbx), %eax
    REPORT %eax                     # 0xffffffff: nobody claims it
    mov $0x510, %dx
    in %dx, %eax
    REPORT %eax                     # 0xffffffff: unclaimed port

    CMOS 0x0b
    REPORT %eax                     # 0x02: 24 h, BCD
    CMOS 0x0d
    REPORT %eax                     # 0x80: valid RAM and time
    CMOS 0x32
    REPORT %eax                     # 0x20: century, BCD

    mov $COM1+7, %dx
    mov $0x5a, %al
    out %al, %dx
    in %dx, %al
    movzbl %al, %eax
    REPORT %eax                     # 0x5a: scratch register
    mov $COM1+4, %dx
    mov $0x1a, %al                  # loopback | RTS | OUT2
    out %al, %dx
    mov $COM1+6, %dx
    in %dx, %al
    and $0xf0, %eax
    movzbl %al, %eax
    REPORT %eax                     # 0x90: CTS | DCD looped back
    mov $COM1+4, %dx
    mov $0x03, %al
    out %al, %dx

    # Read the bytes the host typed (polling LSR.DR), until a newline.
1:  mov $COM1+5, %dx
    in %dx, %al
    test $1, %al
    jz 1b
    mov $COM1, %dx
    in %dx, %al
    movzbl %al, %eax
    REPORT %eax
    cmp $10, %al
    jne 1b

    mov $0xfe, %al
    out %al, $0x64                  # pulse the reset line
2:  hlt
    jmp 2b
