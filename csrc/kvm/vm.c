/* VM lifecycle: /dev/kvm, the VM fd, TSS and identity-map pages, in-kernel irqchip and PIT,
 * guest RAM, devices, vCPUs; start, wait, stop, teardown. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kvm/vm_internal.h"
#include "quantavirt/errors.h"


static const char *const insn_names[QV_INSN_KIND_COUNT] = {
    "int3", "clac", "stac", "popcnt", "fwait", "ldmxcsr", "stmxcsr", "fxsave", "fxrstor",
    "cmpxchg16b", "xgetbv"};

const char *qv_insn_kind_name(int kind)
{
    return kind >= 0 && kind < QV_INSN_KIND_COUNT ? insn_names[kind] : "";
}

void qv_vm_log(struct qv_vm *vm, const char *level, const char *fmt, ...)
{
    if (!vm->log)
        return;
    pthread_mutex_lock(&vm->lock);
    fprintf(vm->log, "[%s] quantavirt::kvm: ", level);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(vm->log, fmt, ap);
    va_end(ap);
    fputc('\n', vm->log);
    fflush(vm->log);
    pthread_mutex_unlock(&vm->lock);
}

void qv_vm_request_exit(struct qv_vm *vm, int reason, int error, int64_t status,
                        const char *fmt, ...)
{
    pthread_mutex_lock(&vm->lock);
    if (!vm->exit_set) {
        vm->exit_set = true;
        vm->exit.reason = reason;
        vm->exit.error = error;
        vm->exit.status = status;
        if (reason == QV_EXIT_ERROR) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(vm->error, sizeof(vm->error), fmt, ap);
            va_end(ap);
        }
    }
    atomic_store(&vm->stopping, true);
    pthread_cond_broadcast(&vm->cond); /* wakes parked (paused) vCPUs too */
    /* Kick under the lock that qv_vm_start holds while it creates each thread: a vCPU is
     * either already marked started (and gets the signal) or starts after `stopping`. */
    for (uint32_t i = 0; i < vm->nvcpus; i++)
        qv_vcpu_kick(&vm->vcpus[i]);
    pthread_mutex_unlock(&vm->lock);
}

static void device_exit(void *ctx, int reason, int64_t status)
{
    qv_vm_request_exit(ctx, reason, 0, status, "device exit");
}

static void irq_line(void *ctx, uint32_t irq, int level)
{
    struct qv_vm *vm = ctx;
    struct kvm_irq_level l = {.irq = irq, .level = (uint32_t)level};
    ioctl(vm->vm_fd, KVM_IRQ_LINE, &l);
}

static int open_kvm(struct qv_vm *vm, const char *kvm_path, char *err, size_t errlen)
{
    const char *path = kvm_path ? kvm_path : "/dev/kvm";
    vm->kvm_fd = open(path, O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            snprintf(err, errlen, "%s: %s; run as root or add the user to the group owning the "
                     "device (usually 'kvm')", path, strerror(e));
        else
            snprintf(err, errlen, "%s: %s; load the KVM module (modprobe kvm_intel or kvm_amd) "
                     "and enable virtualization (VT-x/AMD-V) in the firmware", path, strerror(e));
        return QV_ERR_NOVMX;
    }
    int ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (ver != KVM_API_VERSION) {
        snprintf(err, errlen, "%s: KVM API version %d, need %d", path, ver, KVM_API_VERSION);
        return QV_ERR_NOVMX;
    }
    static const struct { int cap; const char *name; } need[] = {
        {KVM_CAP_USER_MEMORY, "USER_MEMORY"}, {KVM_CAP_IRQCHIP, "IRQCHIP"},
        {KVM_CAP_PIT2, "PIT2"}, {KVM_CAP_EXT_CPUID, "EXT_CPUID"},
        {KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR"}};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
            snprintf(err, errlen, "%s: KVM lacks the required capability %s", path, need[i].name);
            return QV_ERR_NODEV;
        }
    }
    int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max <= 0)
        max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    if (max <= 0)
        max = 4;
    if (vm->cfg.vcpus == 0 || vm->cfg.vcpus > QV_MAX_VCPUS || vm->cfg.vcpus > (uint32_t)max) {
        snprintf(err, errlen, "cpu.count: %" PRIu32 " vCPUs; this host's KVM allows 1 to %d",
                 vm->cfg.vcpus, max < QV_MAX_VCPUS ? max : QV_MAX_VCPUS);
        return QV_ERR_INVAL;
    }
    int rs = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (rs < (int)sizeof(struct kvm_run)) {
        snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
        return QV_ERR_KVM;
    }
    vm->run_size = (size_t)rs;
    return QV_SUCCESS;
}

