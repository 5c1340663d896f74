/* Private state of a VM and its vCPUs, shared by the files in csrc/kvm. */
#ifndef QV_KVM_VM_INTERNAL_H
#define QV_KVM_VM_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/bus.h"
#include "devices/devices.h"
#include "quantavirt/cpuid.h"
#include "quantavirt/engine.h"
#include "quantavirt/vm_devices.h"

struct qv_vcpu {
    struct qv_vm *vm;
    uint32_t id;                  /* index in vm->vcpus */
    uint32_t apic_id;             /* KVM vCPU id = APIC id (from the topology) */
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool thread_started;
    /* Counters written only by this vCPU's thread; read racily for stats. */
    _Atomic uint64_t exits_by_reason[QV_STAT_EXIT_KINDS];
    _Atomic uint64_t pio_exits, mmio_exits, unhandled_pio, unhandled_mmio, run_eagain;
    _Atomic uint64_t completed_by_kind[QV_STAT_INSN_KINDS];
    _Atomic int tid;              /* the thread's kernel id once it runs (CPU time stats) */
};

/* Interrupts KVM_RUN: blocked in vCPU threads except inside KVM_RUN (vcpu.c). */
#define QV_KICK_SIGNAL (SIGRTMIN + 4)

enum qv_vm_state { QV_VM_CREATED = 0, QV_VM_RUNNING = 1, QV_VM_ENDED = 2 };

struct qv_vm {
    int kvm_fd;
    int vm_fd;
    size_t run_size;
    struct qv_vm_config cfg;
    /* Guest RAM: one mapping, [0, low_size) at GPA 0 and the rest at 4 GiB. */
    uint8_t *ram;
    uint64_t ram_size;
    uint64_t low_size;
    uint64_t map_size;
    /* Hot-add room (memory.max_size): reserved host address space, no slot yet. */
    uint8_t *hotplug_res;
    uint64_t hotplug_gpa, hotplug_size;
    int32_t *pin;                 /* per vCPU: host CPU or -1 (NULL: nothing pinned) */
    struct qv_bus bus;
    struct qv_vcpu *vcpus;
    uint32_t nvcpus;
    struct qv_cpuid_entry *cpuid_supported; /* KVM_GET_SUPPORTED_CPUID */
    size_t n_cpuid_supported;
    struct qv_cpuid_config cpuid_cfg;       /* owned copies of model and flags */
    uint32_t *apic_ids;                     /* per vCPU index */
    struct qv_boot_cpu_state boot;
    bool boot_set;
    struct qv_serial *serial;
    struct qv_i8042 *i8042;
    struct qv_rtc *rtc;
    struct qv_debugdev *debugdev;
    struct qv_acpi_pm *acpi_pm;
    struct qv_vm_pci *pcidev;     /* PCI host bridge and virtio functions (pci_devices.c) */
    int console_log_fd;
    FILE *log;
    uint32_t mxcsr_mask;          /* host FXSAVE MXCSR_MASK, for the fallback's FXSAVE */

    pthread_mutex_t lock;         /* state, exit, running count, error text, log */
    pthread_cond_t cond;
    enum qv_vm_state state;
    atomic_bool stopping;
    uint32_t running;
    struct qv_vm_exit exit;
    bool exit_set;
    char error[4096];
    /* pause.c: vCPUs park (under `lock`, waiting on `cond`) while pause_requested is set. */
    atomic_bool pause_requested;
    uint32_t parked;
};

/* The first call wins: record why the VM ends and kick every vCPU out of KVM_RUN. */
void qv_vm_request_exit(struct qv_vm *vm, int reason, int error, int64_t status,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Write one line to the VM log (if any) as "[LEVEL] quantavirt::kvm: ...". */
void qv_vm_log(struct qv_vm *vm, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Host pointer to [gpa, gpa+len) when entirely inside one RAM region, else NULL. */
uint8_t *qv_vm_gpa_ptr(struct qv_vm *vm, uint64_t gpa, uint64_t len);

/* The PC interrupt wiring as GSI routes (vm.c): the 8259 pair and the IOAPIC pins. Fills at
 * most QV_VM_BASE_ROUTES entries and returns the count; pci_devices.c adds MSI routes after
 * them (KVM_SET_GSI_ROUTING replaces the whole table). */
#define QV_VM_IOAPIC_PINS 24
#define QV_VM_BASE_ROUTES (16 + QV_VM_IOAPIC_PINS)
uint32_t qv_vm_base_routes(struct kvm_irq_routing_entry *e);

/* pci_devices.c: the host bridge and virtio functions; start runs the I/O thread (if any
 * device uses ioeventfds), destroy joins it and frees everything (after the vCPUs stopped). */
int qv_pci_devices_init(struct qv_vm *vm, char *err, size_t errlen);
int qv_pci_devices_start(struct qv_vm *vm);
void qv_pci_devices_destroy(struct qv_vm *vm);
/* Typed console input for a virtio-console, if the VM has one. */
bool qv_pci_console_input(struct qv_vm *vm, const uint8_t *data, size_t len);

/* memory.c */
int qv_memory_alloc(struct qv_vm *vm, char *err, size_t errlen);
int qv_memory_register(struct qv_vm *vm, char *err, size_t errlen);
void qv_memory_free(struct qv_vm *vm);

/* affinity.c: cpu.pin checked against the host (create) and applied per vCPU thread. */
int qv_affinity_init(struct qv_vm *vm, const struct qv_vm_config *cfg, char *err, size_t errlen);
/* Bind the calling vCPU thread; 0 or a QV code with the reason in err. */
int qv_affinity_apply(struct qv_vcpu *vcpu, char *err, size_t errlen);
void qv_affinity_free(struct qv_vm *vm);

/* memory.c: refuse a hot-add range beyond the guest's physical address width. */
int qv_memory_check_phys_bits(struct qv_vm *vm, char *err, size_t errlen);

/* cpuid.c */
int qv_cpuid_init(struct qv_vm *vm, const struct qv_vm_config *cfg, char *err, size_t errlen);
int qv_cpuid_apply(struct qv_vm *vm, struct qv_vcpu *vcpu, char *err, size_t errlen);
void qv_cpuid_free(struct qv_vm *vm);

/* vcpu.c */
int qv_vcpu_create(struct qv_vm *vm, uint32_t id, char *err, size_t errlen);
int qv_vcpu_apply_boot_state(struct qv_vcpu *vcpu, const struct qv_boot_cpu_state *st);
int qv_vcpu_start(struct qv_vcpu *vcpu);
void qv_vcpu_kick(struct qv_vcpu *vcpu);
void qv_vcpu_join(struct qv_vcpu *vcpu);
void qv_vcpu_close(struct qv_vcpu *vcpu);
/* Format the vCPU's registers into buf (for error reports). */
void qv_vcpu_dump_regs(struct qv_vcpu *vcpu, char *buf, size_t len);

/* emulate.c: complete the instruction of a KVM_INTERNAL_ERROR_EMULATION exit. 0 when done
 * (RIP advanced, state written back); QV_ERR_GUEST with `why` filled otherwise. */
int qv_emulate_complete(struct qv_vcpu *vcpu, char *why, size_t whylen);
uint32_t qv_emulate_host_mxcsr_mask(void);

/* pause.c: called by each vCPU thread before every KVM_RUN; parks the thread while the VM
 * is paused and consumes kicks left pending by a pause. */
void qv_vcpu_maybe_park(struct qv_vcpu *vcpu);

#endif
