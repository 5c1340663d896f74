/* Run-time control of a started VM, beside the lifecycle in engine.h: pause and resume (the
 * vCPU threads leave KVM_RUN and park until resumed), the ACPI power button (a graceful stop
 * request the guest honours), and the kernel thread ids of the vCPUs (per-vCPU CPU time). */
#ifndef QUANTAVIRT_VM_CONTROL_H
#define QUANTAVIRT_VM_CONTROL_H

#include <stdint.h>

#include "quantavirt/engine.h"

/* Park every vCPU: returns once each running vCPU thread is out of KVM_RUN and parked.
 * QV_ERR_STATE when the VM is not running or already paused; QV_ERR_TIMEOUT when a vCPU did not
 * park within timeout_ms (the pause stays requested: resume to undo it). */
int qv_vm_pause(struct qv_vm *vm, int timeout_ms);
/* Let the parked vCPUs run again. QV_ERR_STATE when the VM is not paused. */
int qv_vm_resume(struct qv_vm *vm);
/* 1 while a pause is in force, else 0. */
int qv_vm_is_paused(struct qv_vm *vm);
/* Press the ACPI power button: PM1 status PWRBTN_STS is set and, when the guest enabled
 * PWRBTN_EN, the SCI (QV_ACPI_SCI_IRQ) is raised until the guest clears the status.
 * QV_ERR_STATE when the VM is not running. */
int qv_vm_power_button(struct qv_vm *vm);
/* PM1 status and enable registers as the guest sees them (tests, diagnostics). */
int qv_vm_pm1_state(struct qv_vm *vm, uint16_t *status, uint16_t *enable);
/* Number of vCPUs, and the kernel thread id of vCPU `index` (0 before its thread ran). */
uint32_t qv_vm_vcpu_count(struct qv_vm *vm);
int qv_vm_vcpu_tid(struct qv_vm *vm, uint32_t index);

#endif