/* PC interrupt wiring, as the ACPI MADT describes it: ISA IRQ 0 (the PIT) reaches IOAPIC
 * pin 2 (the MADT's IRQ0 -> GSI 2 override), every other GSI its own pin; GSIs 0-15 also
 * reach the 8259 pair (2 is the cascade). KVM's default table sends GSI 0 to pin 0, where a
 * guest that trusts the MADT never looks (Linux then falls back to ExtINT, or panics with
 * "IO-APIC + timer doesn't work"). */
uint32_t qv_vm_base_routes(struct kvm_irq_routing_entry *e)
{
    uint32_t n = 0;
    for (uint32_t gsi = 0; gsi < 16; gsi++) {
        if (gsi == 2)
            continue;
        memset(&e[n], 0, sizeof(e[n]));
        e[n].gsi = gsi;
        e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
        e[n].u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
        e[n].u.irqchip.pin = gsi % 8;
        n++;
    }
    for (uint32_t gsi = 0; gsi < QV_VM_IOAPIC_PINS; gsi++) {
        if (gsi == 2)
            continue;
        memset(&e[n], 0, sizeof(e[n]));
        e[n].gsi = gsi;
        e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
        e[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
        e[n].u.irqchip.pin = gsi == 0 ? 2 : gsi;
        n++;
    }
    return n;
}

static int set_gsi_routing(struct qv_vm *vm, char *err, size_t errlen)
{
    struct {
        struct kvm_irq_routing r;
        struct kvm_irq_routing_entry e[QV_VM_BASE_ROUTES];
    } t;
    memset(&t, 0, sizeof(t));
    t.r.nr = qv_vm_base_routes(t.e);
    if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, &t.r) != 0) {
        snprintf(err, errlen, "KVM_SET_GSI_ROUTING: %s", strerror(errno));
        return QV_ERR_KVM;
    }
    return QV_SUCCESS;
}

static int create_vm_fd(struct qv_vm *vm, char *err, size_t errlen)
{
    int rc;
    do {
        vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0UL);
    } while (vm->vm_fd < 0 && errno == EINTR);
    if (vm->vm_fd < 0) {
        snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
        return QV_ERR_KVM;
    }
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)QV_TSS_ADDR) != 0) {
        snprintf(err, errlen, "KVM_SET_TSS_ADDR: %s", strerror(errno));
        return QV_ERR_KVM;
    }
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
        uint64_t addr = QV_IDENTITY_MAP_ADDR;
        if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &addr) != 0) {
            snprintf(err, errlen, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
            return QV_ERR_KVM;
        }
    }
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) != 0) {
        snprintf(err, errlen, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
        return QV_ERR_KVM;
    }
    if ((rc = set_gsi_routing(vm, err, errlen)))
        return rc;
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) != 0) {
        snprintf(err, errlen, "KVM_CREATE_PIT2: %s", strerror(errno));
        return QV_ERR_KVM;
    }
    return QV_SUCCESS;
}

static int create_devices(struct qv_vm *vm, char *err, size_t errlen)
{
    int rc = qv_serial_create(&vm->bus, QV_COM1_PORT, QV_COM1_IRQ, irq_line, vm,
                              vm->cfg.console_fd, vm->console_log_fd, &vm->serial);
    if (!rc)
        rc = qv_i8042_create(&vm->bus, device_exit, vm, &vm->i8042);
    if (!rc)
        rc = qv_rtc_create(&vm->bus, vm->ram_size, &vm->rtc);
    if (!rc)
        rc = qv_acpi_pm_create(&vm->bus, device_exit, vm, &vm->acpi_pm);
    if (!rc)
        rc = qv_debugdev_create(&vm->bus, vm->cfg.test_device, device_exit, vm, &vm->debugdev);
    if (rc) {
        snprintf(err, errlen, "creating the legacy devices failed: %s", qv_strerror(rc));
        return rc;
    }
    return qv_pci_devices_init(vm, err, errlen);
}

int qv_vm_create(const struct qv_vm_config *cfg, struct qv_vm **out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (!cfg || !out) {
        snprintf(err, errlen, "no configuration");
        return QV_ERR_INVAL;
    }
    *out = NULL;
    struct qv_vm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        snprintf(err, errlen, "out of memory");
        return QV_ERR_NOMEM;
    }
    vm->cfg = *cfg;
    /* Paths are used only here; do not keep the caller's pointers. */
    vm->cfg.kvm_path = NULL;
    vm->cfg.console_log = NULL;
    vm->cfg.cpu_model = NULL;
    vm->cfg.cpu_features = NULL;
    vm->cfg.log_path = NULL;
    vm->cfg.vcpu_pin = NULL; /* copied by qv_affinity_init */
    vm->kvm_fd = vm->vm_fd = vm->console_log_fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    pthread_cond_init(&vm->cond, NULL);
    vm->mxcsr_mask = qv_emulate_host_mxcsr_mask();

    int rc = open_kvm(vm, cfg->kvm_path, err, errlen);
    if (rc)
        goto fail;
    if (cfg->log_path) {
        vm->log = fopen(cfg->log_path, "ae");
        if (!vm->log) {
            snprintf(err, errlen, "log file %s: %s", cfg->log_path, strerror(errno));
            rc = QV_ERR_IO;
            goto fail;
        }
    }
    if (cfg->console_log) {
        vm->console_log_fd = open(cfg->console_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                                  0640);
        if (vm->console_log_fd < 0) {
            snprintf(err, errlen, "console.log %s: %s", cfg->console_log, strerror(errno));
            rc = QV_ERR_IO;
            goto fail;
        }
    }
    /* Memory first: a host that cannot give it fails here, before any vCPU exists. */
    if ((rc = qv_memory_alloc(vm, err, errlen)))
        goto fail;
    if ((rc = create_vm_fd(vm, err, errlen)))
        goto fail;
    if ((rc = qv_memory_register(vm, err, errlen)))
        goto fail;
    if ((rc = qv_cpuid_init(vm, cfg, err, errlen)))
        goto fail;
    if ((rc = qv_memory_check_phys_bits(vm, err, errlen)))
        goto fail;
    if ((rc = qv_affinity_init(vm, cfg, err, errlen)))
        goto fail;
    if ((rc = create_devices(vm, err, errlen)))
        goto fail;
    vm->vcpus = calloc(cfg->vcpus, sizeof(*vm->vcpus));
    if (!vm->vcpus) {
        snprintf(err, errlen, "out of memory for %" PRIu32 " vCPUs", cfg->vcpus);
        rc = QV_ERR_NOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < cfg->vcpus; i++)
        vm->vcpus[i].fd = -1;
    vm->nvcpus = cfg->vcpus;
    for (uint32_t i = 0; i < cfg->vcpus; i++) {
        if ((rc = qv_vcpu_create(vm, i, err, errlen)))
            goto fail;
    }
    qv_vm_log(vm, "INFO", "VM created: %" PRIu32 " vCPUs, %" PRIu64 " MiB RAM", vm->nvcpus,
              vm->ram_size >> 20);
    *out = vm;
    return QV_SUCCESS;
fail:
    qv_vm_destroy(vm);
    return rc;
}

int qv_vm_write_phys(struct qv_vm *vm, uint64_t gpa, const void *data, size_t len)
{
    uint8_t *p = qv_vm_gpa_ptr(vm, gpa, len);
    if (!p || (!data && len))
        return QV_ERR_INVAL;
    memcpy(p, data, len);
    return QV_SUCCESS;
}

int qv_vm_read_phys(struct qv_vm *vm, uint64_t gpa, void *data, size_t len)
{
    uint8_t *p = qv_vm_gpa_ptr(vm, gpa, len);
    if (!p || (!data && len))
        return QV_ERR_INVAL;
    memcpy(data, p, len);
    return QV_SUCCESS;
}

void *qv_vm_phys_ptr(struct qv_vm *vm, uint64_t gpa, size_t len)
{
    return qv_vm_gpa_ptr(vm, gpa, len);
}

uint64_t qv_vm_mem_size(const struct qv_vm *vm)
{
    return vm ? vm->ram_size : 0;
}

int qv_vm_set_boot_state(struct qv_vm *vm, const struct qv_boot_cpu_state *state)
{
    if (!vm || !state || state->mode > QV_BOOT_LONG64)
        return QV_ERR_INVAL;
    if (vm->state != QV_VM_CREATED)
        return QV_ERR_STATE;
    vm->boot = *state;
    vm->boot_set = true;
    return QV_SUCCESS;
}

int qv_vm_start(struct qv_vm *vm)
{
    if (!vm)
        return QV_ERR_INVAL;
    if (vm->state != QV_VM_CREATED) {
        snprintf(vm->error, sizeof(vm->error), "the VM was already started");
        return QV_ERR_STATE;
    }
    if (vm->boot_set) {
        int rc = qv_vcpu_apply_boot_state(&vm->vcpus[0], &vm->boot);
        if (rc) {
            snprintf(vm->error, sizeof(vm->error), "applying the boot vCPU state failed: %s",
                     rc == QV_ERR_KVM ? strerror(errno) : "invalid state");
            return rc;
        }
    }
    int io_rc = qv_pci_devices_start(vm);
    if (io_rc) {
        snprintf(vm->error, sizeof(vm->error), "starting the device I/O thread failed");
        return io_rc;
    }
    vm->state = QV_VM_RUNNING;
    for (uint32_t i = 0; i < vm->nvcpus; i++) {
        pthread_mutex_lock(&vm->lock);
        vm->running++;
        int rc = qv_vcpu_start(&vm->vcpus[i]);
        if (rc)
            vm->running--;
        pthread_mutex_unlock(&vm->lock);
        if (rc) {
            qv_vm_request_exit(vm, QV_EXIT_ERROR, rc, 0, "starting vCPU %" PRIu32 " failed", i);
            return rc;
        }
    }
    qv_vm_log(vm, "INFO", "VM started");
    return QV_SUCCESS;
}

int qv_vm_start_parked(struct qv_vm *vm, int timeout_ms)
{
    if (!vm)
        return QV_ERR_INVAL;
    if (vm->state != QV_VM_CREATED) {
        snprintf(vm->error, sizeof(vm->error), "the VM was already started");
        return QV_ERR_STATE;
    }
    /* Each vCPU thread checks this before its first KVM_RUN (qv_vcpu_maybe_park). */
    atomic_store(&vm->pause_requested, true);
    int rc = qv_vm_start(vm);
    if (rc) {
        atomic_store(&vm->pause_requested, false);
        return rc;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&vm->lock);
    while (vm->parked < vm->running && !atomic_load(&vm->stopping)) {
        if (pthread_cond_timedwait(&vm->cond, &vm->lock, &deadline) == ETIMEDOUT) {
            rc = QV_ERR_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

int qv_vm_wait(struct qv_vm *vm, int timeout_ms, struct qv_vm_exit *exit_out)
{
    if (!vm)
        return QV_ERR_INVAL;
    if (vm->state == QV_VM_CREATED)
        return QV_ERR_STATE;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    int rc = QV_SUCCESS;
    pthread_mutex_lock(&vm->lock);
    while (vm->running > 0) {
        int r = timeout_ms < 0 ? pthread_cond_wait(&vm->cond, &vm->lock)
                               : pthread_cond_timedwait(&vm->cond, &vm->lock, &deadline);
        if (r == ETIMEDOUT) {
            rc = QV_ERR_TIMEOUT;
            break;
        }
    }
    if (rc == QV_SUCCESS) {
        vm->state = QV_VM_ENDED;
        if (!vm->exit_set) {
            vm->exit_set = true;
            vm->exit.reason = QV_EXIT_STOPPED;
        }
        if (exit_out)
            *exit_out = vm->exit;
    }
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

int qv_vm_stop(struct qv_vm *vm)
{
    if (!vm)
        return QV_ERR_INVAL;
    qv_vm_request_exit(vm, QV_EXIT_STOPPED, 0, 0, "stopped");
    return QV_SUCCESS;
}

int qv_vm_console_input(struct qv_vm *vm, const uint8_t *data, size_t len)
{
    if (!vm || (!data && len))
        return QV_ERR_INVAL;
    /* Typed input goes to the guest's console: the virtio one when the VM has it. */
    if (!qv_pci_console_input(vm, data, len))
        qv_serial_input(vm->serial, data, len);
    return QV_SUCCESS;
}

int qv_vm_get_stats(struct qv_vm *vm, struct qv_vm_stats *st)
{
    if (!vm || !st)
        return QV_ERR_INVAL;
    memset(st, 0, sizeof(*st));
    for (uint32_t i = 0; i < vm->nvcpus; i++) {
        struct qv_vcpu *v = &vm->vcpus[i];
        for (int k = 0; k < QV_STAT_EXIT_KINDS; k++) {
            uint64_t n = atomic_load(&v->exits_by_reason[k]);
            st->exits_by_reason[k] += n;
            st->exits_total += n;
        }
        st->pio_exits += atomic_load(&v->pio_exits);
        st->mmio_exits += atomic_load(&v->mmio_exits);
        st->unhandled_pio += atomic_load(&v->unhandled_pio);
        st->unhandled_mmio += atomic_load(&v->unhandled_mmio);
        st->run_eagain += atomic_load(&v->run_eagain);
        for (int k = 0; k < QV_STAT_INSN_KINDS; k++) {
            uint64_t n = atomic_load(&v->completed_by_kind[k]);
            st->completed_by_kind[k] += n;
            st->completed_insns += n;
        }
    }
    if (vm->serial)
        qv_serial_counters(vm->serial, &st->console_bytes, &st->console_dropped);
    if (vm->debugdev)
        qv_debugdev_snapshot(vm->debugdev, st->results, QV_MAX_RESULTS, &st->nresults,
                             &st->boot_timer_ns, &st->boot_timer_value);
    return QV_SUCCESS;
}

int qv_vm_hotplug_range(const struct qv_vm *vm, uint64_t *gpa, uint64_t *size)
{
    if (!vm || !gpa || !size)
        return QV_ERR_INVAL;
    *gpa = vm->hotplug_gpa;
    *size = vm->hotplug_size;
    return QV_SUCCESS;
}

const char *qv_vm_error(struct qv_vm *vm)
{
    return vm ? vm->error : "";
}

void qv_vm_destroy(struct qv_vm *vm)
{
    if (!vm)
        return;
    if (vm->vcpus) {
        pthread_mutex_lock(&vm->lock);
        atomic_store(&vm->stopping, true);
        pthread_cond_broadcast(&vm->cond); /* wakes parked (paused) vCPUs too */
        for (uint32_t i = 0; i < vm->nvcpus; i++)
            qv_vcpu_kick(&vm->vcpus[i]);
        pthread_mutex_unlock(&vm->lock);
        for (uint32_t i = 0; i < vm->nvcpus; i++)
            qv_vcpu_join(&vm->vcpus[i]);
        /* A VM stopped from the host: where each vCPU was, for the log (hangs, timeouts). */
        if (vm->log && vm->exit_set && vm->exit.reason == QV_EXIT_STOPPED) {
            for (uint32_t i = 0; i < vm->nvcpus; i++) {
                char dump[1536];
                if (vm->vcpus[i].fd < 0)
                    continue;
                qv_vcpu_dump_regs(&vm->vcpus[i], dump, sizeof(dump));
                qv_vm_log(vm, "INFO", "stopped by the host:\n%s", dump);
            }
        }
        for (uint32_t i = 0; i < vm->nvcpus; i++)
            qv_vcpu_close(&vm->vcpus[i]);
        free(vm->vcpus);
    }
    qv_pci_devices_destroy(vm);
    qv_serial_destroy(vm->serial);
    qv_i8042_destroy(vm->i8042);
    qv_rtc_destroy(vm->rtc);
    qv_debugdev_destroy(vm->debugdev);
    qv_acpi_pm_destroy(vm->acpi_pm);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    qv_memory_free(vm);
    qv_cpuid_free(vm);
    qv_affinity_free(vm);
    if (vm->console_log_fd >= 0)
        close(vm->console_log_fd);
    if (vm->log)
        fclose(vm->log);
    pthread_cond_destroy(&vm->cond);
    pthread_mutex_destroy(&vm->lock);
    free(vm);
}
