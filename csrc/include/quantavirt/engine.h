/* The KVM engine: one VM (guest RAM, in-kernel irqchip and PIT, a device bus, one thread per
 * vCPU) behind a small handle API that Python drives through cffi.
 *
 * Lifecycle: qv_vm_create -> (load images into guest RAM, qv_vm_set_boot_state) ->
 * qv_vm_start -> qv_vm_wait / qv_vm_stop -> qv_vm_destroy. Every function returns a QV error
 * code (0 = success); the text of the last failure is in qv_vm_error() or, for create, in the
 * caller's buffer. */
#ifndef QUANTAVIRT_ENGINE_H
#define QUANTAVIRT_ENGINE_H

#include "quantavirt/acpi.h" /* PM1a and reset ports, shared with the FADT */
#include <stddef.h>
#include <stdint.h>

#include "quantavirt/boot.h"

struct qv_vm;

/* Guest physical layout: RAM from 0 up to QV_LOWMEM_END, the rest above 4 GiB; the hole
 * [QV_LOWMEM_END, 4 GiB) is MMIO (LAPIC, IOAPIC, PCI windows, the test device). */
#define QV_LOWMEM_END 0xC0000000ULL
/* Pages KVM uses for Intel real-mode support (identity map, then three TSS pages): the e820
 * map must mark [QV_IDENTITY_MAP_ADDR, QV_TSS_ADDR + 0x3000) reserved. */
#define QV_IDENTITY_MAP_ADDR 0xfffbc000ULL
#define QV_TSS_ADDR 0xfffbd000ULL
#define QV_HIGHMEM_START 0x100000000ULL

/* Fixed ports and addresses of the built-in devices. */
#define QV_COM1_PORT 0x3f8
#define QV_COM1_IRQ 4
#define QV_DEBUG_EXIT_PORT 0xf4   /* write: the VM ends with that value as its exit status */
#define QV_RESULT_PORT 0xf8       /* write (1/2/4 bytes): appended to the result list */
#define QV_BOOT_TIMER_PORT 0x440  /* write: timestamp recorded (Firecracker-style boot timer) */
#define QV_TEST_MMIO_BASE 0xd0000000ULL /* test device: 4 KiB scratch registers (test_device) */
#define QV_TEST_MMIO_SIZE 0x1000ULL
/* Boot timer as a 4 KiB MMIO page (a guest's init can reach it with `devmem ADDR 8 1`):
 * outside RAM, the PCI windows and ECAM, below the IOAPIC. Same effect as the port. */
#define QV_BOOT_TIMER_MMIO 0xfeb00000ULL
/* ACPI fixed hardware (the FADT the boot loader writes must name these): PM1a event block
 * (4 bytes), PM1a control block (2 bytes), SLP_TYP of \_S5 (power off), SCI, reset register. */
#define QV_RESET_PORT QV_ACPI_RESET_PORT /* write with bit 2 (RST_CPU): reset */
#define QV_MAX_RESULTS 64
#define QV_MAX_VCPUS 256

/* Why the VM stopped. */
enum qv_exit_reason {
    QV_EXIT_NONE = 0,       /* still running */
    QV_EXIT_DEBUG = 1,      /* the guest wrote the debug-exit port; status = the value */
    QV_EXIT_POWEROFF = 2,   /* guest power-off (ACPI / KVM system event); status = 0 */
    QV_EXIT_RESET = 3,      /* guest reset (i8042 pulse, KVM system event) */
    QV_EXIT_STOPPED = 4,    /* qv_vm_stop from the host */
    QV_EXIT_ERROR = 5,      /* a failure: error holds the QV code, qv_vm_error() the text */
};

struct qv_vm_config {
    const char *kvm_path;       /* NULL: "/dev/kvm" */
    uint64_t mem_size;          /* bytes, a multiple of 4 KiB (and of the hugepage size) */
    uint32_t hugepage_kb;       /* 0 (normal pages), 2048 or 1048576 */
    int prealloc;               /* populate every page before any vCPU runs */
    int numa_node;              /* -1: no binding; else mbind(MPOL_BIND) to this node */
    uint32_t vcpus;             /* 1..QV_MAX_VCPUS (and the host's KVM_CAP_MAX_VCPUS) */
    int console_fd;             /* serial output goes here; -1: none. Give an O_NONBLOCK fd:
                                 * bytes it cannot take are dropped (and counted) rather than
                                 * stalling the vCPU. */
    const char *console_log;    /* NULL or a file that receives a copy of serial output */
    const char *log_path;       /* NULL or the VM log (register dumps, fallback notes) */
    int test_device;            /* register the scratch MMIO test device */
    int emulation_fallback;     /* complete instructions the backend cannot emulate */
    /* CPUID (csrc/cpuid): model NULL or "host", "+flag"/"-flag" overrides, topology
     * (0 = 1 socket x vcpus cores x 1 thread). APIC ids follow the topology. */
    const char *cpu_model;
    const char *const *cpu_features;
    size_t n_cpu_features;
    uint32_t sockets, cores, threads;
    /* cpu.pin: NULL, or `vcpus` entries: the host CPU vCPU i's thread is bound to
     * (sched_setaffinity), -1 = not pinned. Checked against the host's online CPUs. */
    const int32_t *vcpu_pin;
    /* memory.max_size: 0 or mem_size = no hot-add room; larger reserves the guest-physical
     * range above RAM (qv_layout_set_hotplug) and as much host address space (PROT_NONE,
     * MAP_NORESERVE: no memory is committed). */
    uint64_t max_mem_size;
};

struct qv_vm_exit {
    int32_t reason;             /* enum qv_exit_reason */
    int32_t error;              /* QV code when reason == QV_EXIT_ERROR, else 0 */
    int64_t status;             /* debug-exit value */
};

/* Counters: exits by KVM exit reason, fallback completions by instruction. */
#define QV_STAT_EXIT_KINDS 64
#define QV_STAT_INSN_KINDS 16
struct qv_vm_stats {
    uint64_t exits_total;
    uint64_t exits_by_reason[QV_STAT_EXIT_KINDS];  /* index: KVM_EXIT_* */
    uint64_t pio_exits;
    uint64_t mmio_exits;
    uint64_t unhandled_pio;
    uint64_t unhandled_mmio;
    uint64_t run_eagain;                           /* KVM_RUN EAGAIN retries (AP after SIPI) */
    uint64_t completed_insns;                      /* total instructions the VMM completed */
    uint64_t completed_by_kind[QV_STAT_INSN_KINDS];/* index: enum qv_insn_kind */
    uint64_t console_bytes;
    uint64_t console_dropped;                      /* bytes the console fd could not take */
    uint64_t boot_timer_ns;                        /* first boot-timer write, since start */
    uint32_t boot_timer_value;
    uint32_t nresults;
    uint32_t results[QV_MAX_RESULTS];
};

/* Instructions the completion fallback handles (stats index and names). */
enum qv_insn_kind {
    QV_INSN_INT3 = 0, QV_INSN_CLAC, QV_INSN_STAC, QV_INSN_POPCNT, QV_INSN_FWAIT,
    QV_INSN_LDMXCSR, QV_INSN_STMXCSR, QV_INSN_FXSAVE, QV_INSN_FXRSTOR, QV_INSN_CMPXCHG16B,
    QV_INSN_XGETBV, QV_INSN_KIND_COUNT
};
const char *qv_insn_kind_name(int kind);

int qv_vm_create(const struct qv_vm_config *cfg, struct qv_vm **out, char *err, size_t errlen);
/* Copy bytes into guest RAM at a guest-physical address (bounds checked). */
int qv_vm_write_phys(struct qv_vm *vm, uint64_t gpa, const void *data, size_t len);
int qv_vm_read_phys(struct qv_vm *vm, uint64_t gpa, void *data, size_t len);
/* Host pointer to guest RAM at gpa, valid for len bytes, or NULL (for loaders). */
void *qv_vm_phys_ptr(struct qv_vm *vm, uint64_t gpa, size_t len);
uint64_t qv_vm_mem_size(const struct qv_vm *vm);
/* Initial state of vCPU 0; the other vCPUs wait for INIT-SIPI-SIPI from it. */
int qv_vm_set_boot_state(struct qv_vm *vm, const struct qv_boot_cpu_state *state);
/* Direct Linux boot (csrc/kvm/linux_boot.c): memory layout, ACPI tables for every vCPU, the
 * kernel (bzImage with the 64-bit entry, or an ELF vmlinux through its PVH note), the initrd
 * (NULL: none) and the command line, and vCPU 0's entry state. Errors name the config path
 * in err ("boot.kernel: ..."): QV_ERR_NOENT, QV_ERR_INVAL (neither format), QV_ERR_NOMEM. */
int qv_vm_load_linux(struct qv_vm *vm, const char *kernel, const char *initrd,
                     const char *cmdline, char *err, size_t errlen);
int qv_vm_start(struct qv_vm *vm);
/* Start with every vCPU thread parked before its first KVM_RUN (thread ids known, affinity
 * applied) and wait up to timeout_ms until all are; the guest runs after qv_vm_resume
 * (vm_control.h). For work on the vCPU threads before any guest code runs (cgroups). */
int qv_vm_start_parked(struct qv_vm *vm, int timeout_ms);
/* Wait for the VM to stop: 0 with *exit filled, QV_ERR_TIMEOUT if still running after
 * timeout_ms (< 0: wait forever). */
int qv_vm_wait(struct qv_vm *vm, int timeout_ms, struct qv_vm_exit *exit_out);
/* Ask every vCPU to stop (returns at once; qv_vm_wait reports QV_EXIT_STOPPED). */
int qv_vm_stop(struct qv_vm *vm);
/* Bytes typed into the serial console (raise the UART's receive interrupt). */
int qv_vm_console_input(struct qv_vm *vm, const uint8_t *data, size_t len);
int qv_vm_get_stats(struct qv_vm *vm, struct qv_vm_stats *stats);
/* The reserved hot-add range (guest-physical base and size; both 0 without max_size). */
int qv_vm_hotplug_range(const struct qv_vm *vm, uint64_t *gpa, uint64_t *size);
/* The host's online CPUs (/sys/devices/system/cpu/online) as a bitmap of `nbits` bits:
 * returns the number of online CPUs found, or a negative QV code. */
int qv_host_online_cpus(uint8_t *bitmap, size_t nbits);
/* Text of the last failure ("" if none). */
const char *qv_vm_error(struct qv_vm *vm);
/* Stop, join every thread, close every fd, unmap guest RAM. NULL-safe. */
void qv_vm_destroy(struct qv_vm *vm);

#endif
