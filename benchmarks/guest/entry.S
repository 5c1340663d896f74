/* Entry of the I/O benchmark guest (blk_bench_guest.c): a PVH ELF (XEN_ELFNOTE_PHYS32_ENTRY),
 * so QuantaVirt (boot.kernel) and QEMU (-kernel) both start it the same way, in 32-bit flat
 * protected mode with %ebx = hvm_start_info. It identity-maps the first 4 GiB with 2 MiB
 * pages, enters long mode and calls guest_main(start_info); the return value goes to the
 * debug-exit port 0xf4. */
    .section .note.pvh, "a", @note
    .balign 4
    .long 4              /* name size */
    .long 8              /* descriptor size (a pointer, as Linux writes it) */
    .long 18             /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad entry32

    .section .text.start, "ax"
    .code32
    .globl entry32
entry32:
    cli
    mov %ebx, start_info
    /* 2048 page-directory entries: 4 GiB identity map, 2 MiB pages (P|RW|PS) */
    mov $pd, %edi
    xor %eax, %eax
    mov $2048, %ecx
1:  mov %eax, %edx
    or $0x83, %edx
    mov %edx, (%edi)
    movl $0, 4(%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b
    /* 4 PDPT entries, one per page directory */
    mov $pdpt, %edi
    mov $pd + 3, %eax
    mov $4, %ecx
2:  mov %eax, (%edi)
    movl $0, 4(%edi)
    add $4096, %eax
    add $8, %edi
    loop 2b
    mov $pdpt + 3, %eax
    mov %eax, pml4
    movl $0, pml4 + 4
    mov %cr4, %eax
    or $0x20, %eax           /* PAE */
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx    /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax     /* PG | PE */
    mov %eax, %cr0
    lgdt gdt_ptr
    ljmp $0x08, $entry64

    .code64
entry64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    lea stack_top(%rip), %rsp
    mov start_info(%rip), %edi
    call guest_main
    outl %eax, $0xf4
3:  hlt
    jmp 3b

    .section .data
    .balign 16
gdt:
    .quad 0
    .quad 0x00af9a000000ffff /* 64-bit code */
    .quad 0x00cf92000000ffff /* data */
gdt_ptr:
    .word gdt_ptr - gdt - 1
    .long gdt
start_info:
    .long 0

    .section .bss
    .balign 4096
pml4:
    .skip 4096
pdpt:
    .skip 4096
pd:
    .skip 4096 * 4
    .balign 16
    .skip 65536
stack_top:
