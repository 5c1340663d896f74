/* Pause / resume and the power button of a running VM (quantavirt/vm_control.h).
 *
 * Pausing sets vm->pause_requested, then kicks every vCPU: the kick signal is unblocked only
 * inside KVM_RUN, so a vCPU in the guest leaves KVM_RUN with EINTR and one in a device handler
 * finds the signal pending at its next KVM_RUN. Before every KVM_RUN the thread calls
 * qv_vcpu_maybe_park, which counts it as parked and waits on vm->cond until the pause ends.
 * The kick stays pending after KVM_RUN returns (the thread's mask blocks it again), so a
 * parked thread consumes it before it runs the guest again; otherwise every later KVM_RUN
 * would return EINTR at once. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "kvm/vm_internal.h"
#include "quantavirt/errors.h"
#include "quantavirt/vm_control.h"

static void eat_pending_kicks(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, QV_KICK_SIGNAL);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) > 0)
        ;
}

void qv_vcpu_maybe_park(struct qv_vcpu *v)
{
    struct qv_vm *vm = v->vm;
    if (!atomic_load(&vm->pause_requested))
        return;
    pthread_mutex_lock(&vm->lock);
    vm->parked++;
    pthread_cond_broadcast(&vm->cond);
    while (atomic_load(&vm->pause_requested) && !atomic_load(&vm->stopping))
        pthread_cond_wait(&vm->cond, &vm->lock);
    vm->parked--;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    eat_pending_kicks();
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int qv_vm_pause(struct qv_vm *vm, int timeout_ms)
{
    if (!vm)
        return QV_ERR_INVAL;
    pthread_mutex_lock(&vm->lock);
    if (vm->state != QV_VM_RUNNING || atomic_load(&vm->stopping) || vm->running == 0) {
        pthread_mutex_unlock(&vm->lock);
        return QV_ERR_STATE;
    }
    if (atomic_load(&vm->pause_requested)) {
        pthread_mutex_unlock(&vm->lock);
        return QV_ERR_STATE;
    }
    atomic_store(&vm->pause_requested, true);
    for (uint32_t i = 0; i < vm->nvcpus; i++)
        qv_vcpu_kick(&vm->vcpus[i]);
    struct timespec deadline;
    deadline_after(&deadline, timeout_ms < 0 ? 0 : timeout_ms);
    int rc = QV_SUCCESS;
    /* `running` drops when a vCPU thread ends, so a VM ending meanwhile does not block us. */
    while (vm->parked < vm->running && !atomic_load(&vm->stopping)) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&vm->cond, &vm->lock);
        } else if (pthread_cond_timedwait(&vm->cond, &vm->lock, &deadline) == ETIMEDOUT) {
            rc = QV_ERR_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

int qv_vm_resume(struct qv_vm *vm)
{
    if (!vm)
        return QV_ERR_INVAL;
    pthread_mutex_lock(&vm->lock);
    if (!atomic_load(&vm->pause_requested)) {
        pthread_mutex_unlock(&vm->lock);
        return QV_ERR_STATE;
    }
    atomic_store(&vm->pause_requested, false);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    return QV_SUCCESS;
}

int qv_vm_is_paused(struct qv_vm *vm)
{
    return vm && atomic_load(&vm->pause_requested) ? 1 : 0;
}

static void sci_line(void *ctx, uint32_t irq, int level)
{
    struct qv_vm *vm = ctx;
    struct kvm_irq_level l = {.irq = irq, .level = (uint32_t)level};
    ioctl(vm->vm_fd, KVM_IRQ_LINE, &l);
}

int qv_vm_power_button(struct qv_vm *vm)
{
    if (!vm)
        return QV_ERR_INVAL;
    pthread_mutex_lock(&vm->lock);
    bool running = vm->state == QV_VM_RUNNING && !atomic_load(&vm->stopping);
    pthread_mutex_unlock(&vm->lock);
    if (!running || !vm->acpi_pm)
        return QV_ERR_STATE;
    qv_acpi_pm_power_button(vm->acpi_pm, sci_line, vm);
    qv_vm_log(vm, "INFO", "ACPI power button pressed");
    return QV_SUCCESS;
}

int qv_vm_pm1_state(struct qv_vm *vm, uint16_t *status, uint16_t *enable)
{
    if (!vm || !vm->acpi_pm || !status || !enable)
        return QV_ERR_INVAL;
    qv_acpi_pm_registers(vm->acpi_pm, status, enable);
    return QV_SUCCESS;
}

uint32_t qv_vm_vcpu_count(struct qv_vm *vm)
{
    return vm ? vm->nvcpus : 0;
}

int qv_vm_vcpu_tid(struct qv_vm *vm, uint32_t index)
{
    if (!vm || index >= vm->nvcpus || !vm->vcpus)
        return 0;
    return atomic_load(&vm->vcpus[index].tid);
}
